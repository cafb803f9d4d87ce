-- The request engine's waits against the mock, issue 10 items 10 and 11:
-- lockouts (no create lost, the pause shared by the whole client, waits
-- reported) and the deadline over a whole call. Split from engine_spec so
-- the two files' waits run side by side; no timing is asserted (requests
-- are counted in the mock's log).
local core = require("cfaccess.core")
local mockctl = require("mockctl")

local TOKEN = "t0k3n-engine-waits-spec-S3CRET"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

local function policy(name)
  return { name = name, decision = "allow", include = { { email = { email = "alice@example.com" } } } }
end

describe("engine", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)
  before_each(function() lines = {} end)

  local function client(opts) return m:client(ACCT, TOKEN, lines, opts) end

  describe("lockouts (item 10)", function()
    local function creates(n, prefix)
      local ops = {}
      for i = 1, n do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy(prefix .. i) } end
      return ops
    end

    it("loses no create of a batch under a lockout (10 per 2 s, 30 creates, concurrency 8)", function()
      -- the default pacing: 1200 per 300 s and the Ratelimit header
      local c2 = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
        on_log = function(l, msg) lines[#lines + 1] = l .. " " .. msg end })
      m:lockout(10, 2)
      local waits = {}
      local res = assert(c2:batch(creates(30, "b"), { concurrency = 8,
        on_progress = function(_, _, info) if info then waits[#waits + 1] = info end end }))
      for i = 1, 30 do assert.is_true(res[i].ok, "op " .. i .. ": " .. tostring(res[i].err)) end
      assert.equal(30, #m:state())
      assert.truthy(#waits > 0, "on_progress heard no wait")
      assert.equal("rate limit", waits[1].reason)
      assert.truthy(waits[1].waiting > 0)
      assert.truthy(table.concat(lines, "\n"):find("pacing: waiting", 1, true))
      c2:close()
    end)

    it("loses no sequential create under a lockout", function()
      local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url })
      m:lockout(10, 2)
      for i = 1, 30 do
        local r, err = c:create_app_policy(APP, policy("s" .. i))
        assert.is_nil(err)
        assert.equal("s" .. i, r.name)
      end
      assert.equal(30, #m:state())
      c:close()
    end)

    it("after giving up, pauses the batch and fails later calls at once with retry_after", function()
      local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                    rate_limit = false, max_retry_wait = 5 })
      m:fault{ action = "rate_limit", retry_after = 60, method = "POST" }
      local res = assert(c:batch(creates(6, "g"), { concurrency = 1 }))
      assert.is_false(res[1].ok)
      assert.equal(60, res[1].err.retry_after)
      for i = 2, 6 do
        assert.is_false(res[i].ok)
        assert.truthy(res[i].err.retry_after > 5, "op " .. i)
      end
      assert.equal(1, m:count("POST"))            -- none sent into the lockout
      local r, err = c:list_app_policies(APP)   -- the next call: at once
      assert.is_nil(r)
      assert.truthy(err.retry_after > 5)
      assert.equal(1, m:count())
      c:close()
    end)

    it("waits up to max_retry_wait, 300 s by default (a 200 s Retry-After is waited for)", function()
      -- a deadline of 1 s ends the wait: kind timeout; with the old 60 s
      -- default the client gave up at once (kind api) and fired the next
      -- call into the lockout
      local c = client{ deadline = 1 }
      m:fault{ action = "rate_limit", retry_after = 200, method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      m:clear_faults()
      c:close()
      c = client()
      m:fault{ action = "rate_limit", retry_after = 400, method = "GET" }
      r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal(400, err.retry_after)
      assert.truthy(table.concat(lines, "\n"):find("max_retry_wait (300.0 s)", 1, true), table.concat(lines, "\n"))
      c:close()
    end)

    it("tells on_progress when it waits to retry", function()
      local c = client()
      m:fault{ action = "status", status = 500, method = "GET" }
      local waits = {}
      local res = assert(c:batch({ { op = "list_app_policies", app_id = APP } }, {
        on_progress = function(_, _, info) if info then waits[#waits + 1] = info end end }))
      assert.is_true(res[1].ok)
      assert.equal("retry", waits[1].reason)
      c:close()
    end)
  end)

  describe("deadline (item 11)", function()
    it("bounds a call against a slow server: timeout, the deadline named", function()
      local c = client{ deadline = 1, timeout = 30 }
      m:fault{ action = "delay", seconds = 3, method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.truthy(err.message:find("deadline", 1, true), err.message)
      c:close()
    end)

    it("does not sleep through a Retry-After that ends past the deadline", function()
      local c = client{ deadline = 1 }
      m:fault{ action = "rate_limit", retry_after = 5, method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.equal(1, m:count("GET"))
      c:close()
    end)

    it("bounds a create and its check, saying it may have been made", function()
      local c = client{ deadline = 1, timeout = 30 }
      m:fault{ action = "delay", seconds = 2, method = "POST" }
      local r, err = c:create_app_policy(APP, policy("late"))
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.truthy(err.message:find("may have been made", 1, true), err.message)
      assert.equal(1, m:count("POST"))
      c:close()
    end)

    it("is a client option checked like the others", function()
      local c, err = core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url, deadline = 0 }
      assert.is_nil(c)
      assert.equal("usage", err.kind)
      assert.truthy(err.message:find("deadline", 1, true), err.message)
    end)
  end)
end)
