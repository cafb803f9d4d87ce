-- Table-driven invalid policies: each case gives the exact set of problem
-- paths and, for each, a fragment its message must contain. validate and
-- encode must both fail with exactly those problems.
local core = require("cfaccess.core")
local cjson = require("cjson").new()

local UUID, IDP = require("testutil").UUID, require("testutil").IDP

local P = require("testutil").policy
local function R(rule) return P{ include = { { everyone = {} }, rule } } end

local INFRA = { kind = "infrastructure" }
local ZONE = { kind = "zone" }
local REUSABLE = { kind = "reusable" }
local LEGACY = { legacy = true }
local GROUP = { kind = "group" }

-- { description, policy, opts or nil, { { path, fragment }, ... } }
local cases = {
  { "missing name", P{ name = false }, nil, { { "name", "required field is missing" } } },
  { "missing decision", P{ decision = false }, nil, { { "decision", "required field is missing" } } },
  { "missing include", P{ include = false }, nil, { { "include", "required field is missing" } } },
  { "empty name", P{ name = "" }, nil, { { "name", "must not be empty" } } },
  { "name is a table", P{ name = {} }, nil, { { "name", "expected a string, got table" } } },
  { "name is cjson.null", P{ name = cjson.null }, nil, { { "name", "expected a string, got null" } } },
  { "decision unknown", P{ decision = "permit" }, nil, { { "decision", 'got "permit"' } } },
  { "decision number", P{ decision = 1 }, nil, { { "decision", "expected a string, got number" } } },
  { "include empty", P{ include = {} }, nil, { { "include", "must contain at least one rule" } } },
  { "include single rule", P{ include = { email = { email = "a@example.com" } } }, nil,
    { { "include", "got a single rule (wrap it in { })" } } },
  { "exclude single rule", P{ exclude = { everyone = {} } }, nil, { { "exclude", "got a single rule" } } },
  { "require is a string", P{ require = "everyone" }, nil, { { "require", "expected a list of rules, got string" } } },
  { "include with a hole", P{ include = { { everyone = {} }, nil, { everyone = {} } } }, nil,
    { { "include", "expected a list" } } },
  { "rule is a string", P{ include = { "everyone" } }, nil, { { "include[1]", "expected a rule" } } },
  { "rule with two types", R{ email = { email = "a@example.com" }, geo = { country_code = "US" } }, nil,
    { { "include[2]", 'a rule has exactly one type, found "email" and "geo"' } } },
  { "empty rule", R{}, nil, { { "include[2]", "found an empty table" } } },
  { "unknown rule type", R{ azure_ad = { id = "g", identity_provider_id = IDP } }, nil,
    { { "include[2].azure_ad", 'did you mean "azureAD"?' } } },
  { "rule type wrong case", R{ Email = { email = "a@example.com" } }, nil,
    { { "include[2].Email", 'did you mean "email"?' } } },
  { "email not a string", R{ email = { email = 42 } }, nil,
    { { "include[2].email.email", "expected a string, got number" } } },
  { "email malformed", R{ email = { email = "alice@" } }, nil, { { "include[2].email.email", "is not an email" } } },
  { "email extra field", R{ email = { email = "a@example.com", name = "A" } }, nil,
    { { "include[2].email.name", "unknown field" } } },
  { "email_list id empty", R{ email_list = { id = "" } }, nil,
    { { "include[2].email_list.id", "must not be empty" } } },
  { "email_domain with @", R{ email_domain = { domain = "@example.com" } }, nil,
    { { "include[2].email_domain.domain", "is not a domain name" } } },
  { "everyone not empty", R{ everyone = { all = true } }, nil, { { "include[2].everyone.all", "unknown field" } } },
  { "everyone is true", R{ everyone = true }, nil, { { "include[2].everyone", "expected an object" } } },
  { "ip bad prefix", R{ ip = { ip = "10.0.0.0/40" } }, nil, { { "include[2].ip.ip", "is not an IP address" } } },
  { "ip v6 bad prefix", R{ ip = { ip = "::/200" } }, nil, { { "include[2].ip.ip", "CIDR" } } },
  { "ip hostname", R{ ip = { ip = "example.com" } }, nil, { { "include[2].ip.ip", "is not an IP" } } },
  { "ip_list missing id", R{ ip_list = {} }, nil, { { "include[2].ip_list.id", "required field is missing" } } },
  { "certificate with body", R{ certificate = { cn = "x" } }, nil,
    { { "include[2].certificate.cn", "unknown field" } } },
  { "common_name number", R{ common_name = { common_name = 1 } }, nil,
    { { "include[2].common_name.common_name", "expected a string" } } },
  { "group id number", R{ group = { id = 5 } }, nil, { { "include[2].group.id", "got number" } } },
  { "azureAD no idp", R{ azureAD = { id = "g" } }, nil,
    { { "include[2].azureAD.identity_provider_id", "required field is missing" } } },
  { "azureAD both idp (legacy)", R{ azureAD = { id = "g", identity_provider_id = IDP, connection_id = IDP } }, LEGACY,
    { { "include[2].azureAD", "give only one of" } } },
  { "github-org missing name", R{ ["github-organization"] = { identity_provider_id = IDP } }, nil,
    { { "include[2].github-organization.name", "required field is missing" } } },
  { "github_organization typo", R{ github_organization = { name = "o", identity_provider_id = IDP } }, nil,
    { { "include[2].github_organization", 'did you mean "github-organization"?' } } },
  { "gsuite bad email", R{ gsuite = { email = "admins", identity_provider_id = IDP } }, nil,
    { { "include[2].gsuite.email", "is not an email" } } },
  { "okta nothing", R{ okta = {} }, nil,
    { { "include[2].okta.name", "required field is missing" },
      { "include[2].okta.identity_provider_id", "required field is missing" } } },
  { "saml missing value", R{ saml = { attribute_name = "a", identity_provider_id = IDP } }, nil,
    { { "include[2].saml.attribute_value", "required field is missing" } } },
  { "oidc missing idp", R{ oidc = { claim_name = "c", claim_value = "v" } }, nil,
    { { "include[2].oidc.identity_provider_id", "required field is missing" } } },
  { "auth_context empty ac_id", R{ auth_context = { id = "i", ac_id = "", identity_provider_id = IDP } }, nil,
    { { "include[2].auth_context.ac_id", "must not be empty" } } },
  { "login_method boolean id", R{ login_method = { id = true } }, nil,
    { { "include[2].login_method.id", "got boolean" } } },
  { "auth_method empty", R{ auth_method = { auth_method = "" } }, nil,
    { { "include[2].auth_method.auth_method", "must not be empty" } } },
  { "service_token missing", R{ service_token = {} }, nil,
    { { "include[2].service_token.token_id", "required field is missing" } } },
  { "any_valid_service_token body", R{ any_valid_service_token = { x = 1 } }, nil,
    { { "include[2].any_valid_service_token.x", "unknown field" } } },
  { "external_evaluation ftp", R{ external_evaluation = { evaluate_url = "ftp://e", keys_url = "https://k.x" } }, nil,
    { { "include[2].external_evaluation.evaluate_url", "https://" } } },
  { "external_evaluation missing keys", R{ external_evaluation = { evaluate_url = "https://e.x" } }, nil,
    { { "include[2].external_evaluation.keys_url", "required field is missing" } } },
  { "geo lowercase", R{ geo = { country_code = "us" } }, nil, { { "include[2].geo.country_code", "ISO 3166-1" } } },
  { "geo unassigned", R{ geo = { country_code = "ZZ" } }, nil, { { "include[2].geo.country_code", '"ZZ"' } } },
  { "device_posture missing", R{ device_posture = {} }, nil,
    { { "include[2].device_posture.integration_uid", "required field is missing" } } },
  { "linked_app_token with allow", R{ linked_app_token = { app_uid = UUID } }, nil,
    { { "include[2]", 'needs decision "non_identity" or "bypass"' } } },
  { "linked_app_token with deny", P{ decision = "deny", exclude = { { linked_app_token = { app_uid = UUID } } } },
    nil, { { "exclude[1]", 'got "deny"' } } },
  { "user_risk_score empty", R{ user_risk_score = { user_risk_score = {} } }, nil,
    { { "include[2].user_risk_score.user_risk_score", "at least one" } } },
  { "user_risk_score bad level", R{ user_risk_score = { user_risk_score = { "low", "extreme" } } }, nil,
    { { "include[2].user_risk_score.user_risk_score[2]", "low, medium, high, unscored" } } },
  { "cloudflare_account_member short id", R{ cloudflare_account_member = { account_id = "abc" } }, nil,
    { { "include[2].cloudflare_account_member.account_id", "32 hex" } } },
  { "precedence fraction", P{ precedence = 2.5 }, nil, { { "precedence", "expected an integer, got 2.5" } } },
  { "precedence negative", P{ precedence = -3 }, nil, { { "precedence", ">= 0" } } },
  { "precedence NaN", P{ precedence = 0 / 0 }, nil, { { "precedence", "expected an integer" } } },
  { "precedence inf", P{ precedence = 1 / 0 }, nil, { { "precedence", "expected an integer" } } },
  { "precedence string", P{ precedence = "1" }, nil, { { "precedence", "got string" } } },
  { "session_duration unit", P{ session_duration = "2x" }, nil,
    { { "session_duration", '"2x" is not a duration (units: ns, us, µs, ms, s, m, h)' } } },
  { "session_duration no unit", P{ session_duration = "1" }, nil, { { "session_duration", "is not a duration" } } },
  { "session_duration negative", P{ session_duration = "-1h" }, nil, { { "session_duration", "negative" } } },
  { "session_duration only unit", P{ session_duration = "h" }, nil, { { "session_duration", "is not a duration" } } },
  { "session_duration overflow", P{ session_duration = "3000000h" }, nil,
    { { "session_duration", "is not a duration" } } },
  { "session_duration typo", P{ sesion_duration = "1h" }, nil,
    { { "sesion_duration", 'unknown field (did you mean "session_duration"?)' } } },
  { "approval_required string", P{ approval_required = "yes" }, nil,
    { { "approval_required", "expected a boolean, got string" } } },
  { "isolation_required number", P{ isolation_required = 0 }, nil, { { "isolation_required", "expected a boolean" } } },
  { "purpose_justification_required nil-ish", P{ purpose_justification_required = cjson.null }, nil,
    { { "purpose_justification_required", "got null" } } },
  { "purpose_justification_prompt number", P{ purpose_justification_prompt = 3 }, nil,
    { { "purpose_justification_prompt", "expected a string" } } },
  { "approval group not a table", P{ approval_groups = { 1 } }, nil,
    { { "approval_groups[1]", "expected an object" } } },
  { "approval group missing approvals", P{ approval_groups = { { email_list_uuid = UUID } } }, nil,
    { { "approval_groups[1].approvals_needed", "required field is missing" } } },
  { "approval group bad email", P{ approval_groups = { { approvals_needed = 1, email_addresses = { "x" } } } }, nil,
    { { "approval_groups[1].email_addresses[1]", "is not an email" } } },
  { "approval group bad uuid", P{ approval_groups = { { approvals_needed = 1, email_list_uuid = "not-a-uuid" } } },
    nil, { { "approval_groups[1].email_list_uuid", "is not a UUID" } } },
  { "approval group fractional", P{ approval_groups = { { approvals_needed = 1.5 } } }, nil,
    { { "approval_groups[1].approvals_needed", "expected an integer" } } },
  { "mfa_config list", P{ mfa_config = { "totp" } }, nil, { { "mfa_config", "expected an object, got a list" } } },
  { "mfa authenticator unknown", P{ mfa_config = { allowed_authenticators = { "sms" } } }, nil,
    { { "mfa_config.allowed_authenticators[1]", "expected one of totp, biometrics, security_key, got \"sms\"" } } },
  { "mfa session too long", P{ mfa_config = { session_duration = "721h" } }, nil,
    { { "mfa_config.session_duration", "0m to 720h" } } },
  { "mfa session seconds", P{ mfa_config = { session_duration = "30s" } }, nil,
    { { "mfa_config.session_duration", "is not an MFA duration" } } },
  { "mfa_bypass string", P{ mfa_config = { mfa_bypass = "true" } }, nil,
    { { "mfa_config.mfa_bypass", "expected a boolean" } } },
  { "rdp bad format", P{ connection_rules = { rdp = { allowed_clipboard_remote_to_local_formats = { "html" } } } },
    nil, { { "connection_rules.rdp.allowed_clipboard_remote_to_local_formats[1]", "text, file" } } },
  { "ssh in app policy", P{ connection_rules = { ssh = { usernames = { "root" } } } }, nil,
    { { "connection_rules.ssh", "not accepted" } } },
  { "zone session_duration", P{ session_duration = "1h" }, ZONE,
    { { "session_duration", 'not accepted in a "zone" policy' } } },
  { "zone mfa_config", P{ mfa_config = {} }, ZONE, { { "mfa_config", "not accepted" } } },
  { "reusable precedence", P{ precedence = 1 }, REUSABLE, { { "precedence", 'not accepted in a "reusable" policy' } } },
  { "infra deny", P{ decision = "deny" }, INFRA, { { "decision", 'expected "allow"' } } },
  { "infra approval", P{ approval_required = true }, INFRA, { { "approval_required", "not accepted" } } },
  { "infra rdp", P{ connection_rules = { rdp = {} } }, INFRA, { { "connection_rules.rdp", "not accepted" } } },
  { "infra ssh no usernames", P{ connection_rules = { ssh = { allow_email_alias = true } } }, INFRA,
    { { "connection_rules.ssh.usernames", "required field is missing" } } },
  { "infra ssh empty username", P{ connection_rules = { ssh = { usernames = { "" } } } }, INFRA,
    { { "connection_rules.ssh.usernames[1]", "must not be empty" } } },
  { "unknown top-level field", P{ colour = "red" }, nil, { { "colour", "unknown field" } } },
  { "three mistakes at once", P{ name = 1, decision = "x", include = { { geo = { country_code = "QQ" } } } }, nil,
    { { "name", "expected a string" }, { "decision", 'got "x"' }, { "include[1].geo.country_code", '"QQ"' } } },
  { "invalid UTF-8", P{ purpose_justification_prompt = "bad \xE2\x82" }, nil,
    { { "purpose_justification_prompt", "not valid UTF-8" } } },
  { "pass-through function", P{ hook = print }, { allow_unknown = true }, { { "hook", "expected a JSON value" } } },
  { "pass-through mixed table", P{ extra = { 1, 2, k = 3 } }, { allow_unknown = true }, { { "extra", "list" } } },
  { "deep path into unknown", P{ include = { { everyone = {} }, { everyone = {} },
                                             { email = { email = "x" } } } }, nil,
    { { "include[3].email.email", "is not an email" } } },
  -- issue 14: the newest API's shapes, per-kind lists, containers, escapes, groups
  { "connection_id without legacy", R{ azureAD = { id = "g", connection_id = IDP } }, nil,
    { { "include[2].azureAD.connection_id", "renamed identity_provider_id in the 2025 API" } } },
  { "gsuite connection_id", R{ gsuite = { email = "a@example.com", connection_id = IDP } }, nil,
    { { "include[2].gsuite.connection_id", "opts.legacy = true accepts the 2024 shape" } } },
  { "github-org connection_id", R{ ["github-organization"] = { name = "o", connection_id = IDP } }, nil,
    { { "include[2].github-organization.connection_id", "renamed identity_provider_id" } } },
  { "okta email without legacy", R{ okta = { email = "a@example.com", identity_provider_id = IDP } }, nil,
    { { "include[2].okta.email", "renamed name in the 2025 API" } } },
  { "okta 2024 shape", R{ okta = { email = "a@example.com", connection_id = IDP } }, nil,
    { { "include[2].okta.email", "renamed name" },
      { "include[2].okta.connection_id", "renamed identity_provider_id" } } },
  { "saml without idp", R{ saml = { attribute_name = "a", attribute_value = "v" } }, nil,
    { { "include[2].saml.identity_provider_id", "required field is missing" } } },
  { "okta both names (legacy)", R{ okta = { name = "a", email = "b", identity_provider_id = IDP } }, LEGACY,
    { { "include[2].okta", 'give only one of "name" and "email"' } } },
  { "okta nothing (legacy)", R{ okta = {} }, LEGACY,
    { { "include[2].okta.name", 'or the older "email"' },
      { "include[2].okta.identity_provider_id", 'or the older "connection_id"' } } },
  { "piv_key on an app policy", P{ mfa_config = { allowed_authenticators = { "totp", "piv_key" } } }, nil,
    { { "mfa_config.allowed_authenticators[2]", '"piv_key" is for infrastructure policies' } } },
  { "ssh_fido2_key on a reusable policy", P{ mfa_config = { allowed_authenticators = { "ssh_fido2_key" } } },
    REUSABLE, { { "mfa_config.allowed_authenticators[1]", "is for infrastructure policies" } } },
  { "totp on an infrastructure policy", P{ mfa_config = { allowed_authenticators = { "totp" } } }, INFRA,
    { { "mfa_config.allowed_authenticators[1]", '"totp" is for app and reusable policies' } } },
  { "authenticator typo across lists", P{ mfa_config = { allowed_authenticators = { "biometric" } } }, INFRA,
    { { "mfa_config.allowed_authenticators[1]", 'did you mean "biometrics"? it is for app and reusable policies' } } },
  { "authenticator typo", P{ mfa_config = { allowed_authenticators = { "securitykey" } } }, nil,
    { { "mfa_config.allowed_authenticators[1]", 'did you mean "security_key"?' } } },
  { "mfa_config list of objects", P{ mfa_config = { { mfa_disabled = true } } }, nil,
    { { "mfa_config", "expected an object, got a list" } } },
  { "connection_rules list", P{ connection_rules = { { rdp = {} } } }, nil,
    { { "connection_rules", "expected an object, got a list" } } },
  { "rdp list", P{ connection_rules = { rdp = { "text" } } }, nil,
    { { "connection_rules.rdp", "expected an object, got a list" } } },
  { "ssh list", P{ connection_rules = { ssh = { { usernames = { "root" } } } } }, INFRA,
    { { "connection_rules.ssh", "expected an object, got a list" } } },
  { "approval group list", P{ approval_groups = { { { approvals_needed = 1 } } } }, nil,
    { { "approval_groups[1]", "expected an object, got a list" } } },
  { "approval_groups object", P{ approval_groups = { approvals_needed = 1 } }, nil,
    { { "approval_groups", "expected a list, got an object (a table with string keys)" } } },
  { "email_addresses object", P{ approval_groups = { { approvals_needed = 1, email_addresses = { a = "a@b.co" } } } },
    nil, { { "approval_groups[1].email_addresses", "expected a list, got an object" } } },
  { "usernames object", P{ connection_rules = { ssh = { usernames = { root = true } } } }, INFRA,
    { { "connection_rules.ssh.usernames", "expected a list, got an object" } } },
  { "allowed_authenticators object", P{ mfa_config = { allowed_authenticators = { totp = true } } }, nil,
    { { "mfa_config.allowed_authenticators", "expected a list, got an object" } } },
  { "rule given as a list", P{ include = { { { email = { email = "a@example.com" } } } } }, nil,
    { { "include[1]", "expected a rule (a table with one rule type), got a list" } } },
  { "rule body as a list", R{ email = { "a@example.com" } }, nil,
    { { "include[2].email", "expected an object, got a list" } } },
  { "user_risk_score object", R{ user_risk_score = { user_risk_score = { low = true } } }, nil,
    { { "include[2].user_risk_score.user_risk_score", "expected a list, got an object" } } },
  { "BOM in an email", R{ email = { email = "\u{FEFF}a@b.co" } }, nil,
    { { "include[2].email.email", '"\\u{FEFF}a@b.co" is not an email address' } } },
  { "zero-width space in a domain", R{ email_domain = { domain = "exa\u{200B}mple.com" } }, nil,
    { { "include[2].email_domain.domain", '"exa\\u{200B}mple.com" is not a domain name' } } },
  { "newline in a country code", R{ geo = { country_code = "U\n" } }, nil,
    { { "include[2].geo.country_code", '"U\\u{0A}" is not an ISO 3166-1' } } },
  { "no-break space in an IP", R{ ip = { ip = "10.0.0.1\u{A0}" } }, nil,
    { { "include[2].ip.ip", '"10.0.0.1\\u{00A0}" is not an IP' } } },
  { "session_duration true", P{ session_duration = true }, nil,
    { { "session_duration", "expected a string, got boolean" } } },
  { "null where the API takes none", P{ purpose_justification_prompt = core.null }, nil,
    { { "purpose_justification_prompt", "expected a string, got null" } } },
  { "null session_duration in a zone policy", P{ session_duration = core.null }, ZONE,
    { { "session_duration", 'not accepted in a "zone" policy' } } },
  { "group without include", { name = "g" }, GROUP, { { "include", "required field is missing" } } },
  { "group without name", { include = { { everyone = {} } } }, GROUP, { { "name", "required field is missing" } } },
  { "group with a decision", { name = "g", decision = "allow", include = { { everyone = {} } } }, GROUP,
    { { "decision", "unknown field" } } },
  { "group is_default string", { name = "g", include = { { everyone = {} } }, is_default = "yes" }, GROUP,
    { { "is_default", "expected a boolean, got string" } } },
  { "group bad rule", { name = "g", include = { { email = { email = "x" } } }, require = { { geo = {} } } }, GROUP,
    { { "include[1].email.email", "is not an email" },
      { "require[1].geo.country_code", "required field is missing" } } },
  { "group precedence", { name = "g", include = { { everyone = {} } }, precedence = 1 }, GROUP,
    { { "precedence", "unknown field" } } },
  { "group not a table", { name = "g", include = { { everyone = {} } }, exclude = "x" }, GROUP,
    { { "exclude", "expected a list of rules, got string" } } },
  { "strict: precedence 0", P{ precedence = 0 }, { strict = true }, { { "precedence", "below 1" } } },
  { "strict: bypass with email", P{ decision = "bypass", include = { { email = { email = "a@example.com" } } } },
    { strict = true }, { { "include[1]", "identity-based" } } },
  { "strict: auth_method case", R{ auth_method = { auth_method = "OTP" } }, { strict = true },
    { { "include[2].auth_method.auth_method", 'write "otp"' } } },
}

describe("invalid cases", function()
  it("has at least 122 cases (97 before issue 14, which asked for 25 more)", function()
    assert.is_true(#cases >= 122, "only " .. #cases)
  end)

  for i, case in ipairs(cases) do
    local desc, policy, opts, want = case[1], case[2], case[3], case[4]
    it(("#%d %s"):format(i, desc), function()
      local ok, err = core.validate(policy, opts)
      assert.is_nil(ok)
      assert.equal("invalid", err.kind)
      local got = {}
      for _, p in ipairs(err.problems) do got[p.path] = p.message end
      assert.equal(#want, #err.problems, tostring(err))
      for _, w in ipairs(want) do
        local msg = got[w[1]]
        assert.is_string(msg, "no problem at " .. w[1] .. "; got: " .. tostring(err))
        assert.truthy(msg:find(w[2], 1, true), ("%s: %q lacks %q"):format(w[1], msg, w[2]))
      end
      local json, eerr = core.encode(policy, opts)
      assert.is_nil(json)
      assert.same(err.problems, eerr.problems)
    end)
  end
end)

-- Issue 14: a container of the wrong shape is reported at the container,
-- for every rule type's body (an object) and every list-typed inner field,
-- as core.schema lists them (a new rule type is covered without an edit).
describe("containers of the wrong shape, from core.schema", function()
  -- the problem at path, and none inside the container (what other rules
  -- of the policy say, e.g. linked_app_token's decision, is theirs)
  local function only_problem(policy, path, fragment)
    local ok, err = core.validate(policy)
    assert.is_nil(ok)
    local at
    for _, p in ipairs(err.problems) do
      if p.path == path then at = p.message end
      local inside = p.path:sub(1, #path + 1)
      assert.is_false(inside == path .. "." or inside == path .. "[",
        "reported inside the container: " .. tostring(err))
    end
    assert.is_string(at, "no problem at " .. path .. ": " .. tostring(err))
    assert.truthy(at:find(fragment, 1, true), at)
  end

  it("every rule type's body given as a list", function()
    for _, key in ipairs(core.schema.rule_types) do
      only_problem(R{ [key] = { "x" } }, "include[2]." .. key, "expected an object, got a list")
    end
  end)

  it("every list-typed inner field given as an object", function()
    local n = 0
    for _, key in ipairs(core.schema.rule_types) do
      for _, f in ipairs(core.schema.rules[key].fields) do
        if f.type == "list" then
          n = n + 1
          only_problem(R{ [key] = { [f.name] = { x = "y" } } }, "include[2]." .. key .. "." .. f.name,
            "expected a list, got an object")
        end
      end
    end
    assert.is_true(n >= 1, "no list-typed rule field in core.schema")
  end)
end)
