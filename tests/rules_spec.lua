-- cfaccess.rules: every builder's exact output, its argument errors, and
-- that its output validates and encodes (through the C core) to the
-- expected JSON.
local cfaccess = require("cfaccess")
local cjson = require("cjson").new()
local r = cfaccess.rules

local tu = require("testutil")
local UUID, IDP, ACCOUNT = tu.UUID, tu.IDP, tu.ACCOUNT

-- One entry per builder: its name, the argument names as they appear in
-- errors (a trailing "?" marks an optional one), valid arguments, the exact
-- table it must return, and the JSON that table must encode to inside
-- include (fields in schema order).
local cases = {
  { "email", { "address" }, { "alice@example.com" },
    { email = { email = "alice@example.com" } },
    '{"email":{"email":"alice@example.com"}}' },
  { "email_domain", { "domain" }, { "example.com" },
    { email_domain = { domain = "example.com" } },
    '{"email_domain":{"domain":"example.com"}}' },
  { "everyone", {}, {}, { everyone = {} }, '{"everyone":{}}' },
  { "ip", { "ip" }, { "203.0.113.0/24" },
    { ip = { ip = "203.0.113.0/24" } }, '{"ip":{"ip":"203.0.113.0/24"}}' },
  { "group", { "id" }, { UUID }, { group = { id = UUID } },
    '{"group":{"id":"' .. UUID .. '"}}' },
  { "email_list", { "id" }, { UUID }, { email_list = { id = UUID } },
    '{"email_list":{"id":"' .. UUID .. '"}}' },
  { "ip_list", { "id" }, { UUID }, { ip_list = { id = UUID } },
    '{"ip_list":{"id":"' .. UUID .. '"}}' },
  { "service_token", { "token_id" }, { UUID },
    { service_token = { token_id = UUID } },
    '{"service_token":{"token_id":"' .. UUID .. '"}}' },
  { "any_valid_service_token", {}, {}, { any_valid_service_token = {} },
    '{"any_valid_service_token":{}}' },
  { "certificate", {}, {}, { certificate = {} }, '{"certificate":{}}' },
  { "common_name", { "common_name" }, { "device1.example.com" },
    { common_name = { common_name = "device1.example.com" } },
    '{"common_name":{"common_name":"device1.example.com"}}' },
  { "geo", { "country_code" }, { "US" }, { geo = { country_code = "US" } },
    '{"geo":{"country_code":"US"}}' },
  { "auth_method", { "auth_method" }, { "mfa" },
    { auth_method = { auth_method = "mfa" } },
    '{"auth_method":{"auth_method":"mfa"}}' },
  { "device_posture", { "integration_uid" }, { UUID },
    { device_posture = { integration_uid = UUID } },
    '{"device_posture":{"integration_uid":"' .. UUID .. '"}}' },
  { "login_method", { "id" }, { IDP }, { login_method = { id = IDP } },
    '{"login_method":{"id":"' .. IDP .. '"}}' },
  { "azure_ad", { "group_id", "idp_id" }, { "aa0a4aab-672b-4bdb-bc33-a59f1130a11f", IDP },
    { azureAD = { id = "aa0a4aab-672b-4bdb-bc33-a59f1130a11f",
                  identity_provider_id = IDP } },
    '{"azureAD":{"id":"aa0a4aab-672b-4bdb-bc33-a59f1130a11f",'
      .. '"identity_provider_id":"' .. IDP .. '"}}' },
  { "github_org", { "name", "idp_id", "team?" }, { "acme", IDP, "infra" },
    { ["github-organization"] = { name = "acme", identity_provider_id = IDP,
                                  team = "infra" } },
    '{"github-organization":{"name":"acme","identity_provider_id":"' .. IDP
      .. '","team":"infra"}}' },
  { "gsuite", { "email", "idp_id" }, { "devs@example.com", IDP },
    { gsuite = { email = "devs@example.com", identity_provider_id = IDP } },
    '{"gsuite":{"email":"devs@example.com","identity_provider_id":"' .. IDP
      .. '"}}' },
  { "okta", { "name", "idp_id" }, { "admins", IDP },
    { okta = { name = "admins", identity_provider_id = IDP } },
    '{"okta":{"name":"admins","identity_provider_id":"' .. IDP .. '"}}' },
  { "saml", { "attr_name", "attr_value", "idp_id" }, { "group", "devs", IDP },
    { saml = { attribute_name = "group", attribute_value = "devs",
               identity_provider_id = IDP } },
    '{"saml":{"attribute_name":"group","attribute_value":"devs",'
      .. '"identity_provider_id":"' .. IDP .. '"}}' },
  { "oidc", { "claim_name", "claim_value", "idp_id" }, { "groups", "devs", IDP },
    { oidc = { claim_name = "groups", claim_value = "devs",
               identity_provider_id = IDP } },
    '{"oidc":{"claim_name":"groups","claim_value":"devs",'
      .. '"identity_provider_id":"' .. IDP .. '"}}' },
  { "auth_context", { "id", "ac_id", "idp_id" }, { UUID, "c1", IDP },
    { auth_context = { id = UUID, ac_id = "c1", identity_provider_id = IDP } },
    '{"auth_context":{"id":"' .. UUID .. '","ac_id":"c1",'
      .. '"identity_provider_id":"' .. IDP .. '"}}' },
  { "external_evaluation", { "evaluate_url", "keys_url" },
    { "https://eval.example.com/check", "https://eval.example.com/keys" },
    { external_evaluation = { evaluate_url = "https://eval.example.com/check",
                              keys_url = "https://eval.example.com/keys" } },
    '{"external_evaluation":{"evaluate_url":"https://eval.example.com/check",'
      .. '"keys_url":"https://eval.example.com/keys"}}' },
  { "linked_app_token", { "app_uid" }, { UUID },
    { linked_app_token = { app_uid = UUID } },
    '{"linked_app_token":{"app_uid":"' .. UUID .. '"}}' },
  { "cloudflare_account_member", { "account_id?" }, { ACCOUNT },
    { cloudflare_account_member = { account_id = ACCOUNT } },
    '{"cloudflare_account_member":{"account_id":"' .. ACCOUNT .. '"}}' },
}

-- user_risk_score takes a list, not strings: tested on its own below, and
-- here for shape/validate/encode with the same machinery.
local risk_case = { "user_risk_score", nil, { { "high", "medium" } },
  { user_risk_score = { user_risk_score = { "high", "medium" } } },
  '{"user_risk_score":{"user_risk_score":["high","medium"]}}' }

local all_cases = { risk_case }
for _, c in ipairs(cases) do all_cases[#all_cases + 1] = c end

-- The rule types, from the core's schema (the one list of them; rules.lua
-- checks rulespec against it at load).
local schema = require("cfaccess.core").schema
local spec = require("cfaccess.rulespec")

local function call(name, args)
  return r[name](table.unpack(args, 1, args.n or #args))
end

local function policy_for(name, rule)
  return {
    name = "x",
    decision = name == "linked_app_token" and "non_identity" or "allow",
    include = { rule },
  }
end

-- Run f, expect it to raise; return the message.
local function raises(f)
  local ok, msg = pcall(f)
  assert.is_false(ok, "expected an error")
  assert.is_string(msg)
  return msg
end

local function plain(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

describe("cfaccess.rules", function()
  it("has a builder for every rule type of the core's schema", function()
    assert.is_table(schema, "cfaccess.core.schema is missing")
    local seen = {}
    for _, c in ipairs(all_cases) do
      assert.is_function(r[c[1]], c[1])
      local key = next(c[4])
      seen[key] = true
    end
    for _, key in ipairs(schema.rule_types) do
      assert.is_true(seen[key] == true, "no builder produces " .. key)
    end
    assert.are.equal(#schema.rule_types, #spec)
  end)

  it("tests every builder of rulespec, and rulespec matches the schema", function()
    local tested = {}
    for _, c in ipairs(all_cases) do tested[c[1]] = next(c[4]) end
    assert.are.equal(#all_cases, #spec)
    for _, e in ipairs(spec) do
      assert.are.equal(e.key, tested[e.builder], "no case for " .. e.builder)
      local fields, args = {}, {}
      for _, f in ipairs(schema.rules[e.key].fields) do
        if not f.legacy then fields[f.name] = f.type end
        if (e.optional or {})[f.name] then
          assert.is_false(f.required, e.builder .. " may omit " .. f.name)
        end
      end
      for _, a in ipairs(e.args) do
        args[a] = (e.list or {})[a] and "list" or "string"
      end
      assert.are.same(fields, args, e.builder)
    end
    for _, l in ipairs(spec.lists) do assert.is_function(r[l.builder], l.builder) end
  end)

  describe("the load-time check against the core's schema", function()
    -- Load rules.lua afresh with a changed copy of rulespec; return the
    -- error it raises (or nil if it loads).
    local function load_with(change)
      local copy = { lists = spec.lists }
      for i, e in ipairs(spec) do
        local c = {}
        for k, v in pairs(e) do c[k] = v end
        copy[i] = c
      end
      change(copy)
      local path = assert(package.searchpath("cfaccess.rules", package.path))
      local chunk = assert(loadfile(path))
      local saved = package.loaded["cfaccess.rulespec"]
      package.loaded["cfaccess.rulespec"] = copy
      local ok, err = pcall(chunk, "cfaccess.rules")
      package.loaded["cfaccess.rulespec"] = saved
      return not ok and err or nil
    end
    local function by(copy, builder)
      for i, e in ipairs(copy) do if e.builder == builder then return e, i end end
    end

    it("loads with the real rulespec", function()
      assert.is_nil(load_with(function() end))
    end)
    it("fails when a rule type has no builder", function()
      local err = load_with(function(c) local _, i = by(c, "oidc"); table.remove(c, i) end)
      assert.matches('no builder for rule type "oidc"', err)
    end)
    it("fails when a builder's args are not the rule's fields", function()
      local err = load_with(function(c) by(c, "okta").args = { "name", "email" } end)
      assert.matches('okta: args {email, name}, rule "okta" has fields {identity_provider_id, name}', err, 1, true)
      err = load_with(function(c) by(c, "geo").args = {} end)
      assert.matches("geo: args {}", err, 1, true)
    end)
    it("fails when a builder may omit a required field", function()
      local err = load_with(function(c) by(c, "gsuite").optional = { email = true } end)
      assert.matches("gsuite: email is optional here, required in the schema", err, 1, true)
    end)
    it("fails when a builder's list argument is a string in the schema", function()
      local err = load_with(function(c) by(c, "ip").list = { ip = true } end)
      assert.matches("ip: ip takes a list here, the schema's field is a string", err, 1, true)
    end)
    it("fails when a builder builds no rule type, or two build one", function()
      local err = load_with(function(c) by(c, "geo").key = "country" end)
      assert.matches('geo builds "country", not a rule type', err, 1, true)
      err = load_with(function(c) c[#c + 1] = { builder = "ip2", key = "ip", args = { "ip" } } end)
      assert.matches('two builders for "ip"', err, 1, true)
    end)
  end)

  for _, c in ipairs(all_cases) do
    local name, args, expected = c[1], c[3], c[4]

    describe(name, function()
      it("returns exactly the API's JSON shape as a plain table", function()
        local got = call(name, args)
        assert.are.same(expected, got)
        assert.is_nil(getmetatable(got))
        local key, inner = next(got)
        assert.is_nil(next(got, key), "one key only")
        assert.is_nil(getmetatable(inner))
      end)

      it("returns a fresh table on every call", function()
        local a, b = call(name, args), call(name, args)
        assert.are_not.equal(a, b)
        local ka = next(a)
        assert.are_not.equal(a[ka], b[ka])
      end)
    end)
  end

  describe("argument errors", function()
    for _, c in ipairs(cases) do
      local name, argnames, args = c[1], c[2], c[3]
      for i, argname in ipairs(argnames) do
        local optional = argname:sub(-1) == "?"
        argname = optional and argname:sub(1, -2) or argname
        local function with(v)
          local a = { n = #argnames }
          for j = 1, #argnames do a[j] = args[j] end
          a[i] = v
          return a
        end
        local prefix = ("cfaccess.rules.%s: argument #%d (%s) expected a "
          .. "non-empty string, got "):format(name, i, argname)

        if optional then
          it(("%s: argument #%d (%s) may be nil"):format(name, i, argname), function()
            local got = call(name, with(nil))
            local _, inner = next(got)
            assert.is_nil(inner[argname == "account_id" and "account_id" or "team"])
          end)
        else
          it(("%s: argument #%d (%s) missing"):format(name, i, argname), function()
            local msg = raises(function() call(name, with(nil)) end)
            assert.matches(plain(prefix .. "nil") .. "$", msg)
          end)
          it(("%s: argument #%d (%s) empty"):format(name, i, argname), function()
            local msg = raises(function() call(name, with("")) end)
            assert.matches(plain(prefix .. "an empty string") .. "$", msg)
          end)
        end
        it(("%s: argument #%d (%s) of the wrong type"):format(name, i, argname), function()
          local msg = raises(function() call(name, with(42)) end)
          assert.matches(plain(prefix .. "number") .. "$", msg)
          msg = raises(function() call(name, with({ args[i] })) end)
          assert.matches(plain(prefix .. "table") .. "$", msg)
        end)
      end

      it(name .. ": one argument too many", function()
        local a = { n = #argnames + 1 }
        for j = 1, #argnames do a[j] = args[j] end
        a[#argnames + 1] = "extra"
        local msg = raises(function() call(name, a) end)
        assert.matches(plain(("cfaccess.rules.%s: argument #%d unexpected")
          :format(name, #argnames + 1)), msg)
      end)
    end

    it("are raised at the caller's level (level 2)", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, msg = pcall(function() local rule = r.email(nil); return rule end)
      assert.is_false(ok)
      assert.matches("rules_spec%.lua:" .. line .. ": cfaccess%.rules%.email: "
        .. "argument #1 %(address%) expected a non%-empty string, got nil", msg)
    end)

    it("r.github_org(\"o\", \"i\", 5) blames this line, not rules.lua", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, msg = pcall(function() local x = r.github_org("o", "i", 5); return x end)
      assert.is_false(ok)
      assert.matches("rules_spec%.lua:" .. line .. ": cfaccess%.rules%.github_org: "
        .. "argument #3 %(team%) expected a non%-empty string, got number$", msg)
      assert.is_nil(msg:find("rules.lua", 1, true))
    end)

    -- Every kind of argument error of every builder and list helper is
    -- positioned at the line that called it (the pcall line of call_at).
    local function call_at(name, a)
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, msg = pcall(function() local x = r[name](table.unpack(a, 1, a.n)); return x end)
      return line, ok, msg
    end
    local function bad_calls(good)
      local n = #good
      local out = { { n = n + 1, table.unpack(good, 1, n) } }   -- one too many
      out[1][n + 1] = "extra"
      for i = 1, n do
        local a = { n = n, table.unpack(good, 1, n) }
        a[i] = 42                                            -- wrong type
        out[#out + 1] = a
      end
      return out
    end
    local positioned = {}
    for _, c in ipairs(all_cases) do positioned[#positioned + 1] = { c[1], bad_calls(c[3]) } end
    positioned[#positioned + 1] = { "user_risk_score", { { n = 1, { "high", 3 } }, { n = 1, {} }, { n = 0 } } }
    for _, l in ipairs(spec.lists) do
      positioned[#positioned + 1] = { l.builder, { { n = 1, { "a", nil, "b" } }, { n = 1, { "a", false } },
        { n = 1, "a" }, { n = 2, {}, {} } } }
    end
    for _, p in ipairs(positioned) do
      local name, calls = p[1], p[2]
      it(name .. ": every argument error is positioned at the caller's line", function()
        for _, a in ipairs(calls) do
          local line, ok, msg = call_at(name, a)
          assert.is_false(ok, name .. " accepted a bad call")
          assert.matches("rules_spec%.lua:" .. line .. ": cfaccess%.rules%." .. name .. ": argument #", msg)
        end
      end)
    end

    it("user_risk_score: levels must be a non-empty list of non-empty strings", function()
      local p = "cfaccess.rules.user_risk_score: argument #1 (levels) "
      assert.matches(plain(p .. "expected a list of strings, got nil"),
        raises(function() r.user_risk_score() end))
      assert.matches(plain(p .. "expected a list of strings, got string"),
        raises(function() r.user_risk_score("high") end))
      assert.matches(plain(p .. "expected a non-empty list of strings, got an empty table"),
        raises(function() r.user_risk_score({}) end))
      assert.matches(plain(p .. "element [2] expected a non-empty string, got number"),
        raises(function() r.user_risk_score({ "high", 3 }) end))
      assert.matches(plain(p .. "element [1] expected a non-empty string, got an empty string"),
        raises(function() r.user_risk_score({ "" }) end))
      assert.matches(plain(p .. 'expected a list of strings, got a table with key "level"'),
        raises(function() r.user_risk_score({ level = "high" }) end))
      assert.matches(plain("cfaccess.rules.user_risk_score: argument #2 unexpected"),
        raises(function() r.user_risk_score({ "high" }, { "low" }) end))
    end)

    it("user_risk_score copies the list it is given", function()
      local levels = { "high" }
      local rule = r.user_risk_score(levels)
      levels[2] = "low"
      assert.are.same({ "high" }, rule.user_risk_score.user_risk_score)
      assert.are_not.equal(levels, rule.user_risk_score.user_risk_score)
    end)

    it("cloudflare_account_member() without an account is an empty object", function()
      local rule = r.cloudflare_account_member()
      assert.are.same({ cloudflare_account_member = {} }, rule)
    end)

    it("github_org without a team leaves team out", function()
      assert.are.same({ ["github-organization"] = { name = "acme",
        identity_provider_id = IDP } }, r.github_org("acme", IDP))
    end)
  end)

  describe("list helpers", function()
    local helpers = {
      { "emails", "addresses", "email", { "a@example.com", "b@example.com" } },
      { "email_domains", "domains", "email_domain", { "example.com", "example.org" } },
      { "ips", "ips", "ip", { "192.0.2.1", "2001:db8::/32" } },
      { "groups", "ids", "group", { UUID, IDP } },
      { "countries", "country_codes", "geo", { "US", "DE", "JP" } },
    }
    for _, h in ipairs(helpers) do
      local name, argname, single, list = h[1], h[2], h[3], h[4]
      local p = ("cfaccess.rules.%s: argument #1 (%s) "):format(name, argname)

      it(name .. " gives one " .. single .. " rule per element, in order", function()
        local got = r[name](list)
        local want = {}
        for i, v in ipairs(list) do want[i] = r[single](v) end
        assert.are.same(want, got)
        assert.are.equal(#list, #got)
        assert.is_nil(getmetatable(got))
        assert.are.same({}, r[name]({}))
      end)

      it(name .. " output validates as include", function()
        local ok, err = cfaccess.validate{ name = "x", decision = "allow",
          include = r[name](list) }
        assert.is_true(ok, tostring(err))
      end)

      it(name .. " checks its list", function()
        assert.matches(plain(p .. "expected a list of strings, got nil"),
          raises(function() r[name]() end))
        assert.matches(plain(p .. "expected a list of strings, got string"),
          raises(function() r[name](list[1]) end))
        assert.matches(plain(p .. "element [2] expected a non-empty string, got boolean"),
          raises(function() r[name]({ list[1], true }) end))
        assert.matches(plain(p .. "element [1] expected a non-empty string, got an empty string"),
          raises(function() r[name]({ "" }) end))
        assert.matches(plain(p .. "expected a list of strings, got a table with holes"),
          raises(function() r[name]({ list[1], nil, list[2], n = nil, [5] = list[1] }) end))
        assert.matches(plain(p .. 'expected a list of strings, got a table with key "x"'),
          raises(function() r[name]({ list[1], x = 1 }) end))
        assert.matches(plain("cfaccess.rules." .. name .. ": argument #2 unexpected"),
          raises(function() r[name](list, list) end))
      end)
    end
  end)

  describe("through the core", function()
    for _, c in ipairs(all_cases) do
      local name, args, fragment = c[1], c[3], c[5]

      it(name .. " output validates as an include rule", function()
        local ok, err = cfaccess.validate(policy_for(name, call(name, args)))
        assert.is_nil(err and tostring(err))
        assert.is_true(ok)
      end)

      it(name .. " output encodes to the expected JSON", function()
        local rule = call(name, args)
        local json, err = cfaccess.encode(policy_for(name, rule))
        assert.is_nil(err and tostring(err))
        assert.is_string(json)
        assert.is_truthy(json:find('"include":[' .. fragment .. ']', 1, true),
          "expected " .. fragment .. " in " .. json)
        -- and the JSON says the same as the table
        local decoded = cjson.decode(json)
        assert.are.same(rule, decoded.include[1])
      end)
    end

    it("cloudflare_account_member() encodes as an empty object", function()
      local json, err = cfaccess.encode(policy_for("x", r.cloudflare_account_member()))
      assert.is_nil(err and tostring(err))
      assert.is_truthy(json:find('"include":[{"cloudflare_account_member":{}}]', 1, true), json)
    end)

    it("builder output and hand-written tables encode to the same bytes", function()
      local built = {
        name = "mixed", decision = "allow",
        include = { r.email("alice@example.com"), r.everyone(), r.geo("US") },
        require = { r.auth_method("mfa") },
        exclude = r.ips{ "192.0.2.1/32" },
      }
      local hand = {
        name = "mixed", decision = "allow",
        include = { { email = { email = "alice@example.com" } }, { everyone = {} },
                    { geo = { country_code = "US" } } },
        require = { { auth_method = { auth_method = "mfa" } } },
        exclude = { { ip = { ip = "192.0.2.1/32" } } },
      }
      local a, aerr = cfaccess.encode(built)
      local b, berr = cfaccess.encode(hand)
      assert.is_nil(aerr and tostring(aerr))
      assert.is_nil(berr and tostring(berr))
      assert.are.equal(b, a)
    end)

    it("the core, not the builder, rejects a badly formatted value", function()
      local rule = r.email("not-an-email")
      assert.are.same({ email = { email = "not-an-email" } }, rule)
      local ok, err = cfaccess.validate{ name = "x", decision = "allow", include = { rule } }
      assert.is_nil(ok)
      assert.are.equal("invalid", err.kind)
      assert.are.equal("include[1].email.email", err.problems[1].path)
    end)
  end)
end)
