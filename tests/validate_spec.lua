-- cfaccess.core.validate / encode: every field and rule type accepted in a
-- valid form and rejected in invalid forms with the exact path; kinds; old
-- and new rule shapes; format checkers through the Lua API; all problems at
-- once; did-you-mean; raw access only.
local core = require("cfaccess.core")
local cjson = require("cjson").new()

local UUID, IDP, ACCOUNT = require("testutil").UUID, require("testutil").IDP, require("testutil").ACCOUNT

local P = require("testutil").policy

-- The problems of an invalid policy as a { [path] = message } map, plus the error.
local function problems(policy, opts)
  local ok, err = core.validate(policy, opts)
  assert.is_nil(ok)
  assert.is_table(err)
  assert.equal("invalid", err.kind)
  local map = {}
  for _, p in ipairs(err.problems) do map[p.path] = p.message end
  return map, err
end

local function assert_valid(policy, opts)
  local ok, err = core.validate(policy, opts)
  assert.is_true(ok, err and tostring(err))
  local json, eerr = core.encode(policy, opts)
  assert.is_string(json, eerr and tostring(eerr))
  return json
end

-- Exactly one problem, at `path`, whose message contains `frag` (plain).
local function assert_problem(policy, path, frag, opts)
  local map, err = problems(policy, opts)
  assert.equal(1, #err.problems, tostring(err))
  assert.is_string(map[path], "no problem at " .. path .. ": " .. tostring(err))
  assert.truthy(map[path]:find(frag, 1, true), map[path])
end

local function rule_policy(rule) return P{ include = { rule } } end

describe("validate: top-level fields", function()
  it("accepts a minimal policy and returns true", function()
    assert.is_true(core.validate(P()))
  end)

  it("accepts every app field in a valid form", function()
    assert_valid(P{
      exclude = { { email = { email = "bad@example.com" } } },
      require = { { geo = { country_code = "US" } } },
      precedence = 3,
      session_duration = "24h",
      approval_required = true,
      approval_groups = { { approvals_needed = 1, email_addresses = { "a@example.com" },
                            email_list_uuid = UUID } },
      isolation_required = false,
      purpose_justification_required = true,
      purpose_justification_prompt = "why?",
      mfa_config = { allowed_authenticators = { "totp", "security_key" }, mfa_disabled = false,
                     mfa_bypass = false, session_duration = "5m" },
      connection_rules = { rdp = { allowed_clipboard_local_to_remote_formats = { "text" },
                                   allowed_clipboard_remote_to_local_formats = { "text", "file" } } },
    })
  end)

  it("requires name, decision and include", function()
    local map, err = problems({})
    assert.equal(3, #err.problems)
    assert.equal("required field is missing", map.name)
    assert.equal("required field is missing", map.decision)
    assert.equal("required field is missing", map.include)
  end)

  it("rejects an empty name and a wrong decision", function()
    assert_problem(P{ name = "" }, "name", "must not be empty")
    assert_problem(P{ name = 5 }, "name", "expected a string, got number")
    assert_problem(P{ decision = "Allow" }, "decision",
      'expected one of allow, deny, non_identity, bypass, got "Allow"')
    for _, d in ipairs{ "allow", "deny", "non_identity", "bypass" } do assert_valid(P{ decision = d }) end
  end)

  it("checks include, exclude, require as rule lists", function()
    assert_problem(P{ include = {} }, "include", "must contain at least one rule")
    assert_problem(P{ include = "x" }, "include", "expected a list of rules, got string")
    assert_problem(P{ exclude = { email = { email = "a@example.com" } } }, "exclude",
      "expected a list of rules, got a single rule (wrap it in { })")
    assert_problem(P{ require = { [1] = { everyone = {} }, [3] = { everyone = {} } } }, "require",
      "expected a list")
    assert_problem(P{ include = { { everyone = {} }, x = 1 } }, "include", "expected a list")
    assert_problem(P{ include = { 5 } }, "include[1]", "expected a rule (a table with one rule type), got number")
  end)

  it("precedence: integers >= 0, integral floats, not 1.5 / NaN / inf / strings", function()
    assert_valid(P{ precedence = 0 })
    assert.equal('{"name":"p","decision":"allow","include":[{"everyone":{}}],"precedence":1}',
      core.encode(P{ precedence = 1.0 }))
    assert_problem(P{ precedence = 1.5 }, "precedence", "expected an integer, got 1.5")
    assert_problem(P{ precedence = 0 / 0 }, "precedence", "expected an integer")
    assert_problem(P{ precedence = math.huge }, "precedence", "expected an integer")
    assert_problem(P{ precedence = -math.huge }, "precedence", "expected an integer")
    assert_problem(P{ precedence = -1 }, "precedence", "expected an integer >= 0, got -1")
    assert_problem(P{ precedence = "1" }, "precedence", "expected an integer, got string")
  end)

  it("booleans are real booleans", function()
    for _, f in ipairs{ "approval_required", "isolation_required", "purpose_justification_required" } do
      assert_valid(P{ [f] = true })
      assert_problem(P{ [f] = "true" }, f, "expected a boolean, got string")
      assert_problem(P{ [f] = 1 }, f, "expected a boolean, got number")
    end
  end)

  it("purpose_justification_prompt is a string (may be empty)", function()
    assert_valid(P{ purpose_justification_prompt = "" })
    assert_problem(P{ purpose_justification_prompt = {} }, "purpose_justification_prompt",
      "expected a string, got table")
  end)

  it("session_duration: Go durations, \"\" and cfaccess.null (same as the application's)", function()
    for _, d in ipairs{ "300ms", "2h45m", "1.5h", ".5s", "0", "1µs", "1μs", "1us", "1ns", "24h",
                        "+5s", "-0", "1h2m3s4ms5us6ns", "5.s", "9223372036s" } do
      assert_valid(P{ session_duration = d })
    end
    assert.equal('{"name":"p","decision":"allow","include":[{"everyone":{}}],"session_duration":null}',
      core.encode(P{ session_duration = cjson.null }))
    assert.equal(cjson.null, core.null)
    assert.equal(cjson.null, require("cfaccess").null)
    assert.equal('{"name":"p","decision":"allow","include":[{"everyone":{}}],"session_duration":""}',
      core.encode(P{ session_duration = "" }))
    assert.equal('{"name":"p","decision":"allow","include":[{"everyone":{}}],"session_duration":null}',
      core.encode(P{ session_duration = core.null }, { kind = "reusable" }))
    assert_problem(P{ session_duration = core.null }, "session_duration", 'not accepted in a "zone" policy',
      { kind = "zone" })
    assert_problem(P{ name = core.null }, "name", "expected a string, got null")
    for _, d in ipairs{ "2x", "1", "h", ".s", "1h1", "1 h", "1H", "9223372037s", "1e3s", "--1s", "0x" } do
      assert_problem(P{ session_duration = d }, "session_duration", "is not a duration")
    end
    assert_problem(P{ session_duration = "2x" }, "session_duration",
      '"2x" is not a duration (units: ns, us, µs, ms, s, m, h)')
    assert_problem(P{ session_duration = "-1h" }, "session_duration", "negative")
    assert_problem(P{ session_duration = 5 }, "session_duration", "expected a string, got number")
  end)

  it("approval_groups items", function()
    assert_valid(P{ approval_groups = { { approvals_needed = 0 }, { approvals_needed = 2.0 } } })
    assert_problem(P{ approval_groups = { {} } }, "approval_groups[1].approvals_needed", "required field is missing")
    assert_problem(P{ approval_groups = { { approvals_needed = -1 } } }, "approval_groups[1].approvals_needed", ">= 0")
    assert_problem(P{ approval_groups = { { approvals_needed = 1, email_addresses = { "a@example.com", "nope" } } } },
      "approval_groups[1].email_addresses[2]", '"nope" is not an email address')
    assert_problem(P{ approval_groups = { { approvals_needed = 1, email_list_uuid = "123" } } },
      "approval_groups[1].email_list_uuid", "is not a UUID")
    assert_problem(P{ approval_groups = { { approvals_needed = 1, emails = {} } } },
      "approval_groups[1].emails", "unknown field")
    assert_problem(P{ approval_groups = { approvals_needed = 1 } }, "approval_groups", "expected a list")
  end)

  it("mfa_config fields", function()
    assert_valid(P{ mfa_config = {} })
    assert_valid(P{ mfa_config = { mfa_bypass = true } })
    assert_valid(P{ mfa_config = { mfa_disabled = true, mfa_bypass = true } })
    for _, a in ipairs{ "totp", "biometrics", "security_key" } do
      assert_valid(P{ mfa_config = { allowed_authenticators = { a } } })
      assert_valid(P{ mfa_config = { allowed_authenticators = { a } } }, { kind = "reusable" })
      assert_problem(P{ mfa_config = { allowed_authenticators = { a } } }, "mfa_config.allowed_authenticators[1]",
        ('got "%s": "%s" is for app and reusable policies'):format(a, a), { kind = "infrastructure" })
    end
    for _, a in ipairs{ "piv_key", "ssh_fido2_key", "ssh_piv_key" } do
      assert_valid(P{ mfa_config = { allowed_authenticators = { a } } }, { kind = "infrastructure" })
      assert_problem(P{ mfa_config = { allowed_authenticators = { a } } }, "mfa_config.allowed_authenticators[1]",
        ('expected one of totp, biometrics, security_key, got "%s": "%s" is for infrastructure policies'):format(a, a))
    end
    assert_problem(P{ mfa_config = { allowed_authenticators = { "sms" } } }, "mfa_config.allowed_authenticators[1]",
      'expected one of totp, biometrics, security_key, got "sms"')
    assert_problem(P{ mfa_config = { allowed_authenticators = { "topt" } } }, "mfa_config.allowed_authenticators[1]",
      'got "topt" (did you mean "totp"?)')
    assert_problem(P{ mfa_config = { allowed_authenticators = { "piv_kye" } } }, "mfa_config.allowed_authenticators[1]",
      'got "piv_kye" (did you mean "piv_key"? it is for infrastructure policies)')
    assert_problem(P{ mfa_config = { allowed_authenticators = { "topt" } } }, "mfa_config.allowed_authenticators[1]",
      'expected one of piv_key, ssh_fido2_key, ssh_piv_key, got "topt" '
        .. '(did you mean "totp"? it is for app and reusable policies)',
      { kind = "infrastructure" })
    for _, d in ipairs{ "0m", "5m", "24h", "720h", "43200m", "0h" } do
      assert_valid(P{ mfa_config = { session_duration = d } })
    end
    for _, d in ipairs{ "721h", "43201m", "1.5h", "30s", "m", "5", "-5m", "", "1h30m" } do
      assert_problem(P{ mfa_config = { session_duration = d } }, "mfa_config.session_duration",
        "is not an MFA duration")
    end
    assert_problem(P{ mfa_config = { mfa_disabled = "no" } }, "mfa_config.mfa_disabled", "expected a boolean")
    assert_problem(P{ mfa_config = true }, "mfa_config", "expected an object (a table), got boolean")
  end)

  it("connection_rules: rdp for app and reusable", function()
    assert_valid(P{ connection_rules = { rdp = {} } })
    assert_valid(P{ connection_rules = { rdp = {} } }, { kind = "reusable" })
    assert_problem(P{ connection_rules = { rdp = { allowed_clipboard_local_to_remote_formats = { "image" } } } },
      "connection_rules.rdp.allowed_clipboard_local_to_remote_formats[1]", 'expected one of text, file, got "image"')
    assert_problem(P{ connection_rules = { ssh = { usernames = { "root" } } } }, "connection_rules.ssh",
      'not accepted in an "app" policy')
  end)
end)

describe("validate: kinds", function()
  it("zone takes no session_duration, mfa_config or connection_rules", function()
    assert_valid(P{ precedence = 1, approval_required = true }, { kind = "zone" })
    assert_problem(P{ session_duration = "1h" }, "session_duration", 'not accepted in a "zone" policy',
      { kind = "zone" })
    assert_problem(P{ mfa_config = {} }, "mfa_config", 'not accepted in a "zone" policy', { kind = "zone" })
    assert_problem(P{ connection_rules = {} }, "connection_rules", 'not accepted in a "zone" policy', { kind = "zone" })
  end)

  it("reusable takes no precedence", function()
    assert_valid(P{ session_duration = "1h", mfa_config = {} }, { kind = "reusable" })
    assert_problem(P{ precedence = 1 }, "precedence", 'not accepted in a "reusable" policy', { kind = "reusable" })
  end)

  it("infrastructure: allow only, ssh connection rules, few fields", function()
    local infra = { kind = "infrastructure" }
    assert_valid(P{ exclude = { { everyone = {} } }, require = { { everyone = {} } },
                    mfa_config = { allowed_authenticators = { "piv_key", "ssh_fido2_key" } },
                    connection_rules = { ssh = { usernames = { "root", "ubuntu" }, allow_email_alias = true } } },
                 infra)
    assert_problem(P{ decision = "deny" }, "decision", 'expected "allow"', infra)
    for _, f in ipairs{ "precedence", "session_duration", "approval_required", "approval_groups",
                        "isolation_required", "purpose_justification_required", "purpose_justification_prompt" } do
      local v = ({ precedence = 1, session_duration = "1h", approval_groups = { { approvals_needed = 1 } },
                   purpose_justification_prompt = "x" })[f]
      if v == nil then v = true end
      assert_problem(P{ [f] = v }, f, 'not accepted in an "infrastructure" policy', infra)
    end
    assert_problem(P{ connection_rules = { rdp = {} } }, "connection_rules.rdp", "not accepted", infra)
    assert_problem(P{ connection_rules = { ssh = {} } }, "connection_rules.ssh.usernames", "required field is missing",
      infra)
    assert_problem(P{ connection_rules = { ssh = { usernames = {} } } }, "connection_rules.ssh.usernames",
      "at least one", infra)
    assert_problem(P{ connection_rules = { ssh = { usernames = { "root", "" } } } },
      "connection_rules.ssh.usernames[2]", "must not be empty", infra)
    assert_problem(P{ connection_rules = { ssh = { usernames = { "root" }, allow_email_alias = "y" } } },
      "connection_rules.ssh.allow_email_alias", "expected a boolean", infra)
  end)

  it("opts: unknown kind is a usage error, wrong types raise", function()
    local ok, err = core.validate(P(), { kind = "zonal" })
    assert.is_nil(ok)
    assert.equal("usage", err.kind)
    assert.truthy(tostring(err):find('unknown policy kind "zonal"', 1, true))
    local j, e2 = core.encode(P(), { kind = "nope" })
    assert.is_nil(j)
    assert.equal("usage", e2.kind)
    assert.has_error(function() core.validate(P(), "app") end)
    assert.has_error(function() core.validate(P(), { kind = 1 }) end)
    assert.has_error(function() core.validate(P(), { allow_unknown = "yes" }) end)
    assert.has_error(function() core.validate("policy") end)
    assert.is_true(core.validate(P(), {}))
    assert.is_true(core.validate(P(), { kind = "app", allow_unknown = false }))
  end)
end)

-- Each rule type: a valid body, then invalid bodies with the path of the
-- problem under include[1] and a message fragment.
local rule_cases = {
  { "email", { email = "alice@example.com" },
    { { { email = "alice" }, "email", "is not an email address" }, { {}, "email", "required field is missing" } } },
  { "email_list", { id = UUID }, { { { id = "" }, "id", "must not be empty" } } },
  { "email_domain", { domain = "example.com" },
    { { { domain = "@example.com" }, "domain", "is not a domain name" },
      { { domain = "-x.com" }, "domain", "is not a domain name" } } },
  { "everyone", {}, { { { x = 1 }, "x", "unknown field" } } },
  { "ip", { ip = "2400:cb00:21:10a::/64" },
    { { { ip = "10.0.0.0/33" }, "ip", "is not an IP address or CIDR range" },
      { { ip = "10.0.0" }, "ip", "is not an IP" }, { { ip = 10 }, "ip", "expected a string, got number" } } },
  { "ip_list", { id = UUID }, { { { id = 1 }, "id", "expected a string" } } },
  { "certificate", {}, { { { cn = "x" }, "cn", "unknown field" } } },
  { "common_name", { common_name = "host.example.com" }, { { {}, "common_name", "required field is missing" } } },
  { "group", { id = UUID }, { { { id = UUID, uuid = UUID }, "uuid", "unknown field" } } },
  { "azureAD", { id = "g", identity_provider_id = IDP },
    { { { id = "g" }, "identity_provider_id", "required field is missing" } } },
  { "github-organization", { name = "org", identity_provider_id = IDP, team = "ops" },
    { { { name = "org", identity_provider_id = IDP, team = "" }, "team", "must not be empty" } } },
  { "gsuite", { email = "admins@example.com", identity_provider_id = IDP },
    { { { email = "admins", identity_provider_id = IDP }, "email", "is not an email address" } } },
  { "okta", { name = "Admins", identity_provider_id = IDP },
    { { { identity_provider_id = IDP }, "name", "required field is missing" } } },
  { "saml", { attribute_name = "group", attribute_value = "admins", identity_provider_id = IDP },
    { { { attribute_name = "group", identity_provider_id = IDP }, "attribute_value", "required field is missing" },
      { { attribute_name = "group", attribute_value = "admins" }, "identity_provider_id",
        "required field is missing" } } },
  { "oidc", { claim_name = "groups", claim_value = "admins", identity_provider_id = IDP },
    { { { claim_name = "groups", claim_value = "admins" }, "identity_provider_id", "required field is missing" } } },
  { "auth_context", { id = "x", ac_id = "c1", identity_provider_id = IDP },
    { { { id = "x", identity_provider_id = IDP }, "ac_id", "required field is missing" } } },
  { "login_method", { id = IDP }, { { { id = false }, "id", "expected a string, got boolean" } } },
  { "auth_method", { auth_method = "mfa" }, { { { auth_method = "" }, "auth_method", "must not be empty" } } },
  { "service_token", { token_id = UUID }, { { { token_id = UUID, id = UUID }, "id", "unknown field" } } },
  { "any_valid_service_token", {}, { { { token_id = UUID }, "token_id", "unknown field" } } },
  { "external_evaluation", { evaluate_url = "https://eval.example.com/x", keys_url = "https://eval.example.com/keys" },
    { { { evaluate_url = "ftp://x", keys_url = "https://k.example.com" }, "evaluate_url", "is not an https://" } } },
  { "geo", { country_code = "US" },
    { { { country_code = "us" }, "country_code", "is not an ISO 3166-1 alpha-2 country code" },
      { { country_code = "XX" }, "country_code", "is not an ISO 3166-1" },
      { { country_code = "USA" }, "country_code", "is not an ISO 3166-1" } } },
  { "device_posture", { integration_uid = UUID }, { { {}, "integration_uid", "required field is missing" } } },
  { "linked_app_token", { app_uid = UUID }, { { { app_uid = 7 }, "app_uid", "expected a string" } } },
  { "user_risk_score", { user_risk_score = { "low", "high" } },
    { { { user_risk_score = {} }, "user_risk_score", "must contain at least one element" },
      { { user_risk_score = { "severe" } }, "user_risk_score[1]", 'expected one of low, medium, high, unscored' } } },
  { "cloudflare_account_member", { account_id = ACCOUNT },
    { { { account_id = "abc" }, "account_id", "is not 32 hex characters" } } },
}

describe("validate: rule types", function()
  it("covers all 26 rule types", function()
    assert.equal(26, #rule_cases)
  end)

  for _, case in ipairs(rule_cases) do
    local rtype, body, bad = case[1], case[2], case[3]
    it(rtype .. " accepted and rejected with exact paths", function()
      local decision = rtype == "linked_app_token" and "non_identity" or "allow"
      local json = assert_valid(P{ decision = decision, include = { { [rtype] = body } } })
      assert.truthy(json:find('"' .. rtype .. '":', 1, true))
      for _, b in ipairs(bad) do
        assert_problem(P{ decision = decision, include = { { [rtype] = b[1] } } },
          "include[1]." .. rtype .. "." .. b[2], b[3])
      end
      assert_problem(P{ decision = decision, exclude = { { everyone = {} }, { [rtype] = "x" } } },
        "exclude[2]." .. rtype, "expected an object (a table), got string")
    end)
  end

  local LEGACY = { legacy = true }

  it("accepts the 2024-08 shapes with opts.legacy (connection_id, okta email, saml without IdP)", function()
    local json = assert_valid(rule_policy{ azureAD = { id = "g", connection_id = IDP } }, LEGACY)
    assert.truthy(json:find('"connection_id":"' .. IDP .. '"', 1, true))
    assert_valid(rule_policy{ gsuite = { email = "a@example.com", connection_id = IDP } }, LEGACY)
    assert_valid(rule_policy{ ["github-organization"] = { name = "org", connection_id = IDP } }, LEGACY)
    assert_valid(rule_policy{ okta = { email = "admins@example.com", connection_id = IDP } }, LEGACY)
    assert_valid(rule_policy{ okta = { name = "Admins", connection_id = IDP } }, LEGACY)
    assert_valid(rule_policy{ saml = { attribute_name = "a", attribute_value = "b" } }, LEGACY)
    assert_valid(rule_policy{ okta = { name = "Admins", identity_provider_id = IDP } }, LEGACY)
    assert_valid(rule_policy{ ["github-organization"] = { name = "org", identity_provider_id = IDP } })
  end)

  it("rejects the 2024-08 shapes without opts.legacy, naming the rename", function()
    local rename = "renamed identity_provider_id in the 2025 API (opts.legacy = true accepts the 2024 shape)"
    assert_problem(rule_policy{ azureAD = { id = "g", connection_id = IDP } },
      "include[1].azureAD.connection_id", rename)
    assert_problem(rule_policy{ gsuite = { email = "a@example.com", connection_id = IDP } },
      "include[1].gsuite.connection_id", rename)
    assert_problem(rule_policy{ ["github-organization"] = { name = "org", connection_id = IDP } },
      "include[1].github-organization.connection_id", rename)
    assert_problem(rule_policy{ okta = { name = "Admins", connection_id = IDP } },
      "include[1].okta.connection_id", rename)
    assert_problem(rule_policy{ okta = { email = "admins@example.com", identity_provider_id = IDP } },
      "include[1].okta.email", "renamed name in the 2025 API (opts.legacy = true accepts the 2024 shape)")
    assert_problem(rule_policy{ saml = { attribute_name = "a", attribute_value = "b" } },
      "include[1].saml.identity_provider_id", "required field is missing")
    local map = problems(rule_policy{ okta = { email = "admins@example.com", connection_id = IDP } })
    assert.same({ "include[1].okta.connection_id", "include[1].okta.email" },
      (function() local t = {} for k in pairs(map) do t[#t + 1] = k end table.sort(t) return t end)())
  end)

  it("rejects both identity_provider_id and connection_id (legacy)", function()
    assert_problem(rule_policy{ azureAD = { id = "g", connection_id = IDP, identity_provider_id = IDP } },
      "include[1].azureAD", 'give only one of "identity_provider_id" and "connection_id"', LEGACY)
    assert_problem(rule_policy{ okta = { name = "x", email = "y", identity_provider_id = IDP } },
      "include[1].okta", 'give only one of "name" and "email"', LEGACY)
    assert_problem(rule_policy{ azureAD = { id = "g" } }, "include[1].azureAD.identity_provider_id",
      'required field is missing (or the older "connection_id")', LEGACY)
  end)

  it("a rule has exactly one type", function()
    assert_problem(rule_policy{ email = { email = "a@example.com" }, geo = { country_code = "US" } },
      "include[1]", 'a rule has exactly one type, found "email" and "geo"')
    assert_problem(rule_policy{ email = { email = "a@example.com" }, geo = { country_code = "US" }, everyone = {} },
      "include[1]", 'found "email", "everyone" and "geo"')
    assert_problem(rule_policy{}, "include[1]", "a rule has exactly one type, found an empty table")
  end)

  it("unknown rule types suggest the right spelling", function()
    assert_problem(rule_policy{ azuread = { id = "g", identity_provider_id = IDP } }, "include[1].azuread",
      'unknown rule type (did you mean "azureAD"?)')
    assert_problem(rule_policy{ github_organization = { name = "o", identity_provider_id = IDP } },
      "include[1].github_organization", 'did you mean "github-organization"?')
    assert_problem(rule_policy{ emial = { email = "a@example.com" } }, "include[1].emial", 'did you mean "email"?')
    assert_problem(rule_policy{ zzzzzz = {} }, "include[1].zzzzzz", "unknown rule type")
  end)

  it("linked_app_token only with decision non_identity or bypass", function()
    assert_valid(P{ decision = "bypass", include = { { linked_app_token = { app_uid = UUID } } } })
    assert_problem(P{ decision = "allow", require = { { linked_app_token = { app_uid = UUID } } } }, "require[1]",
      'a linked_app_token rule needs decision "non_identity" or "bypass", got "allow"')
  end)
end)

describe("validate: behaviour", function()
  it("reports every problem at once with a one-line summary", function()
    local map, err = problems(P{ name = 1, session_duration = "2x", include = { { email = { email = 5 } } } })
    assert.equal(3, #err.problems)
    assert.equal("expected a string, got number", map.name)
    assert.equal("expected a string, got number", map["include[1].email.email"])
    assert.truthy(map.session_duration)
    assert.equal("invalid policy: name: expected a string, got number (and 2 more problems)", err.message)
    assert.equal(err.message, tostring(err))
    assert.is_nil(err.message:find("\n"))
  end)

  it("summary for one and two problems", function()
    local _, e1 = problems(P{ name = true })
    assert.equal("invalid policy: name: expected a string, got boolean", e1.message)
    local _, e2 = problems(P{ name = true, decision = true })
    assert.equal("invalid policy: name: expected a string, got boolean (and 1 more problem)", e2.message)
  end)

  it("did you mean for unknown fields", function()
    assert_problem(P{ sesion_duration = "1h" }, "sesion_duration",
      'unknown field (did you mean "session_duration"?)')
    assert_problem(P{ Precedence = 1 }, "Precedence", 'did you mean "precedence"?')
    assert_problem(P{ colour = "red" }, "colour", "unknown field")
  end)

  it("non-string keys in objects are problems", function()
    local p = P()
    p[1] = "x"
    assert_problem(p, "[1]", "unexpected number key")
    assert_problem(P{ mfa_config = { [true] = 1 } }, "mfa_config", "unexpected boolean key")
  end)

  it("allow_unknown passes unknown top-level fields through, known ones still checked", function()
    local p = P{ future_field = { b = 1, a = { true, cjson.null } }, another = "x" }
    assert.is_true(core.validate(p, { allow_unknown = true }))
    assert.equal('{"name":"p","decision":"allow","include":[{"everyone":{}}],'
      .. '"another":"x","future_field":{"a":[true,null],"b":1}}', core.encode(p, { allow_unknown = true }))
    assert_problem(P{ future_field = 1, precedence = "x" }, "precedence", "expected an integer",
      { allow_unknown = true })
    -- only the top level
    assert_problem(P{ mfa_config = { new_thing = true } }, "mfa_config.new_thing", "unknown field",
      { allow_unknown = true })
    -- pass-through values must be JSON-encodable
    assert_problem(P{ f = print }, "f", "expected a JSON value", { allow_unknown = true })
    assert_problem(P{ f = { 1, x = 2 } }, "f", "list", { allow_unknown = true })
    assert_problem(P{ f = { 0 / 0 } }, "f[1]", "finite", { allow_unknown = true })
    local cyc = {}
    cyc.self = cyc
    local map = problems(P{ f = cyc }, { allow_unknown = true })
    local n = 0
    for path, msg in pairs(map) do n = n + 1; assert.truthy(msg:find("nested more than 64", 1, true), path) end
    assert.equal(1, n)
    -- shared subtables (a DAG, 2^40 paths) are bounded, not expanded forever
    local dag = { "leaf" }
    for _ = 1, 40 do dag = { dag, dag } end
    local m2, err2 = problems(P{ f = dag }, { allow_unknown = true })
    assert.equal(1, #err2.problems)
    local _, msg = next(m2)
    assert.truthy(msg:find("too large", 1, true))
  end)

  it("never calls metamethods", function()
    local trap = setmetatable({}, {
      __index = function() error("__index called") end,
      __newindex = function() error("__newindex called") end,
      __len = function() error("__len called") end,
      __pairs = function() error("__pairs called") end,
    })
    local ok, err = core.validate(trap)
    assert.is_nil(ok)
    assert.equal(3, #err.problems)
    local p = setmetatable(P(), { __index = function() error("boom") end })
    assert.is_true(core.validate(p))
    local inc = setmetatable({ { everyone = {} } }, { __index = function() error("boom") end,
                                                      __len = function() return 5 end })
    assert.is_true(core.validate(P{ include = inc }))
    -- a table that only *looks* like it has fields through __index has none
    local looks = setmetatable({}, { __index = P() })
    local map = problems(looks)
    assert.equal("required field is missing", map.name)
  end)

  it("strings must be real strings and valid UTF-8", function()
    assert_problem(P{ name = "\xff" }, "name", "not valid UTF-8")
    assert_problem(P{ name = "\xC0\x80" }, "name", "not valid UTF-8")
    assert_problem(P{ name = "\xED\xA0\x80" }, "name", "not valid UTF-8")
    assert_problem(P{ name = "\xF4\x90\x80\x80" }, "name", "not valid UTF-8")
    assert_valid(P{ name = "caf\xC3\xA9 \xF0\x9F\x94\x92" })
    assert_problem(P{ include = { { email = { email = 12 } } } }, "include[1].email.email", "got number")
  end)

  it("messages quote user values shortened and printable", function()
    local map = problems(P{ session_duration = string.rep("x", 500) .. "\n" })
    assert.truthy(#map.session_duration < 200)
    assert.truthy(map.session_duration:find('..."', 1, true) or map.session_duration:find('"...', 1, true))
    local m2 = problems(P{ session_duration = "a\nb" })
    assert.is_nil(m2.session_duration:find("\n"))
  end)

  it("ip formats", function()
    for _, ip in ipairs{ "1.2.3.4", "1.2.3.4/32", "0.0.0.0/0", "::1", "::/0", "2001:db8::/128", "::ffff:1.2.3.4" } do
      assert_valid(rule_policy{ ip = { ip = ip } })
    end
    for _, ip in ipairs{ "1.2.3.4/", "1.2.3.4/033", "1.2.3.4/+3", "2001:db8::/129", "1.2.3.256", "01.2.3.4",
                         "fe80::1%eth0", "1.2.3.4 ", "", "1.2.3.4/3/4", "1.2.3.4\0" } do
      assert_problem(rule_policy{ ip = { ip = ip } }, "include[1].ip.ip", "is not an IP")
    end
  end)

  it("email formats", function()
    for _, e in ipairs{ "a@example.com", "first.last+tag@sub.example.co.uk", "o'neil@x-y.io" } do
      assert_valid(rule_policy{ email = { email = e } })
    end
    for _, e in ipairs{ "a@b", "@example.com", "a@@example.com", ".a@example.com", "a..b@example.com",
                        "a.@example.com", "a@-x.com", "a@x-.com", "a b@example.com", string.rep("a", 65) .. "@x.com",
                        "a@" .. string.rep("b", 64) .. ".com" } do
      assert_problem(rule_policy{ email = { email = e } }, "include[1].email.email", "is not an email address")
    end
  end)
end)

describe("validate: kind group", function()
  local G = { kind = "group" }
  it("takes name and include (required), exclude, require and is_default", function()
    local g = { name = "admins", include = { { email_domain = { domain = "example.com" } } },
                exclude = { { email = { email = "bob@example.com" } } },
                require = { { geo = { country_code = "US" } } },
                is_default = true }
    local json = assert_valid(g, G)
    assert.equal('{"name":"admins","include":[{"email_domain":{"domain":"example.com"}}],'
      .. '"exclude":[{"email":{"email":"bob@example.com"}}],"require":[{"geo":{"country_code":"US"}}],'
      .. '"is_default":true}', json)
    assert_valid({ name = "g", include = { { everyone = {} } } }, G)
  end)

  it("reports policy fields as unknown and names the body a group", function()
    local map, err = problems({ name = "g", include = { { everyone = {} } }, decision = "allow",
                                session_duration = "1h" }, G)
    assert.truthy(map.decision:find("unknown field", 1, true))
    assert.truthy(map.session_duration:find("unknown field", 1, true))
    assert.equal("invalid group: decision: unknown field (and 1 more problem)", err.message)
    local _, err2 = problems({ name = "g" }, G)
    assert.truthy(err2.message:find("^invalid group: include: required field is missing"))
  end)

  it("runs no policy check: identity rules and service tokens draw no warning", function()
    local r = table.pack(core.validate({ name = "g", include = { { service_token = { token_id = UUID } },
                                                                 { linked_app_token = { app_uid = UUID } } } }, G))
    assert.equal(1, r.n)
    assert.is_true(r[1])
  end)

  it("is listed in core.schema.kinds and in the unknown-kind message", function()
    local ok, err = core.validate(P{}, { kind = "groups" })
    assert.is_nil(ok)
    assert.equal("usage", err.kind)
    assert.truthy(err.message:find("reusable, infrastructure or group", 1, true))
  end)
end)

describe("validate: one-of (an application's policies item, internal kind _app_policies)", function()
  local A = { kind = "_app_policies" }
  it("takes a policy id, a link { id, precedence } or an inline policy, each checked as itself", function()
    local json = assert_valid({ policies = { UUID, { id = UUID, precedence = 2 },
      { name = "inline", decision = "allow", include = { { everyone = {} } }, precedence = 3 } } }, A)
    assert.equal('{"policies":["' .. UUID .. '",{"id":"' .. UUID .. '","precedence":2},'
      .. '{"name":"inline","decision":"allow","include":[{"everyone":{}}],"precedence":3}]}', json)
  end)

  it("reports each alternative's own problems at the item's path", function()
    local map, err = problems({ policies = { "not-a-uuid", { id = UUID, precedence = "1" },
      { decision = "allow", include = {} }, 7, { precedence = 1 } } }, A)
    assert.equal(6, #err.problems, tostring(err))
    assert.truthy(map["policies[1]"]:find('"not-a-uuid" is not a UUID', 1, true))
    assert.truthy(map["policies[2].precedence"]:find("expected an integer, got string", 1, true))
    assert.truthy(map["policies[3].name"]:find("required field is missing", 1, true))
    assert.truthy(map["policies[3].include"]:find("must contain at least one rule", 1, true))
    assert.equal("expected a policy id, a link { id =, precedence = } or an inline policy, got number",
      map["policies[4]"])
    assert.truthy(map["policies[5].id"]:find("required field is missing", 1, true))
  end)

  it("is not a public kind", function()
    for _, k in ipairs(core.schema.kinds) do assert.not_equal("_app_policies", k) end
  end)
end)

describe("validate: messages show what is there", function()
  it("escapes invisible and control characters in quoted values", function()
    assert_problem(rule_policy{ email = { email = "\u{FEFF}a@b.co" } }, "include[1].email.email",
      '"\\u{FEFF}a@b.co" is not an email address')
    assert_problem(rule_policy{ email = { email = "a@b.co\u{200B}" } }, "include[1].email.email",
      '"a@b.co\\u{200B}" is not an email address')
    assert_problem(rule_policy{ email = { email = "a@b\t.co" } }, "include[1].email.email",
      '"a@b\\u{09}.co" is not an email address')
    assert_problem(rule_policy{ email_domain = { domain = "\u{202E}moc.example" } }, "include[1].email_domain.domain",
      '"\\u{202E}moc.example" is not a domain name')
    -- visible non-ASCII stays as it is
    assert_problem(rule_policy{ email = { email = "café" } }, "include[1].email.email",
      '"café" is not an email address')
  end)

  it("escapes them in paths too", function()
    assert_problem(P{ ["\u{FEFF}name"] = "x", name = "p" }, "\\u{FEFF}name", "unknown field")
  end)
end)

describe("validate: warnings come third, nil when none", function()
  it("validate and encode return true/json, nil, warnings", function()
    local ok, err, w = core.validate(P{ precedence = 0 })
    assert.is_true(ok)
    assert.is_nil(err)
    assert.same({ { path = "precedence", message = w[1].message } }, w)
    local json, err2, w2 = core.encode(P{ precedence = 0 })
    assert.is_string(json)
    assert.is_nil(err2)
    assert.same(w, w2)
  end)
end)
