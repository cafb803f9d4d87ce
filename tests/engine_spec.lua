-- The request engine against the mock, issue 10 items 1, 3, 4 and parts
-- of 12: the no-duplicate create by cfaccess.same and the server's clock,
-- listings the server cuts or scrambles, wrong shapes, 2xx creates without
-- a body, and a raising on_progress (lockouts and deadlines, items 10 and
-- 11: engine_waits_spec.lua). Each case is the issue's reproduction, end
-- to end; no timing is asserted (requests are counted in the mock's log).
local mockctl = require("mockctl")

local TOKEN = "t0k3n-engine-spec-S3CRET"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

local function policy(name, extra)
  local p = { name = name, decision = "allow", include = { { email = { email = "alice@example.com" } } } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

-- A Cloudflare envelope around `result` (a JSON text), as a fault body.
local function env(result, info)
  return '{"success":true,"errors":[],"messages":[],"result":' .. result ..
         (info and (',"result_info":' .. info) or "") .. "}"
end

local function ids_of(list)
  local t = {}
  for _, p in ipairs(list) do t[#t + 1] = p.id end
  table.sort(t)
  return t
end

describe("engine", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)
  before_each(function() lines = {} end)

  local function client(opts) return m:client(ACCT, TOKEN, lines, opts) end

  describe("no-duplicate create (item 1)", function()
    it("(a) does not take an older policy that differs only in fields the request left out", function()
      local c = client()
      -- the older policy's created_at is after the create is sent (server
      -- clock ahead while it is made), so only `same` can tell them apart
      m:config{ clock_skew = 30 }
      local old = assert(c:create_app_policy(APP, policy("staff", {
        require = { { auth_method = { auth_method = "mfa" } } }, session_duration = "1h" })))
      m:config{ clock_skew = 0 }
      m:fault{ action = "status", status = 502, method = "POST" }   -- never committed
      local r, err = c:create_app_policy(APP, policy("staff"))
      assert.is_nil(err)
      assert.are_not.equal(old.id, r.id)
      assert.is_nil(next(r.require or {}))   -- no mfa rule
      assert.equal("24h", r.session_duration)
      assert.equal(2, #m:state())
      assert.equal(3, m:count("POST"))   -- the old one, the 502, the real one
      c:close()
    end)

    it("(b) after commit-then-fail returns the new policy, not an identical older one", function()
      local c = client()
      m:config{ clock_skew = -30 }      -- the first one was made 30 s "ago"
      local first = assert(c:create_app_policy(APP, policy("twin")))
      m:config{ clock_skew = 0 }
      m:fault{ action = "commit_then_fail", method = "POST" }
      local r, err = c:create_app_policy(APP, policy("twin"))
      assert.is_nil(err)
      assert.are_not.equal(first.id, r.id)
      assert.equal(2, #m:state())
      assert.equal(2, m:count("POST"))   -- no third create
      local other
      for _, p in ipairs(m:state()) do if p.id ~= first.id then other = p.id end end
      assert.equal(other, r.id)
      c:close()
    end)

    it("is a conflict with both ids when two same policies were made since it was sent", function()
      local c = client()
      -- the first one's created_at is after the second's send (server clock
      -- ahead while it is made): both pass the age guard, however slow the
      -- machine is between the two creates
      m:config{ clock_skew = 30 }
      local first = assert(c:create_app_policy(APP, policy("dup")))
      m:config{ clock_skew = 0 }
      m:fault{ action = "commit_then_fail", method = "POST" }
      local r, err = c:create_app_policy(APP, policy("dup"))
      assert.is_nil(r)
      assert.equal("conflict", err.kind)
      assert.equal(2, #err.ids)
      assert.same(ids_of(m:state()), (function() local t = { err.ids[1], err.ids[2] }; table.sort(t); return t end)())
      assert.truthy(err.ids[1] == first.id or err.ids[2] == first.id)
      assert.equal(2, m:count("POST"))
      c:close()
    end)

    it("covers Access groups by the same rule (same as kind group)", function()
      local c = client()
      m:fault{ action = "commit_then_fail", method = "POST" }
      local g, err = c:create_group{ name = "g1", include = { { everyone = {} } } }
      assert.is_nil(err)
      assert.equal("g1", g.name)
      assert.equal(1, m:count("POST"))
      c:close()
    end)

    it("does not create again when the listing to check is unreadable (item 4)", function()
      local c = client()
      m:fault{ { action = "commit_then_fail", method = "POST" },
               { action = "status", status = 200, method = "GET", body = env('{"id":"x"}') } }
      local r, err = c:create_app_policy(APP, policy("unchecked"))
      assert.is_nil(r)
      assert.truthy(err.message:find("may have been made", 1, true), err.message)
      assert.equal(1, m:count("POST"))
      assert.equal(1, #m:state())
      c:close()
    end)

    it("checks a 2xx create with no body (204) instead of calling it decode (item 12)", function()
      local c = client()
      m:fault{ action = "status", status = 204, body = "", process = true, method = "POST" }
      local r, err = c:create_app_policy(APP, policy("nobody"))
      assert.is_nil(err)
      assert.equal("nobody", r.name)
      assert.equal(m:state()[1].id, r.id)
      assert.equal(1, m:count("POST"))
      c:close()
    end)

    it("checks an empty 201 and creates again when nothing was made (item 12)", function()
      local c = client()
      m:fault{ action = "status", status = 201, body = "", method = "POST" }
      local r, err = c:create_app_policy(APP, policy("empty201"))
      assert.is_nil(err)
      assert.equal("empty201", r.name)
      assert.equal(1, #m:state())
      assert.equal(2, m:count("POST"))
      c:close()
    end)
  end)

  describe("listings (items 3, 4, 12)", function()
    local function fill(c, n)
      local ops = {}
      for i = 1, n do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("p" .. i) } end
      local res = assert(c:batch(ops, { concurrency = 8 }))
      for i = 1, n do assert.is_true(res[i].ok) end
    end

    it("follows the server's per_page when it caps the one asked for", function()
      local c = client()
      fill(c, 120)
      m:config{ per_page_cap = 50 }
      local r, err = c:list_app_policies(APP, { per_page = 100 })
      assert.is_nil(err)
      assert.equal(120, #r)
      assert.equal(3, m:count("GET"))
      c:close()
    end)

    it("stops when a page brings no new id (pages that alternate)", function()
      local c = client()
      local a = env('[{"id":"a"}]', '{"page":1,"per_page":1,"total_pages":1000000}')
      local b = env('[{"id":"b"}]', '{"page":2,"per_page":1,"total_pages":1000000}')
      local f = {}
      for i = 1, 8 do f[i] = { action = "status", status = 200, method = "GET", body = i % 2 == 1 and a or b } end
      m:fault(f)
      local r, err = c:list_app_policies(APP)
      assert.is_nil(err)
      assert.same({ "a", "b" }, ids_of(r))
      assert.equal(3, m:count("GET"))
      c:close()
    end)

    it("reads a listing whose result is an object as decode", function()
      local c = client()
      m:fault{ action = "status", status = 200, method = "GET", body = env('{"id":"x","name":"n"}') }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
      c:close()
    end)

    it("reads list items that are not objects as decode", function()
      local c = client()
      m:fault{ action = "status", status = 200, method = "GET", body = env('[1,"x",null]') }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
      assert.truthy(err.message:find("result[1]", 1, true), err.message)
      c:close()
    end)

    it("reads an array given for a single object as decode", function()
      local c = client()
      local p = assert(c:create_app_policy(APP, policy("one")))
      m:fault{ action = "status", status = 200, method = "GET", body = env('[{"id":"' .. p.id .. '"}]') }
      local r, err = c:get_app_policy(APP, p.id)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
      c:close()
    end)
  end)

  describe("a raising on_progress (item 12)", function()
    it("starts no new op, and the results table says what was done and what was in flight", function()
      local c = client()
      local ops = {}
      for i = 1, 10 do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("r" .. i) } end
      local results = {}
      local ok, msg = pcall(c.batch, c, ops, { concurrency = 2, results = results,
        on_progress = function(done) if done == 3 then error("stop here") end end })
      assert.is_false(ok)
      assert.truthy(tostring(msg):find("stop here", 1, true))
      local done, pending, none = 0, 0, 0
      for i = 1, 10 do
        if results[i] == nil then none = none + 1
        elseif results[i].pending then pending = pending + 1
        else
          assert.is_true(results[i].ok)
          done = done + 1
        end
      end
      assert.equal(3, done)
      assert.truthy(pending <= 1, "pending " .. pending)
      assert.equal(10 - done - pending, none)
      -- every create reported done is on the server; none not started was sent
      assert.truthy(#m:state() >= done and #m:state() <= done + pending)
      assert.truthy(m:count("POST") <= done + pending)
      c:close()
    end)
  end)

  describe("validation warnings (issue 14 item 1)", function()
    local warned = { name = "w", decision = "allow", include = { { everyone = {} } },
                     require = { { auth_method = { auth_method = "MFA" } } } }

    it("a method returns them third and logs one warn line each", function()
      local c = client()
      local r, err, warnings = c:create_app_policy(APP, warned)
      assert.is_nil(err)
      assert.equal("w", r.name)
      assert.equal("require[1].auth_method.auth_method", warnings[1].path)
      local logged = table.concat(lines, "\n")
      assert.truthy(logged:find("validation warning at require[1].auth_method.auth_method", 1, true), logged)
      c:close()
    end)

    it("a batch puts them on results[i].warnings and logs them, never failing for them", function()
      local c = client()
      local res = assert(c:batch({
        { op = "create_app_policy", app_id = APP, policy = warned },
        { op = "create_app_policy", app_id = APP, policy = policy("clean") },
      }))
      assert.is_true(res[1].ok)
      assert.equal("require[1].auth_method.auth_method", res[1].warnings[1].path)
      assert.is_true(res[2].ok)
      assert.is_nil(res[2].warnings)
      local logged = table.concat(lines, "\n")
      assert.truthy(logged:find("(ops[1]): validation warning", 1, true), logged)
      c:close()
    end)

    it("strict = true on a method makes them errors, nothing sent", function()
      local c = client()
      local r, err = c:create_app_policy(APP, warned, { strict = true })
      assert.is_nil(r)
      assert.equal("invalid", err.kind)
      assert.equal(0, m:count("POST"))
      c:close()
    end)
  end)
end)
