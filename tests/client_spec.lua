-- cfaccess.core.client: options, credentials, ids and every endpoint end
-- to end against the local mock (tests/mock/cfmock.py via mockctl).
local core = require("cfaccess.core")
local mockctl = require("mockctl")

local tu = require("testutil")

local TOKEN = tu.token("client")
local ACCT, ZONE, APP = tu.ACCOUNT, tu.ZONE, tu.APP
local ZAPP = "a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4"       -- 32-hex app id
local INFRA = tu.OTHER                                -- registered as an infrastructure app

local policy = tu.named_policy

local function contains(s, needle) return s:find(needle, 1, true) ~= nil end

describe("cfaccess client", function()
  local m
  local hooks = mockctl.block_hooks({ token = TOKEN },
    { { "accounts", ACCT, APP }, { "accounts", ACCT, INFRA, "infrastructure" }, { "zones", ZONE, ZAPP } },
    function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  local function client(opts)
    local o = { account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                rate_limit = false }
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.account_id == false then o.account_id = nil end
    return core.client(o)
  end

  describe("options", function()
    it("raises for a non-table argument", function()
      assert.has_error(function() core.client("x") end)
      assert.has_error(function() core.client() end)
    end)

    it("rejects unknown options by name, with a suggestion", function()
      local c, err = client{ timeot = 5 }
      assert.is_nil(c)
      assert.equal("usage", err.kind)
      assert.truthy(contains(err.message, '"timeot"'))
      assert.truthy(contains(err.message, '"timeout"'))
      assert.equal(err.message, tostring(err))
    end)

    it("wants exactly one of account_id and zone_id", function()
      local c, err = client{ zone_id = ZONE }
      assert.is_nil(c)
      assert.equal("usage", err.kind)
      c, err = client{ account_id = false }
      assert.is_nil(c)
      assert.equal("usage", err.kind)
    end)

    it("checks account_id and zone_id are 32 hex", function()
      for _, bad in ipairs{ "abc", ACCT .. "0", "../" .. ACCT:sub(4), ACCT:sub(1, 31) .. "g" } do
        local c, err = client{ account_id = bad }
        assert.is_nil(c)
        assert.equal("invalid", err.kind)
        assert.truthy(contains(err.message, "account_id"))
      end
      local c, err = core.client{ zone_id = "zz", api_token = TOKEN, base_url = m.base_url }
      assert.is_nil(c)
      assert.equal("invalid", err.kind)
      assert.truthy(contains(err.message, "zone_id"))
    end)

    it("gives usage errors for option values of the wrong type or range", function()
      local cases = {
        { timeout = "5" }, { timeout = 0 }, { timeout = -1 }, { connect_timeout = {} },
        { max_retries = 1.5 }, { max_retries = -1 }, { max_retry_wait = -1 },
        { rate_limit = true }, { rate_limit = 5 }, { rate_limit = { requests = 0, per = 1 } },
        { rate_limit = { requests = 10 } }, { rate_limit = { requests = 10, per = 0 } },
        { rate_limit = { requests = 10, per = 1, burst = 2 } },
        { max_response_bytes = 0 }, { max_response_bytes = 1.5 },
        { cafile = 1 }, { proxy = true }, { user_agent = "a\r\nX-Evil: 1" },
        { user_agent = "" }, { on_log = "print" }, { base_url = 42 },
        { api_token = "abc\ndef" }, { [1] = "positional" },
      }
      for i, extra in ipairs(cases) do
        local c, err = client(extra)
        assert.is_nil(c, "case " .. i)
        assert.equal("usage", err.kind, "case " .. i .. ": " .. tostring(err))
      end
      for opt, msg in pairs{
        timeout = { "5", "client option timeout: expected a number, got string" },
        cafile = { 1, "client option cafile: expected a string, got number" },
        on_log = { "print", "client option on_log: expected a function, got string" },
        max_retries = { 1.5, "client option max_retries: expected an integer >= 0, got 1.5" },
      } do
        local _, err = client{ [opt] = msg[1] }
        assert.equal(msg[2], err.message)
      end
    end)

    it("refuses plain http to a non-loopback host before any connection", function()
      for _, url in ipairs{ "http://192.0.2.1/client/v4", "http://example.com/client/v4",
                            "http://128.0.0.1/", "ftp://127.0.0.1/x", "not a url",
                            "https://user:pw@api.example.com/", "https://x.example/?a=1" } do
        local c, err = client{ base_url = url }
        assert.is_nil(c, url)
        assert.equal("usage", err.kind, url)
      end
    end)

    it("accepts loopback http and any https base URL", function()
      for _, url in ipairs{ "http://localhost:1/x", "http://127.1.2.3:9/", "http://[::1]:8/v4",
                            "https://api.cloudflare.com/client/v4/" } do
        local c, err = client{ base_url = url }
        assert.is_nil(err, url)
        assert.truthy(tostring(c):find("cfaccess.client", 1, true))
        c:close()
      end
    end)

    it("sends user_agent and uses proxy", function()
      local c = assert(client{ user_agent = "my-tool/1.0" })
      assert(c:list_app_policies(APP))
      assert.equal("my-tool/1.0", m:log()[1].headers["user-agent"])
      c:close()
      -- a proxy with the mock's plain-http base URL: refused, nothing sent
      -- (the proxy path itself: tests/edges_spec.lua, over https)
      local r, err = client{ proxy = "http://127.0.0.1:9/", max_retries = 0 }
      assert.is_nil(r)
      assert.equal("usage", err.kind)
      assert.equal(1, #m:log())
    end)

    it("wants credentials, and exactly one scheme", function()
      local c, err = core.client{ account_id = ACCT, base_url = m.base_url,
                                  api_key = "k3y-V4LUE" }
      assert.is_nil(c)
      assert.equal("usage", err.kind)
      assert.truthy(contains(err.message, "api_email"))
      c, err = core.client{ account_id = ACCT, base_url = m.base_url, api_token = TOKEN,
                            api_key = "k3y-V4LUE", api_email = "me@example.com" }
      assert.is_nil(c)
      assert.equal("usage", err.kind)
      assert.truthy(contains(err.message, "argument api_token"))
      assert.truthy(contains(err.message, "argument api_key"))
      assert.falsy(contains(err.message, TOKEN))
      assert.falsy(contains(err.message, "k3y-V4LUE"))
    end)
  end)

  describe("environment", function()
    -- Runs a snippet in a fresh lua5.4 with the given environment; returns
    -- its stdout.
    local function run(env, code)
      local words = { "env", "-u", "CLOUDFLARE_API_TOKEN", "-u", "CLOUDFLARE_API_KEY",
                      "-u", "CLOUDFLARE_EMAIL", "-u", "CLOUDFLARE_BASE_URL" }
      for k, v in pairs(env) do words[#words + 1] = mockctl.shell_quote(k .. "=" .. v) end
      words[#words + 1] = "lua5.4 -e " .. mockctl.shell_quote(code) .. " 2>&1"
      local p = io.popen(table.concat(words, " "))
      local out = p:read("a")
      p:close()
      return out
    end

    it("takes the token and base URL from the environment", function()
      local out = run({ CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_BASE_URL = m.base_url }, [[
        local c, err = require("cfaccess.core").client{ account_id = "]] .. ACCT .. [[" }
        assert(c, tostring(err))
        local r, e = c:list_app_policies("]] .. APP .. [[")
        print(r and ("LISTED " .. #r) or ("ERR " .. tostring(e)))
      ]])
      assert.truthy(contains(out, "LISTED 0"), out)
      local log = m:log()
      assert.equal("[redacted]", log[#log].headers.authorization)
      assert.is_nil(log[#log].headers["x-auth-key"])
    end)

    it("takes api key and email from the environment", function()
      local m2 = mockctl.start{ api_key = "env-K3Y-client-spec1", email = "ops@example.com",
                                apps = { "accounts:" .. ACCT .. ":" .. APP } }
      local ok, out = pcall(run, { CLOUDFLARE_API_KEY = "env-K3Y-client-spec1", CLOUDFLARE_EMAIL = "ops@example.com",
                                   CLOUDFLARE_BASE_URL = m2.base_url }, [[
        local c, err = require("cfaccess.core").client{ account_id = "]] .. ACCT .. [[" }
        assert(c, tostring(err))
        local r, e = c:list_app_policies("]] .. APP .. [[")
        print(r and ("LISTED " .. #r) or ("ERR " .. tostring(e)))
      ]])
      local log = ok and m2:log() or {}
      m2:stop()
      assert.truthy(ok, out)
      assert.truthy(contains(out, "LISTED 0"), out)
      assert.equal("ops@example.com", log[#log].headers["x-auth-email"])
      assert.equal("[redacted]", log[#log].headers["x-auth-key"])
      assert.is_nil(log[#log].headers.authorization)
    end)

    it("says where each credential came from when both schemes are present", function()
      local out = run({ CLOUDFLARE_API_TOKEN = TOKEN }, [[
        local c, err = require("cfaccess.core").client{ account_id = "]] .. ACCT .. [[",
          api_key = "k3y-V4LUE", api_email = "a@example.com" }
        print(c, err.kind, err.message)
      ]])
      assert.truthy(contains(out, "usage"), out)
      assert.truthy(contains(out, "environment variable CLOUDFLARE_API_TOKEN"), out)
      assert.truthy(contains(out, "argument api_key"), out)
      assert.falsy(contains(out, TOKEN), out)
      assert.falsy(contains(out, "k3y-V4LUE"), out)
    end)

    it("reports missing credentials", function()
      local out = run({}, [[
        local c, err = require("cfaccess.core").client{ account_id = "]] .. ACCT .. [[" }
        print(c, err.kind)
      ]])
      assert.truthy(contains(out, "nil\tusage"), out)
    end)
  end)

  describe("ids and policies are checked before any request", function()
    it("returns invalid errors naming the argument", function()
      local c = assert(client())
      local before = #m:log()
      local cases = {
        { "create_app_policy", "../x", policy("a") },
        { "create_app_policy", APP .. "\r\n", policy("a") },
        { "create_app_policy", "", policy("a") },
        { "get_app_policy", APP, ACCT },          -- policy_id must be a UUID
        { "get_app_policy", "nope", APP },
        { "delete_app_policy", APP, "../../accounts" },
        { "update_app_policy", APP, "x", policy("a") },
        { "list_app_policies", "f174e90a-fafe-4643-bbbc-4a0ed4fc841" },
        { "get_policy", "x" }, { "delete_policy", APP .. "0" },
        { "update_policy", "x", policy("a") },
      }
      for i, case in ipairs(cases) do
        local r, err = c[case[1]](c, table.unpack(case, 2))
        assert.is_nil(r, "case " .. i)
        assert.equal("invalid", err.kind, "case " .. i)
        assert.truthy(err.message:find("_id", 1, true), err.message)
      end
      assert.equal(before, #m:log())
      c:close()
    end)

    it("never sends an invalid policy", function()
      local c = assert(client())
      local before = #m:log()
      local r, err = c:create_app_policy(APP, { name = "x", decision = "maybe", include = {} })
      assert.is_nil(r)
      assert.equal("invalid", err.kind)
      assert.is_table(err.problems)
      r, err = c:create_policy({ decision = "allow" })
      assert.is_nil(r)
      assert.equal("invalid", err.kind)
      assert.equal(before, #m:log())
      c:close()
    end)

    it("raises for wrong argument types", function()
      local c = assert(client())
      assert.has_error(function() c:create_app_policy(APP, "policy") end)
      assert.has_error(function() c:create_app_policy(nil, policy("a")) end)
      assert.has_error(function() c:get_app_policy(APP, 12) end)
      assert.has_error(function() c:list_app_policies(APP, "all") end)
      assert.has_error(function() c.list_policies({}) end)
      c:close()
    end)

    it("rejects bad list options and kinds with usage errors", function()
      local c = assert(client())
      for _, o in ipairs{ { page = 0 }, { per_page = 1.5 }, { per_page = 5000 }, { pages = 1 } } do
        local r, err = c:list_app_policies(APP, o)
        assert.is_nil(r)
        assert.equal("usage", err.kind)
      end
      local r, err = c:create_app_policy(APP, policy("k"), { kind = "reusable" })
      assert.is_nil(r)
      assert.equal("usage", err.kind)
      c:close()
    end)
  end)

  describe("account application policies", function()
    it("create, list, get, update and delete", function()
      local c = assert(client())
      local r, err = c:create_app_policy(APP, policy("one", {
        include = { { ip = { ip = "192.0.2.1" } } } }))
      assert.is_nil(err)
      assert.equal("one", r.name)
      assert.equal("24h", r.session_duration)
      assert.equal("integer", math.type(r.precedence))
      assert.equal("192.0.2.1/32", r.include[1].ip.ip)
      local id = r.id

      local list = assert(c:list_app_policies(APP))
      assert.equal(1, #list)
      assert.equal(id, list[1].id)

      local g = assert(c:get_app_policy(APP, id))
      assert.equal("one", g.name)

      local u = assert(c:update_app_policy(APP, id, policy("renamed", { precedence = 7 })))
      assert.equal("renamed", u.name)
      assert.equal(7, u.precedence)
      assert.equal("integer", math.type(u.precedence))

      local d = assert(c:delete_app_policy(APP, id))
      assert.equal(id, d.id)
      assert.same({}, assert(c:list_app_policies(APP)))

      local log = m:log()
      local seen = {}
      for _, q in ipairs(log) do seen[#seen + 1] = q.method .. " " .. math.tointeger(q.status) end
      -- update and delete first GET the policy as the app lists it (a
      -- reusable one is not changed through the app: API.md section 6)
      assert.same({ "POST 201", "GET 200", "GET 200", "GET 200", "PUT 200", "GET 200", "DELETE 202", "GET 200" },
                  seen)
      assert.equal("/client/v4/accounts/" .. ACCT .. "/access/apps/" .. APP .. "/policies/" .. id,
                   log[5].path)
      assert.equal("application/json", log[1].headers["content-type"])
      assert.equal("[redacted]", log[1].headers.authorization)
      assert.truthy(log[1].headers["user-agent"]:find("^cfaccess/%d+%.%d+%.%d+ lua/5%.4 libcurl/"))
      assert.is_nil(log[1].headers.expect)
      -- one handle, one keep-alive connection
      for i = 2, #log do assert.equal(log[1].connection, log[i].connection) end
      c:close()
    end)

    it("returns api errors with Cloudflare's codes", function()
      local c = assert(client())
      assert(c:create_app_policy(APP, policy("a", { precedence = 3 })))
      local r, err = c:create_app_policy(APP, policy("b", { precedence = 3 }))
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(400, err.status)
      assert.equal(11018, err.errors[1].code)
      assert.equal("integer", math.type(err.errors[1].code))
      assert.is_table(err.messages)
      assert.truthy(err.ray_id:match("^%x+%-SJC$"))
      assert.equal(1, err.attempts)
      r, err = c:get_app_policy(APP, "00000000-0000-4000-8000-000000000000")
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(404, err.status)
      c:close()
    end)

    it("reports a wrong token as api 403 without revealing it", function()
      local c = assert(client{ api_token = "wrong-T0KEN-value" })
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(403, err.status)
      assert.equal(10000, err.errors[1].code)
      assert.falsy(contains(tostring(err), "wrong-T0KEN-value"))
      c:close()
    end)

    it("follows every page, or returns only the page asked for", function()
      local c = assert(client())
      for i = 1, 5 do assert(c:create_app_policy(APP, policy("p" .. i))) end
      local all = assert(c:list_app_policies(APP, { per_page = 2 }))
      assert.equal(5, #all)
      local names = {}
      for i, p in ipairs(all) do names[i] = p.name end
      assert.same({ "p1", "p2", "p3", "p4", "p5" }, names)
      assert.equal(3, m:count("GET"))
      local page2 = assert(c:list_app_policies(APP, { page = 2, per_page = 2 }))
      assert.equal(2, #page2)
      assert.equal("p3", page2[1].name)
      local page9 = assert(c:list_app_policies(APP, { page = 9, per_page = 2 }))
      assert.same({}, page9)
      c:close()
    end)

    it("decodes results: integral numbers as integers, null members dropped", function()
      local c = assert(client())
      local id = "00000000-0000-4000-8000-000000000001"
      m:fault{ action = "status", status = 200, method = "GET", body = '{"success":true,'
        .. '"errors":[],"messages":[],"result":{"id":"' .. id .. '","precedence":3,'
        .. '"half":1.5,"neg":-2,"zero":-0.0,"big":1e300,"exp":2e3,"gone":null,'
        .. '"deep":{"list":[1,2.5,null,[4,{"n":5,"x":null}]],"empty":[],"obj":{}},'
        .. '"huge":18446744073709551616}}' }
      local r = assert(c:get_app_policy(APP, id))
      assert.equal(id, r.id)
      for _, k in ipairs{ "precedence", "neg", "zero", "exp" } do
        assert.equal("integer", math.type(r[k]), k)
      end
      assert.same({ 3, -2, 0, 2000 }, { r.precedence, r.neg, r.zero, r.exp })
      for _, k in ipairs{ "half", "big", "huge" } do assert.equal("float", math.type(r[k]), k) end
      assert.is_nil(r.gone)
      assert.equal(nil, next(r.deep.empty))
      assert.equal(nil, next(r.deep.obj))
      local list = r.deep.list
      assert.equal(4, #list)
      assert.equal("integer", math.type(list[1]))
      assert.equal(2.5, list[2])
      assert.equal("userdata", type(list[3]))              -- null kept: it holds a place
      assert.equal("integer", math.type(list[4][1]))
      assert.same({ n = 5 }, list[4][2])
      assert.equal("integer", math.type(list[4][2].n))
      c:close()
    end)

    it("sends the infrastructure body when asked", function()
      local c = assert(client())
      local r, err = c:create_app_policy(INFRA, policy("ssh", {
        connection_rules = { ssh = { usernames = { "root" } } } }), { kind = "infrastructure" })
      assert.is_nil(err)
      assert.equal("ssh", r.name)
      local r2, err2 = c:create_app_policy(INFRA, policy("ssh2", {
        connection_rules = { ssh = { usernames = { "root" } } } }))
      assert.is_nil(r2)
      assert.equal("invalid", err2.kind)
      c:close()
    end)
  end)

  describe("zone application policies", function()
    it("create, list, get, update and delete under /zones", function()
      local c = assert(core.client{ zone_id = ZONE, api_token = TOKEN, base_url = m.base_url })
      local r, err = c:create_app_policy(ZAPP, policy("z"))
      assert.is_nil(err)
      assert.is_nil(r.session_duration)
      local bad, berr = c:create_app_policy(ZAPP, policy("z2", { session_duration = "1h" }))
      assert.is_nil(bad)
      assert.equal("invalid", berr.kind)
      assert.equal(1, #assert(c:list_app_policies(ZAPP)))
      assert.equal("z", assert(c:get_app_policy(ZAPP, r.id)).name)
      assert.equal("z3", assert(c:update_app_policy(ZAPP, r.id, policy("z3"))).name)
      assert.equal(r.id, assert(c:delete_app_policy(ZAPP, r.id)).id)
      for _, q in ipairs(m:log()) do
        assert.truthy(q.path:find("^/client/v4/zones/" .. ZONE .. "/access/apps/" .. ZAPP))
      end
      local rr, rerr = c:list_policies()
      assert.is_nil(rr)
      assert.equal("usage", rerr.kind)
      c:close()
    end)
  end)

  describe("reusable policies", function()
    it("create, list, get, update and delete", function()
      local c = assert(client())
      local r, err = c:create_policy(policy("shared"))
      assert.is_nil(err)
      assert.is_true(r.reusable)
      assert.equal(0, r.app_count)
      assert.equal("integer", math.type(r.app_count))
      local bad, berr = c:create_policy(policy("shared2", { precedence = 1 }))
      assert.is_nil(bad)
      assert.equal("invalid", berr.kind)
      assert.equal(1, #assert(c:list_policies()))
      assert.equal(1, #assert(c:list_policies({ page = 1, per_page = 10 })))
      assert.equal("shared", assert(c:get_policy(r.id)).name)
      assert.equal("shared!", assert(c:update_policy(r.id, policy("shared!"))).name)
      assert.equal(r.id, assert(c:delete_policy(r.id)).id)
      local statuses = {}
      for _, q in ipairs(m:log()) do
        assert.truthy(q.path:find("^/client/v4/accounts/" .. ACCT .. "/access/policies"))
        statuses[#statuses + 1] = q.status
      end
      -- the delete first GETs the policy (app_count: API.md section 6)
      assert.same({ 201, 200, 200, 200, 200, 200, 202 }, statuses)
      c:close()
    end)
  end)

  describe("lifecycle", function()
    it("close is idempotent and a closed client raises", function()
      local c = assert(client())
      assert.falsy(contains(tostring(c), TOKEN))
      c:close()
      c:close()
      assert.equal("cfaccess.client (closed)", tostring(c))
      assert.has_error(function() c:list_app_policies(APP) end, nil)
      local ok, msg = pcall(c.list_policies, c)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find("closed", 1, true))
    end)

    it("works as a to-be-closed variable", function()
      local keep
      do
        local c <close> = assert(client())
        keep = c
        assert(c:list_app_policies(APP))
      end
      assert.equal("cfaccess.client (closed)", tostring(keep))
    end)

    it("is collected without leaks when dropped", function()
      for _ = 1, 20 do
        local c = assert(client())
        assert(c:list_policies())
      end
      collectgarbage()
      collectgarbage()
      assert.equal(20, #m:log())
    end)
  end)
end)
