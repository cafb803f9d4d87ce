-- cfaccess.evaluate (API.md section 10, shared/reference/EVALUATION.md):
-- a table of evaluation cases, each with its expected allowed, status and
-- deciding policy; the result's shape (decided_by, steps, trace, tostring);
-- invalid inputs; properties (reordering, adding a non-matching policy);
-- the schema/matcher check; client:evaluate against the mock.
local cfaccess = require("cfaccess")
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local r = cfaccess.rules

local OKTA = "okta-idp-1"
local AZURE = "azure-idp-1"
local GH = "github-idp-1"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local OTHER_ACCT = "0123456789abcdef0123456789abcdef"

-- A policy named `name`: decision, precedence (nil: none), include, and
-- extra fields.
local function P(name, decision, prec, include, extra)
  local p = { name = name, decision = decision, precedence = prec, include = include }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

-- A user with everything an IdP login could tell; `extra` overrides.
local function user(extra)
  local u = {
    email = "alice@example.com", login_method = OKTA, amr = { "pwd", "mfa" }, risk = "low",
    accounts = { ACCT },
    idp = {
      [OKTA] = { groups = { "engineering", "sre" } },
      [AZURE] = { groups = { "0f1e2d3c-aaaa-bbbb-cccc-000000000001" }, auth_contexts = { "c1" } },
      [GH] = { github = { { org = "Acme", teams = { "infra", "web" } } } },
      ["saml-idp"] = { saml = { department = { "devs", "ops" } } },
      ["oidc-idp"] = { oidc = { groups = "admins" } },
      ["google-idp"] = { groups = { "eng@example.com" } },
    },
  }
  for k, v in pairs(extra or {}) do
    if v == false then u[k] = nil else u[k] = v end
  end
  return u
end

-- A full request: ip, country, no token/cert/linked app, a user; `extra`
-- overrides (false values remove a field, except those that mean "none").
local NONE = {}
local function req(extra)
  local q = { ip = "203.0.113.7", country = "DE", service_token = false, certificate = false,
              linked_app = false, posture = {}, external = {}, user = user() }
  for k, v in pairs(extra or {}) do
    if v == NONE then q[k] = nil else q[k] = v end
  end
  return q
end

-- One allow policy "t" holding one include rule.
local function one(rule, extra) return { P("t", "allow", 1, { rule }, extra) } end

local LISTS = {
  ["list-emails"] = { "Bob@Example.com", "carol@example.com" },
  ["list-ips"] = { "198.51.100.0/24", "2001:db8:abcd::/48", "192.0.2.9" },
}

local GROUPS = {
  staff = { name = "staff", include = { r.email_domain("example.com") } },
  eu = { name = "eu", include = { r.geo("DE"), r.geo("FR") } },          -- OR inside a group
  eu_staff = { name = "eu staff", include = { r.group("staff") }, require = { r.group("eu") } },
  outer = { name = "outer", include = { r.group("eu_staff") }, exclude = { r.email("mallory@example.com") } },
}

-- The cases: name, policies, request, opts; expected allowed, status, by
-- (deciding policy name; nil = none), and optionally steps.
local cases = {
  -- every rule type, matching and not ----------------------------------------
  { "email matches", one(r.email("alice@example.com")), req(), nil, true, "approved", "t" },
  { "email is case-insensitive", one(r.email("Alice@EXAMPLE.com")), req(), nil, true, "approved", "t" },
  { "email differs", one(r.email("bob@example.com")), req(), nil, false, "blocked", nil },
  { "email_list holds the user", one(r.email_list("list-emails")),
    req{ user = user{ email = "bob@example.com" } }, { lists = LISTS }, true, "approved", "t" },
  { "email_list lacks the user", one(r.email_list("list-emails")), req(), { lists = LISTS }, false, "blocked", nil },
  { "email_domain matches", one(r.email_domain("example.com")), req(), nil, true, "approved", "t" },
  { "email_domain takes no subdomains", one(r.email_domain("example.com")),
    req{ user = user{ email = "alice@eu.example.com" } }, nil, false, "blocked", nil },
  { "everyone matches a logged-in user", one(r.everyone()), req(), nil, true, "approved", "t" },
  { "ip inside an IPv4 range", one(r.ip("203.0.113.0/24")), req(), nil, true, "approved", "t" },
  { "ip with host bits set is masked", one(r.ip("203.0.113.200/24")), req(), nil, true, "approved", "t" },
  { "ip outside the range", one(r.ip("198.51.100.0/24")), req(), nil, false, "blocked", nil },
  { "ip_list holds an IPv4 range", one(r.ip_list("list-ips")), req{ ip = "198.51.100.77" },
    { lists = LISTS }, true, "approved", "t" },
  { "ip_list holds an IPv6 range", one(r.ip_list("list-ips")), req{ ip = "2001:db8:abcd:12::1" },
    { lists = LISTS }, true, "approved", "t" },
  { "ip_list single address", one(r.ip_list("list-ips")), req{ ip = "192.0.2.9" }, { lists = LISTS }, true,
    "approved", "t" },
  { "ip_list misses", one(r.ip_list("list-ips")), req{ ip = "192.0.2.10" }, { lists = LISTS }, false, "blocked", nil },
  { "certificate presented", one(r.certificate()), req{ certificate = { common_name = "dev1" } }, nil, true,
    "approved", "t" },
  { "certificate absent (false)", one(r.certificate()), req(), nil, false, "blocked", nil },
  { "common_name equal", one(r.common_name("dev1.example.com")),
    req{ certificate = { common_name = "dev1.example.com" } }, nil, true, "approved", "t" },
  { "common_name of a certificate whose name the request does not give: indeterminate",
    one(r.common_name("dev1.example.com")), req{ certificate = true }, nil, nil, "indeterminate", nil },
  { "common_name differs", one(r.common_name("dev1.example.com")),
    req{ certificate = { common_name = "dev2.example.com" } }, nil, false, "blocked", nil },
  { "group matches", one(r.group("staff")), req(), { groups = GROUPS }, true, "approved", "t" },
  { "azureAD member through its IdP", one(r.azure_ad("0f1e2d3c-aaaa-bbbb-cccc-000000000001", AZURE)),
    req{ user = user{ login_method = AZURE } }, nil, true, "approved", "t" },
  { "azureAD needs the rule's IdP as login method", one(r.azure_ad("0f1e2d3c-aaaa-bbbb-cccc-000000000001", AZURE)),
    req(), nil, false, "blocked", nil },
  { "github org and team", one(r.github_org("acme", GH, "infra")), req{ user = user{ login_method = GH } },
    nil, true, "approved", "t" },
  { "github team missing", one(r.github_org("acme", GH, "payroll")), req{ user = user{ login_method = GH } },
    nil, false, "blocked", nil },
  { "gsuite group", one(r.gsuite("ENG@example.com", "google-idp")), req{ user = user{ login_method = "google-idp" } },
    nil, true, "approved", "t" },
  { "okta group", one(r.okta("sre", OKTA)), req(), nil, true, "approved", "t" },
  { "okta group not held", one(r.okta("finance", OKTA)), req(), nil, false, "blocked", nil },
  { "okta group of another IdP's login", one(r.okta("sre", OKTA)), req{ user = user{ login_method = AZURE } },
    nil, false, "blocked", nil },
  { "saml multi-valued attribute", one(r.saml("department", "ops", "saml-idp")),
    req{ user = user{ login_method = "saml-idp" } }, nil, true, "approved", "t" },
  { "saml whole values only", one(r.saml("department", "dev", "saml-idp")),
    req{ user = user{ login_method = "saml-idp" } }, nil, false, "blocked", nil },
  { "oidc claim", one(r.oidc("groups", "admins", "oidc-idp")), req{ user = user{ login_method = "oidc-idp" } },
    nil, true, "approved", "t" },
  { "auth_context passed", one(r.auth_context("ctx-uuid-1", "c1", AZURE)), req{ user = user{ login_method = AZURE } },
    nil, true, "approved", "t" },
  { "login_method equal", one(r.login_method(OKTA)), req(), nil, true, "approved", "t" },
  { "login_method differs", one(r.login_method(AZURE)), req(), nil, false, "blocked", nil },
  { "auth_method in the AMR values", one(r.auth_method("mfa")), req(), nil, true, "approved", "t" },
  { "auth_method absent from the AMR values", one(r.auth_method("hwk")), req(), nil, false, "blocked", nil },
  { "service_token (Service Auth, no login)", { P("ci", "non_identity", 1, { r.service_token("tok-1") }) },
    req{ service_token = "tok-1", user = NONE }, nil, true, "approved", "ci" },
  { "service_token of another token", { P("ci", "non_identity", 1, { r.service_token("tok-1") }) },
    req{ service_token = "tok-2", user = NONE }, nil, false, "blocked", nil },
  { "any_valid_service_token", { P("ci", "non_identity", 1, { r.any_valid_service_token() }) },
    req{ service_token = "tok-9", user = NONE }, nil, true, "approved", "ci" },
  { "external_evaluation answered true", one(r.external_evaluation("https://ext.example/eval",
    "https://ext.example/keys")),
    req{ external = { ["https://ext.example/eval"] = true } }, nil, true, "approved", "t" },
  { "external_evaluation answered false", one(r.external_evaluation("https://ext.example/eval",
    "https://ext.example/keys")),
    req{ external = { ["https://ext.example/eval"] = false } }, nil, false, "blocked", nil },
  { "geo equal", one(r.geo("DE")), req(), nil, true, "approved", "t" },
  { "geo differs", one(r.geo("US")), req(), nil, false, "blocked", nil },
  { "device_posture passed", one(r.device_posture("warp-check")), req{ posture = { ["warp-check"] = true } },
    nil, true, "approved", "t" },
  { "device_posture failed", one(r.device_posture("warp-check")), req{ posture = { ["warp-check"] = false } },
    nil, false, "blocked", nil },
  { "linked_app_token of the named app", { P("mcp", "non_identity", 1, { r.linked_app_token("app-uid-1") }) },
    req{ linked_app = "app-uid-1", user = NONE }, nil, true, "approved", "mcp" },
  { "user_risk_score level listed", one(r.user_risk_score{ "low", "medium" }), req(), nil, true, "approved", "t" },
  { "user_risk_score level not listed", one(r.user_risk_score{ "high" }), req(), nil, false, "blocked", nil },
  { "cloudflare_account_member of the policy's account", one(r.cloudflare_account_member()), req(),
    { account_id = ACCT }, true, "approved", "t" },
  { "cloudflare_account_member of another account", one(r.cloudflare_account_member(OTHER_ACCT)), req(),
    nil, false, "blocked", nil },

  -- phases and precedence ------------------------------------------------------
  { "docs example: Allow A, Block B, Service Auth C, Bypass D, Allow E runs C > D > A > B > E", {
      P("A", "allow", 1, { r.email("nobody@example.com") }),
      P("B", "deny", 2, { r.everyone() }),
      P("C", "non_identity", 3, { r.service_token("tok-1") }),
      P("D", "bypass", 4, { r.ip("203.0.113.0/24") }),
      P("E", "allow", 5, { r.everyone() }),
    }, req(), nil, true, "approved", "D" },
  { "Service Auth and Bypass interleave by precedence (bypass first)", {
      P("svc", "non_identity", 5, { r.ip("203.0.113.0/24") }),
      P("byp", "bypass", 2, { r.geo("DE") }),
    }, req(), nil, true, "approved", "byp" },
  { "a Block policy cannot stop a Bypass", {
      P("block all", "deny", 1, { r.everyone() }),
      P("office", "bypass", 9, { r.ip("203.0.113.0/24") }),
    }, req{ user = NONE }, nil, true, "approved", "office" },
  { "first matching phase-2 policy wins: Block before Allow", {
      P("allow staff", "allow", 2, { r.email_domain("example.com") }),
      P("block DE", "deny", 1, { r.geo("DE") }),
    }, req(), nil, false, "blocked", "block DE" },
  { "first matching phase-2 policy wins: Allow before Block", {
      P("allow staff", "allow", 1, { r.email_domain("example.com") }),
      P("block DE", "deny", 2, { r.geo("DE") }),
    }, req(), nil, true, "approved", "allow staff" },
  { "list order where no precedence is given", {
      P("second", "allow", nil, { r.everyone() }),
      P("first", "deny", nil, { r.everyone() }),
    }, req(), nil, true, "approved", "second" },
  { "deny by default: nothing matched", { P("ops", "allow", 1, { r.okta("ops", OKTA) }) }, req(), nil,
    false, "blocked", nil },
  { "no policies at all: denied", {}, req(), nil, false, "blocked", nil },

  -- include / require / exclude --------------------------------------------------
  { "Block-with-exclude trap: a lone Block's excluded user is still denied", {
      P("block all but alice", "deny", 1, { r.everyone() }, { exclude = { r.email("alice@example.com") } }),
    }, req(), nil, false, "blocked", nil },
  { "Block-with-exclude: everyone else is blocked by the policy", {
      P("block all but alice", "deny", 1, { r.everyone() }, { exclude = { r.email("alice@example.com") } }),
    }, req{ user = user{ email = "bob@example.com" } }, nil, false, "blocked", "block all but alice" },
  { "Block-with-exclude then Allow: the excluded user goes on to the Allow", {
      P("block all but alice", "deny", 1, { r.everyone() }, { exclude = { r.email("alice@example.com") } }),
      P("allow alice", "allow", 2, { r.email("alice@example.com") }),
    }, req(), nil, true, "approved", "allow alice" },
  { "require AND: two geo rules can never both match", {
      P("US and PT", "allow", 1, { r.everyone() }, { require = { r.geo("US"), r.geo("PT") } }),
    }, req{ country = "US" }, nil, false, "blocked", nil },
  { "require a group that ORs the countries (the documented fix)", {
      P("US or PT", "allow", 1, { r.everyone() }, { require = { r.group("us_pt") } }),
    }, req{ country = "PT" }, { groups = { us_pt = { name = "us_pt", include = { r.geo("US"), r.geo("PT") } } } },
    true, "approved", "US or PT" },
  { "include OR: any include rule admits", {
      P("either", "allow", 1, { r.email("bob@example.com"), r.geo("DE") }),
    }, req(), nil, true, "approved", "either" },
  { "exclude removes a matching user", {
      P("staff not KP", "allow", 1, { r.email_domain("example.com") }, { exclude = { r.geo("DE") } }),
    }, req(), nil, false, "blocked", nil },
  { "nested groups: include staff, require eu, three levels", {
      P("nested", "allow", 1, { r.group("outer") }),
    }, req{ country = "FR" }, { groups = GROUPS }, true, "approved", "nested" },
  { "nested groups: the inner require fails", {
      P("nested", "allow", 1, { r.group("outer") }),
    }, req{ country = "US" }, { groups = GROUPS }, false, "blocked", nil },
  { "nested groups: the outer exclude applies", {
      P("nested", "allow", 1, { r.group("outer") }),
    }, req{ user = user{ email = "mallory@example.com" } }, { groups = GROUPS }, false, "blocked", nil },

  -- IPv6 ----------------------------------------------------------------------------
  { "IPv6 address inside a /32", one(r.ip("2001:db8::/32")), req{ ip = "2001:db8:1:2::5" }, nil, true, "approved",
    "t" },
  { "IPv6 address outside a /32", one(r.ip("2001:db8::/32")), req{ ip = "2001:db9::5" }, nil, false, "blocked", nil },
  { "IPv6 /128 single address", one(r.ip("2001:db8::1/128")), req{ ip = "2001:DB8:0:0:0:0:0:1" }, nil, true,
    "approved", "t" },
  { "an IPv4 request never falls in an IPv6 range", one(r.ip("::/0")), req(), nil, false, "blocked", nil },
  { "an IPv4-mapped IPv6 request is its IPv4 address", one(r.ip("203.0.113.0/24")), req{ ip = "::ffff:203.0.113.9" },
    nil, true, "approved", "t" },

  -- unknown inputs ---------------------------------------------------------------------
  { "unknown country, but the deciding rule does not need it", {
      P("alice", "allow", 1, { r.email("alice@example.com") }),
      P("late geo", "deny", 2, { r.geo("KP") }),
    }, req{ country = NONE }, nil, true, "approved", "alice" },
  { "unknown input in an include already satisfied (OR with true)", {
      P("alice or DE", "allow", 1, { r.email("alice@example.com"), r.geo("DE") }),
    }, req{ country = NONE }, nil, true, "approved", "alice or DE" },
  { "unknown input in a policy whose include is false", {
      P("bob in DE", "allow", 1, { r.email("bob@example.com") }, { require = { r.geo("DE") } }),
      P("fallback", "allow", 2, { r.everyone() }),
    }, req{ country = NONE }, nil, true, "approved", "fallback" },
  { "unknown country in an earlier Block: indeterminate", {
      P("block KP", "deny", 1, { r.geo("KP") }),
      P("staff", "allow", 2, { r.email_domain("example.com") }),
    }, req{ country = NONE }, nil, nil, "indeterminate", nil },
  { "unknown require: indeterminate", {
      P("DE staff", "allow", 1, { r.email_domain("example.com") }, { require = { r.geo("DE") } }),
    }, req{ country = NONE }, nil, nil, "indeterminate", nil },
  { "unknown exclude: indeterminate", {
      P("staff not low-risk-unknown", "allow", 1, { r.everyone() }, { exclude = { r.device_posture("jailbroken") } }),
    }, req{ posture = NONE }, nil, nil, "indeterminate", nil },
  { "unknown IdP groups: indeterminate", one(r.okta("sre", OKTA)), req{ user = user{ idp = {} } }, nil,
    nil, "indeterminate", nil },
  { "unknown service token before an Allow: indeterminate", {
      P("ci", "non_identity", 1, { r.service_token("tok-1") }),
      P("staff", "allow", 2, { r.everyone() }),
    }, req{ service_token = NONE }, nil, nil, "indeterminate", nil },
  { "unknown input after the deciding policy changes nothing", {
      P("staff", "allow", 1, { r.everyone() }),
      P("block KP", "deny", 2, { r.geo("KP") }),
    }, req{ country = NONE }, nil, true, "approved", "staff" },
  { "unknown input in a policy that cannot match anyway (include known false)", {
      P("KP", "deny", 1, { r.email("x@example.org") }, { require = { r.geo("KP") } }),
    }, req{ country = NONE }, nil, false, "blocked", nil },

  -- steps ---------------------------------------------------------------------------------
  { "steps: independent MFA, approval, purpose justification, isolation", {
      P("guarded", "allow", 1, { r.everyone() }, { mfa_config = { allowed_authenticators = { "totp" } },
        approval_required = true, approval_groups = { { approvals_needed = 1,
          email_addresses = { "boss@example.com" } } },
        purpose_justification_required = true, isolation_required = true }),
    }, req(), nil, true, "approved", "guarded", { "mfa", "approval", "purpose_justification", "isolation" } },
  { "steps: mfa_disabled adds no MFA step", {
      P("no mfa", "allow", 1, { r.everyone() }, { mfa_config = { mfa_disabled = true } }),
    }, req(), nil, true, "approved", "no mfa", {} },
  { "steps: approval still decides approved", {
      P("approval", "allow", 1, { r.everyone() }, { approval_required = true }),
    }, req(), nil, true, "approved", "approval", { "approval" } },
  { "steps: none from a Bypass policy", {
      P("byp", "bypass", 1, { r.everyone() }),
    }, req(), nil, true, "approved", "byp", {} },

  -- login_required ----------------------------------------------------------------------------
  { "login_required: no user, an Allow policy could match", one(r.email_domain("example.com")),
    req{ user = NONE }, nil, false, "login_required", nil },
  { "login_required: even for Allow everyone", one(r.everyone()), req{ user = false }, nil, false, "login_required",
    nil },
  { "no user, and no phase-2 policy can match whoever logs in: blocked", {
      P("office only", "allow", 1, { r.everyone() }, { require = { r.ip("198.51.100.0/24") } }),
    }, req{ user = NONE }, nil, false, "blocked", nil },
  { "no user, a service token, no Service Auth match: login_required", {
      P("ci", "non_identity", 1, { r.service_token("tok-1") }),
      P("staff", "allow", 2, { r.email_domain("example.com") }),
    }, req{ user = NONE, service_token = "tok-7" }, nil, false, "login_required", nil },
  { "no user, unknown country decides whether any policy could match: indeterminate", {
      P("DE only", "allow", 1, { r.everyone() }, { require = { r.geo("DE") } }),
    }, req{ user = NONE, country = NONE }, nil, nil, "indeterminate", nil },
  { "strict service tokens: a token request cannot use Allow policies", {
      P("ci", "non_identity", 1, { r.service_token("tok-1") }),
      P("all", "allow", 2, { r.everyone() }),
    }, req{ service_token = "tok-7" }, { strict_service_tokens = true }, false, "blocked", nil },
  { "strict service tokens: the token's Service Auth policy still admits", {
      P("ci", "non_identity", 1, { r.service_token("tok-1") }),
    }, req{ service_token = "tok-1", user = NONE }, { strict_service_tokens = true }, true, "approved", "ci" },
}

describe("cfaccess.evaluate cases", function()
  it("has at least 60 cases, and one for every schema rule type", function()
    assert.is_true(#cases >= 60, #cases .. " cases")
    local used = {}
    for _, c in ipairs(cases) do
      for _, p in ipairs(c[2]) do
        for _, rule in ipairs(p.include) do used[next(rule)] = true end
      end
    end
    for _, g in pairs(GROUPS) do for _, rule in ipairs(g.include) do used[next(rule)] = true end end
    for _, key in ipairs(core.schema.rule_types) do
      assert.is_true(used[key] == true, "no case uses rule type " .. key)
    end
  end)

  for _, c in ipairs(cases) do
    local name, policies, request, opts, allowed, status, by, steps = table.unpack(c, 1, 8)
    it(name, function()
      local res, err = cfaccess.evaluate(policies, request, opts)
      assert.is_nil(err)
      assert.are.equal(allowed, res.allowed, tostring(res))
      assert.are.equal(status, res.status, tostring(res))
      assert.are.equal(by, res.decided_by and res.decided_by.name, tostring(res))
      if steps then assert.are.same(steps, res.steps) end
      -- invariants of the result's shape
      if status == "indeterminate" or status == "login_required" then
        assert.is_nil(res.decided_by)
      end
      assert.are.equal(res.reason, tostring(res))
      assert.is_nil(tostring(res):find("\n"))
      assert.are.equal(#policies, #res.trace)
    end)
  end
end)

describe("cfaccess.evaluate results", function()
  local pols = {
    P("block KP", "deny", 1, { r.geo("KP") }),
    P("staff", "allow", 2, { r.email_domain("example.com") }, { require = { r.auth_method("mfa") }, id = "pid-2" }),
    P("contractors", "allow", 3, { r.okta("contractors", OKTA) }),
  }

  it("decided_by names the policy: index, name, id, decision, precedence, phase", function()
    local res = assert(cfaccess.evaluate(pols, req()))
    assert.are.same({ index = 2, name = "staff", id = "pid-2", decision = "allow", precedence = 2, phase = 2 },
      res.decided_by)
    assert.are.equal('approved by "staff" (allow, precedence 2)', tostring(res))
  end)

  it("prints a Block, deny by default and an indeterminate result as one line", function()
    assert.are.equal('blocked by "block KP" (deny, precedence 1)',
      tostring(assert(cfaccess.evaluate(pols, req{ country = "KP" }))))
    assert.are.equal("blocked: no policy matched",
      tostring(assert(cfaccess.evaluate(pols, req{ user = user{ email = "x@other.org",
        idp = { [OKTA] = { groups = {} } } } }))))
    local res = assert(cfaccess.evaluate({ pols[3] }, req{ user = user{ idp = {} } }))
    assert.are.equal('indeterminate: include[1] of "contractors" needs user.idp["okta-idp-1"]', tostring(res))
  end)

  it("stays one line when a name holds a newline", function()
    local res = assert(cfaccess.evaluate({ P("two\nlines", "allow", 1, { r.everyone() }) }, req()))
    assert.are.equal('approved by "two\\nlines" (allow, precedence 1)', tostring(res))
    local _, err = cfaccess.evaluate({ P("x", "allow", 1, { r.group("g\n1") }) }, req())
    assert.is_nil(tostring(err):find("\n", 1, true))
  end)

  it("names the missing input inside a group", function()
    local res = assert(cfaccess.evaluate({ P("eu", "allow", 1, { r.group("eu") }) }, req{ country = NONE },
      { groups = GROUPS }))
    assert.are.equal('indeterminate: include[1] of "eu" needs country (in group "eu", include[1])', tostring(res))
  end)

  it("traces every policy and every rule of the evaluated ones", function()
    local res = assert(cfaccess.evaluate(pols, req()))
    assert.are.equal(3, #res.trace)
    local t1, t2, t3 = res.trace[1], res.trace[2], res.trace[3]
    assert.are.same({ "block KP", "no_match", 1 }, { t1.name, t1.status, t1.phase == 2 and 1 or 0 })
    assert.are.same({ { path = "include[1]", type = "geo", result = false } }, t1.rules)
    assert.are.equal("match", t2.status)
    assert.are.same({ { path = "include[1]", type = "email_domain", result = true },
                      { path = "require[1]", type = "auth_method", result = true } }, t2.rules)
    assert.are.same({ "contractors", "not_evaluated", {} }, { t3.name, t3.status, t3.rules })
  end)

  it("traces unknown rules with what they need, and every rule even after a settled one", function()
    local res = assert(cfaccess.evaluate({ P("x", "allow", 1, { r.email("alice@example.com"), r.geo("DE") }) },
      req{ country = NONE }))
    assert.are.equal("approved", res.status)
    assert.are.same({ { path = "include[1]", type = "email", result = true },
                      { path = "include[2]", type = "geo", result = "unknown", needs = "country" } },
      res.trace[1].rules)
  end)

  it("orders the trace as evaluated: phase 1 first, then by precedence", function()
    local res = assert(cfaccess.evaluate({
      P("a", "allow", 1, { r.email("nobody@example.com") }),
      P("d", "bypass", 9, { r.ip("198.51.100.0/24") }),
      P("c", "non_identity", 4, { r.service_token("tok-1") }),
    }, req()))
    local names = {}
    for i, t in ipairs(res.trace) do names[i] = t.name .. "/" .. t.status end
    assert.are.same({ "c/no_match", "d/no_match", "a/no_match" }, names)
  end)

  it("is a pure function: the same inputs give the same answer, and the inputs are not changed", function()
    local before = require("cjson").encode(pols)
    local a = assert(cfaccess.evaluate(pols, req()))
    local b = assert(cfaccess.evaluate(pols, req()))
    assert.are.equal(tostring(a), tostring(b))
    assert.are.equal(before, require("cjson").encode(pols))
  end)

  it("accepts server results (read-only fields such as id, created_at, reusable are ignored)", function()
    local live = P("staff", "allow", 1, { r.everyone() }, { id = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415",
      created_at = "2014-01-01T05:20:00.12345Z", updated_at = "2014-01-01T05:20:00.12345Z",
      reusable = true, app_count = 2 })
    local res = assert(cfaccess.evaluate({ live }, req()))
    assert.are.equal("f174e90a-fafe-4643-bbbc-4a0ed4fc8415", res.decided_by.id)
  end)

  it("cfaccess.evaluator compiles once and answers like cfaccess.evaluate", function()
    local ev = assert(cfaccess.evaluator(pols))
    for _, q in ipairs{ req(), req{ country = "KP" }, req{ user = NONE }, req{ country = NONE } } do
      assert.are.equal(tostring(assert(cfaccess.evaluate(pols, q))), tostring(assert(ev:evaluate(q))))
    end
  end)

  it("raises for wrong argument types", function()
    assert.has_error(function() cfaccess.evaluate(nil, {}) end)
    assert.has_error(function() cfaccess.evaluate({}, "x") end)
    assert.has_error(function() cfaccess.evaluate({}, {}, 5) end)
  end)
end)

describe("cfaccess.evaluate invalid inputs", function()
  -- each: name, policies, request, opts, a path that must be among the problems
  local bad = {
    { "a policy the validator rejects", { P("x", "allow", 1, { { email = { email = 5 } } }) }, req(), nil,
      "[1].include[1].email.email" },
    { "a policy that is not a table", { "staff" }, req(), nil, "[1]" },
    { "a duplicate precedence", { P("a", "allow", 1, { r.everyone() }), P("b", "deny", 1, { r.everyone() }) },
      req(), nil, "[2].precedence" },
    { "some policies with a precedence and some without",
      { P("a", "allow", 1, { r.everyone() }), P("b", "deny", nil, { r.everyone() }) }, req(), nil, "[2].precedence" },
    { "an unknown group id", one(r.group("nope")), req(), { groups = GROUPS }, "[1].include[1].group.id" },
    { "a group cycle", one(r.group("a")), req(), { groups = {
        a = { name = "a", include = { r.group("b") } }, b = { name = "b", include = { r.group("a") } } } },
      'groups["b"].include[1].group.id' },
    { "a group that is its own member", one(r.group("self")), req(),
      { groups = { self = { name = "self", include = { r.group("self") } } } }, 'groups["self"].include[1].group.id' },
    { "an invalid group body", one(r.group("g")), req(), { groups = { g = { name = "g", include = {} } } },
      'groups["g"].include' },
    { "an unknown list id", one(r.email_list("nope")), req(), { lists = LISTS }, "[1].include[1].email_list.id" },
    { "an ip list entry that is not an address", one(r.ip_list("l")), req(), { lists = { l = { "10.0.0.0/8",
      "nope" } } },
      'lists["l"][2]' },
    { "identity rules in a Bypass policy", { P("b", "bypass", 1, { r.email("alice@example.com") }) }, req(), nil,
      "[1].include[1]" },
    { "a service_token rule outside Service Auth", { P("a", "allow", 1, { r.service_token("tok-1") }) }, req(), nil,
      "[1].include[1]" },
    { "a request IP that is not an address", one(r.everyone()), req{ ip = "300.1.1.1" }, nil, "request.ip" },
    { "a misspelt request field", one(r.everyone()), req{ contry = "DE" }, nil, "request.contry" },
    { "a misspelt user field", one(r.everyone()), req{ user = user{ emial = "x" } }, nil, "request.user.emial" },
    { "IdP data of the wrong shape", one(r.everyone()),
      req{ user = user{ idp = { [GH] = { github = { "acme" } } } } }, nil,
      'request.user.idp["github-idp-1"].github[1]' },
    { "a misspelt IdP field", one(r.everyone()),
      req{ user = user{ idp = { [OKTA] = { group = { "x" } } } } }, nil,
      'request.user.idp["okta-idp-1"].group' },
    { "a country that is not a code", one(r.everyone()), req{ country = "Germany" }, nil, "request.country" },
    { "an unknown option", one(r.everyone()), req(), { group = {} }, "opts.group" },
    { "an account_id that is not 32 hex", one(r.everyone()), req(), { account_id = "acct" }, "opts.account_id" },
  }
  it("one policy given where the list belongs is invalid, not \"no policy matched\"", function()
    local res, err = cfaccess.evaluate(P("a", "allow", 1, { r.everyone() }), req())
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.are.equal('invalid evaluation input: expected a list of policies, found the key "decision" '
      .. "(one policy? give { policy })", tostring(err))
    res, err = cfaccess.evaluate({ P("a", "allow", 1, { r.everyone() }), extra = true }, req())
    assert.is_nil(res)
    assert.matches('found the key "extra"', tostring(err), 1, true)
  end)

  it("says in words why an IPv4-mapped range is refused", function()
    local _, err = cfaccess.evaluate(one(r.ip("::ffff:1.2.3.4/64")), req())
    assert.are.equal('"::ffff:1.2.3.4/64" is an IPv4-mapped range, which needs a prefix of at least 96',
      err.problems[1].message)
    assert.are.equal("[1].include[1].ip.ip", err.problems[1].path)
  end)

  for _, c in ipairs(bad) do
    local name, policies, request, opts, path = table.unpack(c, 1, 5)
    it(name .. " is invalid (" .. path .. ")", function()
      local res, err = cfaccess.evaluate(policies, request, opts)
      assert.is_nil(res)
      assert.are.equal("invalid", err.kind)
      local paths = {}
      for _, pr in ipairs(err.problems) do paths[#paths + 1] = pr.path end
      assert.is_truthy(table.concat(paths, "\n"):find(path, 1, true), table.concat(paths, "\n"))
      assert.are.equal(err.message, tostring(err))
      assert.matches("^invalid evaluation input: ", tostring(err))
      -- the same metatable as the core's errors
      local _, core_err = core.validate({})
      assert.are.equal(getmetatable(core_err), getmetatable(err))
    end)
  end

  it("reports every problem, not just the first", function()
    local _, err = cfaccess.evaluate({ P("a", "allow", 1, { r.group("nope") }), P("b", "allow", 1,
      { r.email_list("x") }) },
      req(), {})
    assert.is_true(#err.problems >= 3, tostring(err))
    assert.matches("%(and %d+ more problems?%)", tostring(err))
  end)
end)

describe("cfaccess.evaluate properties", function()
  -- A pseudo-random generator of our own (seeded per run; the seed is in
  -- the failure message), so a failure can be replayed.
  local seed = os.time()
  local state = seed
  local function rnd(n)
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n + 1
  end
  local POOL = {
    r.everyone(), r.email("alice@example.com"), r.email_domain("example.com"), r.geo("DE"), r.geo("KP"),
    r.ip("203.0.113.0/24"), r.ip("2001:db8::/32"), r.okta("sre", OKTA), r.auth_method("mfa"),
    r.device_posture("warp"), r.user_risk_score{ "high" }, r.group("eu"), r.login_method(OKTA),
  }
  local BYPASS_POOL = { r.ip("203.0.113.0/24"), r.geo("DE"), r.everyone(), r.geo("KP"), r.ip("2001:db8::/32") }
  local SERVICE_POOL = { r.ip("203.0.113.0/24"), r.geo("DE"), r.any_valid_service_token(), r.geo("KP") }
  local DECISIONS = { "allow", "deny", "allow", "deny", "non_identity", "bypass" }

  local function rules(pool, max)
    local t = {}
    for i = 1, rnd(max) do t[i] = pool[rnd(#pool)] end
    return t
  end

  local function policies(n)
    local precs, used = {}, {}
    while #precs < n do
      local p = rnd(100)
      if not used[p] then used[p] = true; precs[#precs + 1] = p end
    end
    local list = {}
    for i = 1, n do
      local d = DECISIONS[rnd(#DECISIONS)]
      local pool = d == "non_identity" and SERVICE_POOL or d == "bypass" and BYPASS_POOL or POOL
      local p = P("p" .. i, d, precs[i], rules(pool, 2))
      if rnd(3) == 1 then p.require = rules(pool, 2) end
      if rnd(3) == 1 then p.exclude = rules(pool, 1) end
      list[i] = p
    end
    return list
  end

  local function request()
    local q = req()
    if rnd(3) == 1 then q.country = ({ "DE", "KP", "US" })[rnd(3)] end
    if rnd(4) == 1 then q.country = nil end
    if rnd(4) == 1 then q.user = nil end
    if rnd(3) == 1 then q.ip = ({ "198.51.100.1", "2001:db8::9", "203.0.113.77" })[rnd(3)] end
    if rnd(3) == 1 then q.posture = { warp = rnd(2) == 1 } elseif rnd(2) == 1 then q.posture = nil end
    if rnd(4) == 1 then q.service_token = "tok-x" end
    return q
  end

  local function summary(res)
    local d = res.decided_by
    return table.concat({ tostring(res.allowed), res.status, d and d.name or "-", d and tostring(d.precedence) or "-",
                          table.concat(res.steps, ","), res.reason }, " | ")
  end

  local opts = { groups = GROUPS }

  it("reordering policies without changing their precedence changes nothing", function()
    local statuses = {}
    for round = 1, 300 do
      local pols = policies(rnd(8))
      local q = request()
      local a = assert(cfaccess.evaluate(pols, q, opts))
      statuses[a.status] = true
      local shuffled = {}
      for i, p in ipairs(pols) do shuffled[i] = p end
      for i = #shuffled, 2, -1 do
        local j = rnd(i)
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
      end
      local b = assert(cfaccess.evaluate(shuffled, q, opts))
      assert.are.equal(summary(a), summary(b), ("seed %d round %d"):format(seed, round))
    end
    -- the generator reaches every outcome, or the property proves little
    for _, s in ipairs{ "approved", "blocked", "login_required", "indeterminate" } do
      assert.is_true(statuses[s] == true, "no round ended " .. s .. " (seed " .. seed .. ")")
    end
  end)

  it("adding a policy that does not match changes nothing", function()
    for round = 1, 300 do
      local pols = policies(rnd(8))
      local q = request()
      local a = assert(cfaccess.evaluate(pols, q, opts))
      local used = {}
      for _, p in ipairs(pols) do used[p.precedence] = true end
      local prec = rnd(120)
      while used[prec] do prec = rnd(120) end
      -- known false whatever the user: an IP range the request is not in
      local extra = P("never", DECISIONS[rnd(#DECISIONS)], prec, { r.ip("192.0.2.0/24") },
        rnd(2) == 1 and { require = { r.geo("KP") } } or nil)
      local more = {}
      for i, p in ipairs(pols) do more[i] = p end
      table.insert(more, rnd(#more + 1), extra)
      local b = assert(cfaccess.evaluate(more, q, opts))
      assert.are.equal(summary(a), summary(b), ("seed %d round %d"):format(seed, round))
      assert.are.equal(#pols + 1, #b.trace)
    end
  end)
end)

describe("matchers and the schema", function()
  it("has exactly one matcher per schema rule type", function()
    local m = require("cfaccess.eval.matchers").matchers
    local keys, want = {}, {}
    for k in pairs(m) do keys[#keys + 1] = k end
    for _, k in ipairs(core.schema.rule_types) do want[#want + 1] = k end
    table.sort(keys)
    table.sort(want)
    assert.are.same(want, keys)
    assert.are.equal(26, #want)
  end)

  -- Load the matchers against a core whose schema differs: it must refuse.
  local function load_with(schema)
    local saved_core = package.loaded["cfaccess.core"]
    local saved_m = package.loaded["cfaccess.eval.matchers"]
    package.loaded["cfaccess.core"] = { schema = schema }
    package.loaded["cfaccess.eval.matchers"] = nil
    local ok, err = pcall(require, "cfaccess.eval.matchers")
    package.loaded["cfaccess.core"] = saved_core
    package.loaded["cfaccess.eval.matchers"] = saved_m
    return ok, err
  end

  it("refuses to load when the schema has a rule type without a matcher", function()
    local types = { "new_rule_type" }
    for _, k in ipairs(core.schema.rule_types) do types[#types + 1] = k end
    local ok, err = load_with({ rule_types = types, rules = core.schema.rules })
    assert.is_false(ok)
    assert.matches('"new_rule_type" has no matcher', err)
  end)

  it("refuses to load when a matcher has no schema rule type", function()
    local types = {}
    for _, k in ipairs(core.schema.rule_types) do if k ~= "geo" then types[#types + 1] = k end end
    local ok, err = load_with({ rule_types = types, rules = core.schema.rules })
    assert.is_false(ok)
    assert.matches('matcher "geo" is not a schema rule type', err)
  end)
end)

describe("client:evaluate's reading (a recording client)", function()
  local ev_client = require("cfaccess.eval.client")
  -- A stand-in client that records calls: what client:evaluate asks for,
  -- and in which order, is what this checks (and a client without
  -- get_group, which the mock cannot be).
  local function recorder(policies, groups)
    local calls = {}
    local c = { calls = calls }
    function c.list_app_policies(_, app) calls[#calls + 1] = "list " .. app; return policies end
    function c.get_group(_, id)
      calls[#calls + 1] = "group " .. id
      if not groups[id] then return nil, setmetatable({ kind = "api", status = 404, message = "404" },
        { __tostring = function(e) return e.message end }) end
      return groups[id]
    end
    return c
  end
  local G = {
    outer = { id = "outer", name = "outer", include = { r.group("inner") }, exclude = { r.group("other") },
              created_at = "2014-01-01T05:20:00Z" },
    inner = { id = "inner", name = "inner", include = { r.geo("DE") } },
    other = { id = "other", name = "other", include = { r.email("mallory@example.com") },
              require = { r.group("inner") } },
  }

  it("reads the list, then each group once (transitively), none the caller gave", function()
    local c = recorder({ P("a", "allow", 1, { r.group("outer") }), P("b", "deny", 2, { r.group("inner") }) }, G)
    local res = assert(ev_client.evaluate(c, "app1", req()))
    assert.are.equal("a", res.decided_by.name)
    assert.are.same({ "list app1", "group outer", "group inner", "group other" }, c.calls)
    c.calls = {}
    local c2 = recorder({ P("a", "allow", 1, { r.group("outer") }) }, G)
    assert(ev_client.evaluate(c2, "app1", req(), { groups = { inner = G.inner } }))
    assert.are.same({ "list app1", "group outer", "group other" }, c2.calls)
  end)

  it("evaluates links without a precedence in the list's order", function()
    local c = recorder({ P("first", "allow", 5, { r.everyone() }), P("second", "deny", nil, { r.everyone() }) }, G)
    assert.are.equal("first", assert(ev_client.evaluate(c, "app1", req())).decided_by.name)
  end)

  it("a client that cannot read groups: invalid, naming the group", function()
    local c = recorder({ P("a", "allow", 1, { r.group("outer") }) }, G)
    c.get_group = nil
    local res, err = ev_client.evaluate(c, "app1", req())
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.matches('group "outer" is used', tostring(err))
  end)

  it("passes on a group's read error", function()
    local c = recorder({ P("a", "allow", 1, { r.group("gone") }) }, G)
    local res, err = ev_client.evaluate(c, "app1", req())
    assert.is_nil(res)
    assert.are.equal(404, err.status)
  end)
end)

describe("client:evaluate", function()
  local TOKEN = "t0k3n-evaluate-spec-S3CRET"
  local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
  local m
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } },
    function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  it("evaluates the app's live policies in precedence order, with one list request", function()
    local c = m:client(ACCT, TOKEN, {})
    assert(c:create_app_policy(APP, P("staff", "allow", 2, { r.email_domain("example.com") })))
    assert(c:create_app_policy(APP, P("block KP", "deny", 1, { r.geo("KP") })))
    assert(c:create_app_policy(APP, P("office", "bypass", 3, { r.ip("198.51.100.0/24") })))
    local before = m:count()
    local res = assert(c:evaluate(APP, req()))
    assert.are.equal('approved by "staff" (allow, precedence 2)', tostring(res))
    assert.is_string(res.decided_by.id)
    assert.are.equal("blocked", assert(c:evaluate(APP, req{ country = "KP" })).status)
    assert.are.equal("office", assert(c:evaluate(APP, req{ ip = "198.51.100.4", country = "KP" })).decided_by.name)
    -- read-only: three evaluations, three GETs, nothing else
    assert.are.equal(3, m:count() - before)
    assert.are.equal(3, m:count("GET") - (before - m:count("POST")))
    c:close()
  end)

  it("uses opts.groups and opts.lists for the groups and lists the policies name", function()
    local c = m:client(ACCT, TOKEN, {})
    assert(c:create_app_policy(APP, P("eu", "allow", 1, { r.group("eu") },
      { require = { r.email_list("list-emails") } })))
    local res = assert(c:evaluate(APP, req{ country = "FR", user = user{ email = "carol@example.com" } },
      { groups = GROUPS, lists = LISTS }))
    assert.are.equal("approved", res.status)
    c:close()
  end)

  it("says which list is missing instead of guessing (the client cannot read lists)", function()
    local c = m:client(ACCT, TOKEN, {})
    assert(c:create_app_policy(APP, P("listed", "allow", 1, { r.email_list("list-emails") })))
    local res, err = c:evaluate(APP, req())
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.matches('unknown list "list%-emails"', tostring(err))
    c:close()
  end)

  it("passes on the list's error (an unknown app)", function()
    local c = m:client(ACCT, TOKEN, {})
    local res, err = c:evaluate("0b1c2d3e-0000-4000-8000-000000000001", req())
    assert.is_nil(res)
    assert.are.equal("api", err.kind)
    c:close()
  end)

  it("fetches each group the live policies use once, with client:get_group", function()
    local c = m:client(ACCT, TOKEN, {})
    local inner = assert(c:create_group{ name = "eu", include = { r.geo("DE"), r.geo("FR") } })
    local outer = assert(c:create_group{ name = "eu staff", include = { r.email_domain("example.com") },
      require = { r.group(inner.id) } })
    assert(c:create_app_policy(APP, P("a", "allow", 1, { r.group(outer.id) })))
    assert(c:create_app_policy(APP, P("b", "deny", 2, { r.group(inner.id) })))
    local before = m:count()
    local res = assert(c:evaluate(APP, req{ country = "FR" }))
    assert.are.equal("a", res.decided_by.name)
    assert.are.equal(3, m:count() - before)   -- the list, then each group once
    c:close()
  end)

  it("evaluates the app's linked reusable and legacy policies together, by precedence", function()
    local c = m:client(ACCT, TOKEN, {})
    local reusable = assert(c:create_policy{ name = "reusable block DE", decision = "deny", include = { r.geo("DE") } })
    assert(c:create_app_policy(APP, P("legacy staff", "allow", 2, { r.email_domain("example.com") })))
    assert(c:attach_policy(APP, reusable.id, { precedence = 1 }))
    local res = assert(c:evaluate(APP, req()))
    assert.are.same({ "reusable block DE", reusable.id, 1 },
      { res.decided_by.name, res.decided_by.id, res.decided_by.precedence })
    res = assert(c:evaluate(APP, req{ country = "FR" }))
    assert.are.equal("legacy staff", res.decided_by.name)
    c:close()
  end)
end)

describe("cfaccess test (the command, as a subprocess)", function()
  local ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."
  local LUA = os.getenv("LUA") or "lua5.4"
  local q = mockctl.shell_quote
  local CF_VARS = { "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL",
    "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_ZONE_ID", "CLOUDFLARE_BASE_URL", "NO_COLOR" }
  local dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
  end)
  teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  local function write(name, text)
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(text)
    f:close()
    return name
  end

  -- Run `cfaccess ARGS` in dir with only `env` of the Cloudflare variables.
  local function run(args, env)
    local words = { "cd", q(dir), "&&", "env" }
    for _, v in ipairs(CF_VARS) do words[#words + 1] = "-u " .. v end
    for k, v in pairs(env or {}) do words[#words + 1] = q(k .. "=" .. v) end
    words[#words + 1] = "NO_PROXY=127.0.0.1,localhost timeout 120"
    words[#words + 1] = q(LUA) .. " " .. q(ROOT .. "/bin/cfaccess")
    for _, a in ipairs(args) do words[#words + 1] = q(a) end
    local out, err = os.tmpname(), os.tmpname()
    words[#words + 1] = "</dev/null >" .. q(out) .. " 2>" .. q(err)
    local _, how, code = os.execute(table.concat(words, " "))
    local res = { how = how, code = code, out = mockctl.read_file(out) or "", err = mockctl.read_file(err) or "" }
    os.remove(out)
    os.remove(err)
    res.show = ("exit %s\n--- stdout\n%s--- stderr\n%s"):format(tostring(code), res.out, res.err)
    return res
  end

  local POLICIES = [[
  policies = {
    { name = "block embargoed", decision = "deny", precedence = 1, include = { r.geo("KP"), r.geo("IR") } },
    { name = "staff", decision = "allow", precedence = 2, include = { r.email_domain("example.com") } },
    { name = "contractors", decision = "allow", precedence = 3, include = { r.group("grp-c") },
      require = { r.auth_method("mfa") }, approval_required = true },
  },
  groups = { ["grp-c"] = { name = "contractors", include = r.emails{ "c1@partner.example" } } },
]]
  local function lua_file(name, case_text, extra)
    return write(name, "local r = rules\nreturn {\n" .. (extra or POLICIES)
      .. "  cases = {\n" .. case_text .. "  },\n}\n")
  end
  local PASSING = [[
    { name = "staff from DE", request = { country = "DE", user = { email = "ann@example.com" } },
      expect = { allowed = true, status = "approved", decided_by = "staff" } },
    { name = "contractor with MFA", request = { country = "DE", user = { email = "c1@partner.example",
      amr = { "mfa" } } },
      expect = { allowed = true, decided_by = "contractors" } },
    { name = "contractor from KP", request = { country = "KP", user = { email = "c1@partner.example",
      amr = { "mfa" } } },
      expect = { allowed = false, status = "blocked", decided_by = "block embargoed" } },
    { name = "no login", request = { country = "DE" }, expect = { status = "login_required" } },
    { name = "stranger", request = { country = "DE", user = { email = "x@other.example" } },
      expect = { status = "blocked", decided_by = false } },
    { name = "unknown country", request = { user = { email = "ann@example.com" } },
      expect = { status = "indeterminate" } },
]]

  it("passes a passing file: exit 0, one ok line per case, then the summary", function()
    local f = lua_file("pass_test.lua", PASSING)
    local res = run{ "test", f }
    assert.are.equal(0, res.code, res.show)
    assert.are.equal("# pass_test.lua\nok - staff from DE\nok - contractor with MFA\nok - contractor from KP\n"
      .. "ok - no login\nok - stranger\nok - unknown country\n6 passed, 0 failed\n", res.out)
    assert.are.equal("", res.err)
  end)

  it("fails a failing case: exit 1, with what was expected and what came", function()
    local f = lua_file("fail_test.lua", [[
    { name = "staff from KP", request = { country = "KP", user = { email = "ann@example.com" } },
      expect = { allowed = true, decided_by = "staff" } },
    { name = "staff from DE", request = { country = "DE", user = { email = "ann@example.com" } },
      expect = { allowed = true } },
]])
    local res = run{ "test", f }
    assert.are.equal(1, res.code, res.show)
    assert.are.equal("# fail_test.lua\n"
      .. 'not ok - staff from KP: expected allowed = true, decided_by = "staff", got allowed = false, '
      .. 'decided_by = "block embargoed" (decided by "block embargoed")\n'
      .. "ok - staff from DE\n1 passed, 1 failed\n", res.out)
  end)

  it("reports an indeterminate case: exit 3, naming the missing input", function()
    local f = lua_file("indet_test.lua", [[
    { name = "no country", request = { user = { email = "ann@example.com" } }, expect = { allowed = true } },
    { name = "staff from DE", request = { country = "DE", user = { email = "ann@example.com" } },
      expect = { allowed = true } },
]])
    local res = run{ "test", f }
    assert.are.equal(3, res.code, res.show)
    assert.is_truthy(res.out:find('not ok - no country: indeterminate: include[1] of "block embargoed" needs country\n',
      1, true), res.show)
    assert.is_truthy(res.out:find("\n1 passed, 1 failed\n$"), res.show)
  end)

  it("exit 1 wins over 3 when one file fails and another is indeterminate; 3 over 0", function()
    local pass = lua_file("p_test.lua", PASSING)
    local indet = lua_file("i_test.lua", [[
    { name = "no country", request = { user = { email = "ann@example.com" } }, expect = { allowed = true } },
]])
    local fail = lua_file("f_test.lua", [[
    { name = "wrong", request = { country = "DE", user = { email = "ann@example.com" } },
      expect = { allowed = false } },
]])
    assert.are.equal(3, run{ "test", pass, indet }.code)
    local res = run{ "test", pass, indet, fail }
    assert.are.equal(1, res.code, res.show)
    assert.is_truthy(res.out:find("# p_test.lua\n", 1, true) and res.out:find("# f_test.lua\n", 1, true), res.show)
    assert.is_truthy(res.out:find("\n6 passed, 2 failed\n$"), res.show)
  end)

  it("reads JSON test files", function()
    local f = write("t_test.json", [[{
  "policies": [ { "name": "staff", "decision": "allow", "precedence": 1,
                  "include": [ { "email_domain": { "domain": "example.com" } } ] } ],
  "cases": [ { "name": "staff", "request": { "user": { "email": "a@example.com" } },
               "expect": { "status": "approved", "decided_by": "staff" } } ] }
]])
    local res = run{ "test", f }
    assert.are.equal(0, res.code, res.show)
    assert.are.equal("# t_test.json\nok - staff\n1 passed, 0 failed\n", res.out)
  end)

  it("tests an app of a state file (state + app), in the state's order", function()
    write("state.lua", [[
local r = rules
return {
  policies = {
    { name = "staff", decision = "allow", include = { r.email_domain("example.com") } },
    { name = "no KP", decision = "deny", include = { r.geo("KP") } },
  },
  apps = { ["3f2d1c7e-8a9b-4c5d-9e0f-1a2b3c4d5e6f"] = { "no KP", "staff" } },
}
]])
    local f = write("s_test.lua", [[
return {
  state = "state.lua", app = "3f2d1c7e-8a9b-4c5d-9e0f-1a2b3c4d5e6f",
  cases = {
    { name = "KP staff blocked first", request = { country = "KP", user = { email = "a@example.com" } },
      expect = { allowed = false, decided_by = "no KP" } },
    { name = "DE staff", request = { country = "DE", user = { email = "a@example.com" } },
      expect = { allowed = true, decided_by = "staff" } },
  },
}
]])
    local res = run{ "test", f }
    assert.are.equal(0, res.code, res.show)
  end)

  it("an invalid file: exit 1, each problem as FILE: path: message", function()
    local f = lua_file("bad_test.lua", [[
    { name = "typo", request = { contry = "DE" }, expect = { staus = "approved" } },
]], [[
  policies = { { name = "x", decision = "allow", precedence = 1, include = { r.group("nope") } } },
]])
    local res = run{ "test", f }
    assert.are.equal(1, res.code, res.show)
    assert.is_truthy(res.out:find("bad_test.lua: cases[1].expect.staus: unknown field", 1, true), res.show)
    local f2 = lua_file("bad2_test.lua", [[
    { name = "ok", request = {}, expect = { status = "blocked" } },
]], [[
  policies = { { name = "x", decision = "allow", precedence = 1, include = { r.group("nope") } } },
]])
    res = run{ "test", f2 }
    assert.are.equal(1, res.code, res.show)
    assert.is_truthy(res.out:find('bad2_test.lua: policies[1].include[1].group.id: unknown group "nope"', 1, true),
      res.show)
    res = run{ "test", "missing_test.lua" }
    assert.are.equal(1, res.code, res.show)
  end)

  it("a case whose request is invalid fails (exit 1), with the path", function()
    local f = lua_file("req_test.lua", [[
    { name = "typo", request = { contry = "DE", user = { email = "a@example.com" } }, expect = { allowed = true } },
]])
    local res = run{ "test", f }
    assert.are.equal(1, res.code, res.show)
    assert.is_truthy(res.out:find("not ok - typo: invalid request: cases[1].request.contry: unknown field", 1, true),
      res.show)
  end)

  it("usage errors exit 64", function()
    assert.are.equal(64, run{ "test" }.code)
    assert.are.equal(64, run{ "test", "--nope", "x.lua" }.code)
  end)

  describe("--live", function()
    local TOKEN = "t0k3n-evaluate-live-S3CRET"
    local APP = "3f2d1c7e-8a9b-4c5d-9e0f-1a2b3c4d5e6f"
    local m
    local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } },
      function(mock) m = mock end)
    setup(hooks.setup)
    teardown(hooks.teardown)
    before_each(hooks.before_each)

    local function env() return { CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_ACCOUNT_ID = ACCT,
                                  CLOUDFLARE_BASE_URL = m.base_url } end

    it("takes the policies from the live app named by the file, read-only", function()
        local c = m:client(ACCT, TOKEN, {})
      assert(c:create_app_policy(APP, P("staff", "allow", 2, { r.email_domain("example.com") })))
      assert(c:create_app_policy(APP, P("block KP", "deny", 1, { r.geo("KP") })))
      c:close()
      local f = write("live_test.lua", ([[
return { app = %q, cases = {
  { name = "staff", request = { country = "DE", user = { email = "a@example.com" } },
    expect = { decided_by = "staff" } },
  { name = "KP", request = { country = "KP", user = { email = "a@example.com" } },
    expect = { decided_by = "block KP" } },
} }
]]):format(APP))
      local posts = m:count("POST")
      local before = m:count()
      local res = run({ "test", "--live", f }, env())
      assert.are.equal(0, res.code, res.show)
      assert.are.equal("# live_test.lua\nok - staff\nok - KP\n2 passed, 0 failed\n", res.out)
      assert.are.equal(posts, m:count("POST"))
      assert.are.equal(1, m:count() - before)          -- one list request for both cases
      assert.is_falsy(res.out:find(TOKEN, 1, true) or res.err:find(TOKEN, 1, true))
    end)

    it("fails a live case that the live policies decide otherwise: exit 1", function()
        local c = m:client(ACCT, TOKEN, {})
      assert(c:create_app_policy(APP, P("everyone", "allow", 1, { r.everyone() })))
      c:close()
      local f = write("live2_test.lua", ([[
return { app = %q, cases = {
  { name = "KP must be blocked", request = { country = "KP", user = { email = "a@example.com" } },
    expect = { allowed = false } },
} }
]]):format(APP))
      local res = run({ "test", "--live", f }, env())
      assert.are.equal(1, res.code, res.show)
      assert.is_truthy(res.out:find('not ok - KP must be blocked: expected allowed = false, got allowed = true '
        .. '(decided by "everyone")', 1, true), res.show)
    end)

    it("without credentials: exit 64, nothing sent", function()
        local f = write("live3_test.lua", ([[return { app = %q, cases = { { name = "x", request = {},
          expect = { allowed = false } } } }]]):format(APP))
      local before = m:count()
      local res = run({ "test", "--live", f }, { CLOUDFLARE_ACCOUNT_ID = ACCT, CLOUDFLARE_BASE_URL = m.base_url })
      assert.are.equal(64, res.code, res.show)
      assert.matches("CLOUDFLARE_API_TOKEN", res.err)
      assert.are.equal(before, m:count())
    end)
  end)
end)
