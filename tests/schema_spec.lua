-- cfaccess.core.schema: the rule union and kinds as a read-only table,
-- generated from the C schema (the one list of rule types).
local core = require("cfaccess.core")

-- shared/reference/APPLICATIONS-AND-STATE.md: bypass policies take no
-- identity-based rules; group and cloudflare_account_member count too.
local IDENTITY = {
  "email", "email_domain", "email_list", "external_evaluation", "user_risk_score",
  "login_method", "auth_method", "azureAD", "github-organization", "gsuite", "okta",
  "saml", "oidc", "auth_context", "group", "cloudflare_account_member",
}

describe("core.schema", function()
  local s = core.schema

  it("lists the 26 rule types in schema order, each with its descriptor", function()
    assert.equal(26, #s.rule_types)
    assert.equal("email", s.rule_types[1])
    assert.equal("cloudflare_account_member", s.rule_types[26])
    local seen = {}
    for i, key in ipairs(s.rule_types) do
      assert.is_nil(seen[key], key)
      seen[key] = i
      local r = s.rules[key]
      assert.is_table(r, key)
      assert.equal(key, r.key)
      assert.is_boolean(r.identity)
      assert.is_boolean(r.linked)
      assert.is_table(r.fields)
    end
    local n = 0
    for _ in pairs(s.rules) do n = n + 1 end
    assert.equal(26, n)
  end)

  it("marks exactly the identity-based rule types", function()
    local want = {}
    for _, k in ipairs(IDENTITY) do want[k] = true end
    for _, key in ipairs(s.rule_types) do
      assert.equal(want[key] == true, s.rules[key].identity, key)
    end
  end)

  it("marks linked_app_token as linked and nothing else", function()
    for _, key in ipairs(s.rule_types) do
      assert.equal(key == "linked_app_token", s.rules[key].linked, key)
    end
  end)

  it("describes inner fields: name, required, type, format, legacy, values", function()
    local f = s.rules.email.fields
    assert.equal(1, #f)
    assert.same({ "email", true, "string", "email" }, { f[1].name, f[1].required, f[1].type, f[1].format })
    local okta = {}
    for _, x in ipairs(s.rules.okta.fields) do okta[x.name] = x end
    assert.is_true(okta.name.required)
    assert.is_true(okta.identity_provider_id.required)
    assert.is_false(okta.connection_id.required)
    assert.is_true(okta.connection_id.legacy)
    assert.is_true(okta.email.legacy)
    assert.is_nil(okta.name.legacy)
    local gh = {}
    for _, x in ipairs(s.rules["github-organization"].fields) do gh[x.name] = x end
    assert.is_false(gh.team.required)
    local urs = s.rules.user_risk_score.fields[1]
    assert.equal("list", urs.type)
    assert.same({ "low", "medium", "high", "unscored" }, { table.unpack(urs.values) })
    assert.equal(0, #s.rules.everyone.fields)
    assert.equal("hex32", s.rules.cloudflare_account_member.fields[1].format)
    assert.is_false(s.rules.cloudflare_account_member.fields[1].required)
  end)

  it("lists the body kinds", function()
    assert.same({ "app", "zone", "reusable", "infrastructure", "group" }, { table.unpack(s.kinds) })
  end)

  it("raises on every write, at every level", function()
    local targets = {
      function() s.extra = 1 end,
      function() s.rule_types[1] = "x" end,
      function() s.rule_types[27] = "x" end,
      function() s.rules.email = {} end,
      function() s.rules.email.identity = false end,
      function() s.rules.email.fields[1].required = false end,
      function() s.rules.email.fields[2] = {} end,
      function() s.kinds[6] = "policy" end,
      function() s.rules.user_risk_score.fields[1].values[1] = "x" end,
    }
    for i, f in ipairs(targets) do
      local ok, err = pcall(f)
      assert.is_false(ok, "write " .. i)
      assert.truthy(tostring(err):find("read-only", 1, true), tostring(err))
    end
    assert.equal("email", s.rule_types[1])
    assert.is_true(s.rules.email.identity)
    assert.equal("read-only", getmetatable(s))
  end)
end)
