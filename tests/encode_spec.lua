-- cfaccess.core.encode: canonical JSON (schema order, compact, RFC 8259
-- escapes, raw UTF-8, integers as integers), round trip through lua-cjson,
-- determinism across insertion orders.
local core = require("cfaccess.core")
local cjson = require("cjson").new()

local UUID, IDP = require("testutil").UUID, require("testutil").IDP

local deep_equal = require("testutil").deep_equal

local function full_policy()
  return {
    name = "Staff \"VPN\" \\ access\n\t\1 café 🔒",
    decision = "allow",
    include = {
      { email = { email = "alice@example.com" } },
      { email_domain = { domain = "example.com" } },
      { everyone = {} },
      { ip = { ip = "203.0.113.0/24" } },
      { azureAD = { id = "g1", identity_provider_id = IDP } },
      { ["github-organization"] = { name = "org", identity_provider_id = IDP, team = "ops" } },
      { okta = { name = "admins", identity_provider_id = IDP } },
      { user_risk_score = { user_risk_score = { "low", "unscored" } } },
      { cloudflare_account_member = {} },
    },
    exclude = { { geo = { country_code = "KP" } } },
    require = { { auth_method = { auth_method = "mfa" } }, { device_posture = { integration_uid = UUID } } },
    precedence = 7,
    session_duration = "2h45m",
    approval_required = true,
    approval_groups = { { approvals_needed = 2, email_addresses = { "a@example.com", "b@example.com" },
                          email_list_uuid = UUID } },
    isolation_required = false,
    purpose_justification_required = true,
    purpose_justification_prompt = "Why?",
    mfa_config = { allowed_authenticators = { "totp" }, mfa_disabled = false, session_duration = "24h" },
    connection_rules = { rdp = { allowed_clipboard_local_to_remote_formats = { "text" } } },
  }
end

describe("encode: canonical output", function()
  it("writes fields in schema order, compact", function()
    local json = assert(core.encode{
      connection_rules = { rdp = {} },
      mfa_config = { session_duration = "5m", mfa_bypass = true, allowed_authenticators = { "totp" } },
      purpose_justification_prompt = "p",
      purpose_justification_required = true,
      isolation_required = true,
      approval_groups = { { email_list_uuid = UUID, approvals_needed = 1 } },
      approval_required = false,
      session_duration = "1h",
      precedence = 2,
      require = { { everyone = {} } },
      exclude = { { certificate = {} } },
      include = { { any_valid_service_token = {} } },
      decision = "bypass",
      name = "n",
    })
    assert.equal('{"name":"n","decision":"bypass","include":[{"any_valid_service_token":{}}],'
      .. '"exclude":[{"certificate":{}}],"require":[{"everyone":{}}],"precedence":2,"session_duration":"1h",'
      .. '"approval_required":false,"approval_groups":[{"approvals_needed":1,"email_list_uuid":"' .. UUID .. '"}],'
      .. '"isolation_required":true,"purpose_justification_required":true,"purpose_justification_prompt":"p",'
      .. '"mfa_config":{"allowed_authenticators":["totp"],"mfa_bypass":true,"session_duration":"5m"},'
      .. '"connection_rules":{"rdp":{}}}', json)
  end)

  it("rule inner fields in schema order", function()
    local json = assert(core.encode{ name = "n", decision = "allow", include = {
      { ["github-organization"] = { team = "t", identity_provider_id = IDP, name = "o" } },
      { saml = { identity_provider_id = IDP, attribute_value = "v", attribute_name = "a" } },
    } })
    assert.equal('{"name":"n","decision":"allow","include":[{"github-organization":{"name":"o",'
      .. '"identity_provider_id":"' .. IDP .. '","team":"t"}},{"saml":{"attribute_name":"a",'
      .. '"attribute_value":"v","identity_provider_id":"' .. IDP .. '"}}]}', json)
  end)

  it("omits empty optional lists and keeps {} for empty-object rules", function()
    local json = assert(core.encode{ name = "n", decision = "allow", include = { { everyone = {} } },
      exclude = {}, require = {}, approval_groups = {},
      mfa_config = { allowed_authenticators = {} },
      connection_rules = { rdp = { allowed_clipboard_local_to_remote_formats = {} } } })
    assert.equal('{"name":"n","decision":"allow","include":[{"everyone":{}}],"mfa_config":{},'
      .. '"connection_rules":{"rdp":{}}}', json)
    assert.same({ everyone = {} }, cjson.decode(json).include[1])
  end)

  it("escapes per RFC 8259 and keeps UTF-8 raw", function()
    local json = assert(core.encode{ name = "q\"b\\s/\b\f\n\r\t\0\31\127é€😀", decision = "allow",
                                     include = { { everyone = {} } } })
    assert.equal('{"name":"q\\"b\\\\s/\\b\\f\\n\\r\\t\\u0000\\u001f\127é€😀","decision":"allow",'
      .. '"include":[{"everyone":{}}]}', json)
  end)

  it("writes integers as integers and integral floats without a fraction", function()
    local json = assert(core.encode{ name = "n", decision = "allow", include = { { everyone = {} } },
      precedence = 3.0, approval_groups = { { approvals_needed = 2.0 }, { approvals_needed = 0 } } })
    assert.truthy(json:find('"precedence":3,', 1, true))
    assert.truthy(json:find('[{"approvals_needed":2},{"approvals_needed":0}]', 1, true))
    local big = assert(core.encode{ name = "n", decision = "allow", include = { { everyone = {} } },
      precedence = math.maxinteger })
    assert.truthy(big:find('"precedence":9223372036854775807}', 1, true))
  end)

  it("round-trips through cjson.decode to equal data", function()
    local p = full_policy()
    local json = assert(core.encode(p))
    local ok, where = deep_equal(p, cjson.decode(json))
    assert.is_true(ok, where)
    -- and the decoded table encodes to the same bytes (floats from cjson are integral)
    assert.equal(json, core.encode(cjson.decode(json)))
  end)

  it("writes the 2024 shapes as given with opts.legacy", function()
    local p = { name = "n", decision = "allow", include = {
      { okta = { email = "admins@example.com", connection_id = IDP } },
      { saml = { attribute_name = "a", attribute_value = "v" } } } }
    assert.equal('{"name":"n","decision":"allow","include":[{"okta":{"email":"admins@example.com",'
      .. '"connection_id":"' .. IDP .. '"}},{"saml":{"attribute_name":"a","attribute_value":"v"}}]}',
      core.encode(p, { legacy = true }))
    assert.is_nil(core.encode(p))
  end)

  it("writes a group body in its schema order", function()
    assert.equal('{"name":"g","include":[{"email":{"email":"a@example.com"}}],"exclude":[{"everyone":{}}],'
      .. '"is_default":false}',
      core.encode({ is_default = false, exclude = { { everyone = {} } }, name = "g",
                    include = { { email = { email = "a@example.com" } } } }, { kind = "group" }))
  end)

  it("round-trips every kind's full shape", function()
    local infra = { name = "i", decision = "allow", include = { { group = { id = UUID } } },
      exclude = { { login_method = { id = IDP } } }, require = { { common_name = { common_name = "cn" } } },
      mfa_config = { allowed_authenticators = { "piv_key", "ssh_fido2_key" } },
      connection_rules = { ssh = { usernames = { "root" }, allow_email_alias = true } } }
    local json = assert(core.encode(infra, { kind = "infrastructure" }))
    assert.is_true((deep_equal(infra, cjson.decode(json))))
    local zone = full_policy()
    zone.session_duration, zone.mfa_config, zone.connection_rules = nil, nil, nil
    json = assert(core.encode(zone, { kind = "zone" }))
    assert.is_true((deep_equal(zone, cjson.decode(json))))
    local reusable = full_policy()
    reusable.precedence = nil
    json = assert(core.encode(reusable, { kind = "reusable" }))
    assert.is_true((deep_equal(reusable, cjson.decode(json))))
  end)

  it("is deterministic across insertion orders", function()
    local a = full_policy()
    local keys = {}
    for k in pairs(a) do keys[#keys + 1] = k end
    table.sort(keys, function(x, y) return x > y end)
    local b = {}
    for _, k in ipairs(keys) do b[k] = a[k] end
    -- rebuild a rule with its keys inserted the other way round
    b.include = {}
    for i, r in ipairs(a.include) do b.include[i] = r end
    b.include[5] = { azureAD = { identity_provider_id = IDP, id = "g1" } }
    -- a list built back to front (hash part, not array part)
    local rev = { [2] = { everyone = {} } }
    rev[1] = { geo = { country_code = "KP" } }
    b.exclude = rev
    a.exclude = { { geo = { country_code = "KP" } }, { everyone = {} } }
    local ja, jb = assert(core.encode(a)), assert(core.encode(b))
    assert.equal(ja, jb)
    assert.equal(ja, core.encode(a))
  end)

  it("pass-through fields are sorted and deterministic", function()
    local p1 = { name = "n", decision = "allow", include = { { everyone = {} } } }
    local p2 = { include = { { everyone = {} } }, decision = "allow", name = "n" }
    for _, k in ipairs{ "zeta", "alpha", "mid" } do p1[k] = { y = 0.5, x = { 1, 2.25, -3 } } end
    for _, k in ipairs{ "mid", "zeta", "alpha" } do p2[k] = { x = { 1, 2.25, -3 }, y = 0.5 } end
    local j1 = assert(core.encode(p1, { allow_unknown = true }))
    assert.equal(j1, core.encode(p2, { allow_unknown = true }))
    assert.truthy(j1:find('"alpha":{"x":[1,2.25,-3],"y":0.5},"mid":', 1, true))
    assert.is_true((deep_equal(p1, cjson.decode(j1))))
    local f = assert(core.encode({ name = "n", decision = "allow", include = { { everyone = {} } },
                                   x = 0.1, y = 1e300, z = -0.0 }, { allow_unknown = true }))
    local d = cjson.decode(f)
    assert.equal(0.1, d.x)
    assert.equal(1e300, d.y)
  end)

  it("encode returns nil, err for an invalid policy and validate agrees", function()
    local json, err = core.encode{ name = "n", decision = "allow", include = { { everyone = 1 } } }
    assert.is_nil(json)
    assert.equal("invalid", err.kind)
    assert.equal("include[1].everyone", err.problems[1].path)
  end)
  it("a policy whose strings add up to more than 16 MiB is invalid, in validate and encode alike", function()
    -- one 1 MiB name shared by 20 rules: small in memory, 20 MiB of JSON
    local big = string.rep("x", 1024 * 1024)
    local p = { name = "n", decision = "allow", include = {} }
    for i = 1, 20 do p.include[i] = { common_name = { common_name = big } } end
    local json, err = core.encode(p)
    assert.is_nil(json)
    assert.equal("invalid", err.kind)
    assert.equal(1, #err.problems)
    assert.equal("include[16].common_name.common_name", err.problems[1].path)
    assert.truthy(err.problems[1].message:find("more than 16 MiB", 1, true))
    local ok, verr = core.validate(p)
    assert.is_nil(ok)
    assert.equal(err.problems[1].path, verr.problems[1].path)
    -- 15 of them fit
    for i = 16, 20 do p.include[i] = nil end
    assert.truthy(#assert(core.encode(p)) > 15 * 1024 * 1024)
  end)
end)
