-- Warnings: policies the API accepts but that will not do what their author
-- means. validate/encode return them as a third result ({ path, message }
-- list, nil when there are none), never fail because of them; opts.strict
-- makes each one an error at the same path.
local core = require("cfaccess.core")

local UUID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local IDP = "ea85612a-29c8-46c2-bacb-669d65136971"

local P = require("testutil").policy

-- One valid inner body per identity-based rule type (the kinds list comes
-- from core.schema, so a new identity type without a body here fails).
local IDENTITY_BODY = {
  email = { email = "a@example.com" }, email_list = { id = UUID }, email_domain = { domain = "example.com" },
  group = { id = UUID }, azureAD = { id = "g", identity_provider_id = IDP },
  ["github-organization"] = { name = "org", identity_provider_id = IDP },
  gsuite = { email = "a@example.com", identity_provider_id = IDP },
  okta = { name = "admins", identity_provider_id = IDP },
  saml = { attribute_name = "a", attribute_value = "v", identity_provider_id = IDP },
  oidc = { claim_name = "c", claim_value = "v", identity_provider_id = IDP },
  auth_context = { id = "i", ac_id = "c1", identity_provider_id = IDP },
  login_method = { id = IDP }, auth_method = { auth_method = "mfa" },
  external_evaluation = { evaluate_url = "https://e.example.com/x", keys_url = "https://e.example.com/k" },
  user_risk_score = { user_risk_score = { "high" } }, cloudflare_account_member = {},
}

-- { description, policy, opts or nil, { { path, fragment }, ... } }
local cases = {
  { "precedence 0", P{ precedence = 0 }, nil,
    { { "precedence", "precedence 0 is below 1" } } },
  { "precedence 0.0 (zone)", P{ precedence = 0.0 }, { kind = "zone" },
    { { "precedence", "write 1 or more" } } },
  { "bypass with email", P{ decision = "bypass", include = { { email = { email = "a@example.com" } } } }, nil,
    { { "include[1]", "email is an identity-based rule, and a bypass policy checks no identity" } } },
  { "bypass with group in require", P{ decision = "bypass", include = { { ip = { ip = "10.0.0.0/8" } } },
      require = { { group = { id = UUID } } } }, nil,
    { { "require[1]", 'use decision "allow" for identity rules' } } },
  { "bypass with two identity rules", P{ decision = "bypass", include = { { everyone = {} },
      { okta = { name = "a", identity_provider_id = IDP } } }, exclude = { { email_domain = { domain = "x.com" } } } },
    nil, { { "include[2]", "okta is an identity-based rule" },
           { "exclude[1]", "email_domain is an identity-based" } } },
  { "service_token under allow", P{ include = { { service_token = { token_id = UUID } } } }, nil,
    { { "include[1]", 'service_token is a Service Auth rule: under decision "allow"' } } },
  { "any_valid_service_token under deny", P{ decision = "deny",
      include = { { any_valid_service_token = {} } } }, nil,
    { { "include[1]", 'write decision = "non_identity"' } } },
  { "service_token under bypass", P{ decision = "bypass", exclude = { { service_token = { token_id = UUID } } } },
    nil, { { "exclude[1]", 'under decision "bypass"' } } },
  { "auth_method upper case", P{ include = { { auth_method = { auth_method = "MFA" } } } }, nil,
    { { "include[1].auth_method.auth_method", '"MFA" is not an RFC 8176 method' } } },
  { "auth_method mixed case suggests", P{ include = { { auth_method = { auth_method = "Pwd" } } } }, nil,
    { { "include[1].auth_method.auth_method", 'write "pwd" (the values are lower case)' } } },
  { "auth_method unknown", P{ require = { { auth_method = { auth_method = "foo" } } } }, nil,
    { { "require[1].auth_method.auth_method", "so the rule never matches" } } },
  { "mfa_bypass", P{ mfa_config = { mfa_bypass = true } }, nil,
    { { "mfa_config.mfa_bypass", "write mfa_disabled" } } },
  { "mfa_bypass (infrastructure)", P{ mfa_config = { mfa_bypass = false } }, { kind = "infrastructure" },
    { { "mfa_config.mfa_bypass", "February 2026 name of mfa_disabled" } } },
  { "every warning at once", P{ decision = "bypass", precedence = 0, mfa_config = { mfa_bypass = true },
      include = { { auth_method = { auth_method = "MFA" } }, { any_valid_service_token = {} } } }, nil,
    { { "precedence", "below 1" }, { "include[1]", "auth_method is an identity-based rule" },
      { "include[1].auth_method.auth_method", 'write "mfa"' }, { "include[2]", "Service Auth" },
      { "mfa_config.mfa_bypass", "mfa_disabled" } } },
}

local function by_path(list)
  local map = {}
  for _, w in ipairs(list) do
    assert.is_string(w.path)
    assert.is_string(w.message)
    assert.is_nil(map[w.path], "two warnings at " .. w.path)
    map[w.path] = w.message
  end
  return map
end

describe("warnings", function()
  for i, case in ipairs(cases) do
    local desc, policy, opts, want = case[1], case[2], case[3], case[4]
    it(("#%d %s: validate and encode accept it and warn at the exact paths"):format(i, desc), function()
      local ok, err, warnings = core.validate(policy, opts)
      assert.is_true(ok, err and tostring(err))
      assert.is_nil(err)
      assert.is_table(warnings)
      assert.equal(#want, #warnings)
      local map = by_path(warnings)
      for _, w in ipairs(want) do
        assert.is_string(map[w[1]], "no warning at " .. w[1])
        assert.truthy(map[w[1]]:find(w[2], 1, true), ("%s: %q lacks %q"):format(w[1], map[w[1]], w[2]))
      end
      local json, eerr, ewarnings = core.encode(policy, opts)
      assert.is_string(json, eerr and tostring(eerr))
      assert.is_nil(eerr)
      assert.same(warnings, ewarnings)
    end)

    it(("#%d %s: opts.strict makes each warning an error at the same path"):format(i, desc), function()
      local sopts = { strict = true }
      for k, v in pairs(opts or {}) do sopts[k] = v end
      local ok, err, third = core.validate(policy, sopts)
      assert.is_nil(ok)
      assert.is_nil(third)
      assert.equal("invalid", err.kind)
      local _, _, warnings = core.validate(policy, opts)
      assert.same(warnings, err.problems)
      local json, eerr = core.encode(policy, sopts)
      assert.is_nil(json)
      assert.same(err.problems, eerr.problems)
    end)
  end

  it("every identity-based rule type warns under bypass, and none under allow", function()
    local n = 0
    for _, key in ipairs(core.schema.rule_types) do
      if core.schema.rules[key].identity then
        n = n + 1
        local body = IDENTITY_BODY[key]
        assert.is_table(body, "no body for " .. key)
        local _, err, w = core.validate(P{ decision = "bypass", include = { { [key] = body } } })
        assert.is_nil(err, err and tostring(err))
        assert.equal(1, #w, key)
        assert.equal("include[1]", w[1].path)
        assert.equal(1, w[1].message:find(key .. " is an identity-based rule", 1, true), w[1].message)
        local ok, err2, none = core.validate(P{ include = { { [key] = body } } })
        assert.is_true(ok, err2 and tostring(err2))
        assert.is_nil(none, key)
      end
    end
    assert.equal(16, n)
  end)

  it("returns no third result for policies that are fine", function()
    local fine = {
      P{ precedence = 1 },
      P{ decision = "bypass", include = { { ip = { ip = "10.0.0.0/8" } }, { geo = { country_code = "US" } },
                                          { everyone = {} }, { linked_app_token = { app_uid = UUID } } } },
      P{ decision = "non_identity", include = { { service_token = { token_id = UUID } },
                                                { any_valid_service_token = {} } } },
      P{ decision = "non_identity", include = { { email = { email = "a@example.com" } } } },
      P{ include = { { auth_method = { auth_method = "mfa" } }, { auth_method = { auth_method = "hwk" } } } },
      P{ mfa_config = { mfa_disabled = true } },
    }
    for i, p in ipairs(fine) do
      local r = table.pack(core.validate(p))
      assert.equal(1, r.n, "validate #" .. i)
      assert.is_true(r[1])
      r = table.pack(core.encode(p))
      assert.equal(1, r.n, "encode #" .. i)
      assert.is_string(r[1])
    end
  end)

  it("precedence is not a warning where the kind takes none (reusable: an error)", function()
    local ok, err = core.validate(P{ precedence = 0 }, { kind = "reusable" })
    assert.is_nil(ok)
    assert.equal(1, #err.problems)
    assert.equal("precedence", err.problems[1].path)
    assert.truthy(err.problems[1].message:find("not accepted", 1, true))
  end)

  it("an invalid policy returns the error only, not its warnings", function()
    local r = table.pack(core.validate(P{ precedence = 0, name = 1 }))
    assert.equal(2, r.n)
    assert.is_nil(r[1])
    assert.equal(1, #r[2].problems)
    assert.equal("name", r[2].problems[1].path)
  end)

  it("a warned policy is sent as written", function()
    assert.equal('{"name":"p","decision":"allow","include":[{"everyone":{}}],"precedence":0,'
      .. '"mfa_config":{"mfa_bypass":true}}', (core.encode(P{ precedence = 0, mfa_config = { mfa_bypass = true } })))
  end)

  it("opts.strict and opts.legacy must be booleans", function()
    assert.has_error(function() core.validate(P{}, { strict = 1 }) end,
      "bad argument #2 to 'validate' (opts.strict: boolean expected, got number)")
    assert.has_error(function() core.encode(P{}, { legacy = "yes" }) end,
      "bad argument #2 to 'encode' (opts.legacy: boolean expected, got string)")
  end)
end)
