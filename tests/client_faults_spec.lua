-- cfaccess client under failure: every mock fault maps to the documented
-- err.kind and fields, retries and their limits, pacing, pagination that
-- cannot loop, the no-duplicate create, and secrets kept out of every
-- message. Timing is never asserted; attempts are counted in the mock log.
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local socket = require("socket")
local tu = require("testutil")

local TOKEN = tu.token("faults")
local ACCT, APP = tu.ACCOUNT, tu.APP

-- testutil's named policy plus an IP rule: the no-duplicate match must
-- see the server's /32 form of it as the same policy.
local function policy(name, extra)
  local p = tu.named_policy(name, extra)
  if not (extra and extra.include) then
    p.include = { p.include[1], { ip = { ip = "198.51.100.7" } } }
  end
  return p
end

-- Headers for a failing answer that say "retry at once": for the tests
-- about what is retried and how often, not about how long the client backs
-- off between tries (a reset and a refused connection, which carry no
-- headers, still go through the jittered backoff).
local AT_ONCE = { ["retry-after-ms"] = "1" }

describe("cfaccess client faults", function()
  local m, lines, errors
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  before_each(function()
    lines = {}
  end)

  -- Every client logs into `lines`; every err seen goes through `seen`.
  local function client(opts) return m:client(ACCT, TOKEN, lines, opts) end

  -- A loopback URL where nothing listens (a port just freed).
  local function dead_url()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return "http://127.0.0.1:" .. port .. "/client/v4"
  end

  local function policies()
    return #m:state()
  end

  describe("statuses", function()
    it("retries 5xx up to max_retries and reports the last answer", function()
      local c = client()
      m:fault{ action = "status", status = 503, method = "GET", times = 5, headers = AT_ONCE }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(503, err.status)
      assert.equal(3, err.attempts)
      assert.equal("integer", math.type(err.errors[1].code))
      assert.truthy(err.ray_id:match("^%x+%-SJC$"))
      assert.equal(3, m:count("GET"))
      c:close()
    end)

    it("keeps a cf-ray only when it looks like one (an echoed credential is dropped)", function()
      local c = client{ max_retries = 0 }
      m:fault{ action = "status", status = 500, method = "GET", headers = { ["cf-ray"] = "Bearer " .. TOKEN } }
      local _, err = c:list_app_policies(APP)
      assert.equal(500, err.status)
      assert.is_nil(err.ray_id)
      -- the bare token has a ray id's characters: it is redacted
      for _, ray in ipairs{ TOKEN, "8c2f3a9b1d4e5f60-" .. TOKEN } do
        m:fault{ action = "status", status = 500, method = "GET", headers = { ["cf-ray"] = ray } }
        _, err = c:list_app_policies(APP)
        assert.equal(ray:gsub(TOKEN:gsub("%-", "%%-"), "[redacted]"), err.ray_id)
      end
      -- a value too long to keep whole is dropped, not cut (a cut credential
      -- could no longer be recognised)
      for _, ray in ipairs{ string.rep("a", 64), string.rep("a", 200) } do
        m:fault{ action = "status", status = 500, method = "GET", headers = { ["cf-ray"] = ray } }
        _, err = c:list_app_policies(APP)
        assert.equal(500, err.status)
        assert.is_nil(err.ray_id, ray)
      end
      m:fault{ action = "status", status = 500, method = "GET", headers = { ["cf-ray"] = string.rep("a", 63) } }
      _, err = c:list_app_policies(APP)
      assert.equal(string.rep("a", 63), err.ray_id)
      m:fault{ action = "status", status = 500, method = "GET", headers = { ["cf-ray"] = "8c2f3a9b1d4e5f60-LHR" } }
      _, err = c:list_app_policies(APP)
      assert.equal("8c2f3a9b1d4e5f60-LHR", err.ray_id)
      c:close()
    end)

    it("succeeds after a transient 500 and 408", function()
      local c = client()
      m:fault{ { action = "status", status = 500, method = "GET", headers = AT_ONCE },
               { action = "status", status = 408, method = "GET", headers = AT_ONCE } }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(err)
      assert.same({}, r)
      assert.equal(3, m:count("GET"))
      c:close()
    end)

    it("does not retry a 4xx", function()
      local c = client()
      m:fault{ action = "status", status = 409, method = "GET",
               errors = { { code = 12345, message = "conflict" } } }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(409, err.status)
      assert.equal(12345, err.errors[1].code)
      assert.equal("conflict", err.errors[1].message)
      assert.equal(1, err.attempts)
      assert.equal(1, m:count())
      c:close()
    end)

    it("obeys x-should-retry", function()
      local c = client()
      m:fault{ action = "status", status = 500, method = "GET",
               headers = { ["x-should-retry"] = "false" } }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal(1, err.attempts)
      m:reset()
      m:app("accounts", ACCT, APP)
      m:fault{ action = "status", status = 409, method = "GET",
               headers = { ["x-should-retry"] = "true" } }
      r, err = c:list_app_policies(APP)
      assert.is_nil(err)
      assert.same({}, r)
      assert.equal(2, m:count("GET"))
      c:close()
    end)

    it("honours retry-after-ms / Retry-After on 429", function()
      local c = client()
      m:fault{ action = "rate_limit", retry_after = 1, retry_after_ms = 20, method = "GET", times = 2 }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(err)
      assert.same({}, r)
      assert.equal(3, m:count("GET"))
      c:close()
    end)

    it("fails at once when Retry-After exceeds max_retry_wait", function()
      local c = client{ max_retry_wait = 5 }
      m:fault{ action = "rate_limit", retry_after = 120, method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(429, err.status)
      assert.equal(120, err.retry_after)
      assert.equal(1, err.attempts)
      assert.equal(10000, err.errors[1].code)
      assert.equal(1, m:count())
      c:close()
    end)

    it("turns success=false on a 2xx into an api error", function()
      local c = client()
      m:fault{ action = "success_false", method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(200, err.status)
      assert.equal(10001, err.errors[1].code)
      assert.equal(1, err.attempts)
      c:close()
    end)

    it("reports a non-JSON 502 page as api with the status", function()
      local c = client{ max_retries = 0 }
      m:fault{ action = "html", method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(502, err.status)
      assert.is_nil(err.errors)
      assert.truthy(err.message:find("502", 1, true))
      c:close()
    end)
  end)

  describe("bodies", function()
    it("reports garbage and truncated JSON as decode errors", function()
      local c = client()
      for _, action in ipairs{ "garbage", "truncated" } do
        m:fault{ action = action, method = "GET" }
        local r, err = c:list_app_policies(APP)
        assert.is_nil(r, action)
        assert.equal("decode", err.kind, action)
        assert.equal(200, err.status, action)
        assert.equal(1, err.attempts, action)
      end
      c:close()
    end)

    it("reports a body lua-cjson takes for UTF-16 (a NUL in its first bytes) as decode, not a raised error", function()
      local c = client()
      m:fault{ action = "garbage", body = "\0{\0}", method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
      assert.equal(200, err.status)
      c:close()
    end)

    it("reports a success without a result object as decode", function()
      local c = client()
      m:fault{ action = "status", status = 200, method = "GET",
               body = '{"success":true,"errors":[],"messages":[],"result":null}' }
      local r, err = c:get_app_policy(APP, APP)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
      assert.equal(200, err.status)
      c:close()
    end)

    it("caps the response size", function()
      local c = client{ max_response_bytes = 64 * 1024 }
      m:fault{ action = "oversize", bytes = 2 * 1024 * 1024, method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("decode", err.kind)
      assert.truthy(err.message:find("max_response_bytes (65536)", 1, true), err.message)
      -- the client still works afterwards
      assert.same({}, assert(c:list_app_policies(APP)))
      c:close()
    end)
  end)

  describe("transport", function()
    it("retries a connection reset and succeeds", function()
      local c = client()
      m:fault{ action = "reset_before", method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(err)
      assert.same({}, r)
      c:close()
    end)

    it("reports a reset as network when retries are exhausted", function()
      local c = client{ max_retries = 0 }
      m:fault{ action = "reset_before", method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("network", err.kind)
      assert.equal(1, err.attempts)
      m:fault{ action = "reset_after_headers", method = "GET" }
      r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("network", err.kind)
      c:close()
    end)

    it("times out", function()
      local c = client{ timeout = 0.5, max_retries = 0 }
      m:fault{ action = "delay", seconds = 1.5, method = "GET" }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("timeout", err.kind)
      assert.equal(1, err.attempts)
      c:close()
    end)

    it("reports a refused connection as network", function()
      local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, max_retries = 1,
                                    base_url = dead_url(), rate_limit = false })
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("network", err.kind)
      assert.equal(2, err.attempts)
      c:close()
    end)
  end)

  describe("no duplicate create", function()
    it("returns the committed policy after a 500", function()
      local c = client()
      m:fault{ action = "commit_then_fail", method = "POST", headers = AT_ONCE }
      local r, err = c:create_app_policy(APP, policy("once"))
      assert.is_nil(err)
      assert.equal("once", r.name)
      assert.equal(1, policies())
      assert.equal(1, m:count("POST"))
      assert.equal(m:state()[1].id, r.id)
      c:close()
    end)

    it("returns the committed policy after a reset", function()
      local c = client()
      m:fault{ action = "commit_then_fail", ["then"] = "reset", method = "POST" }
      local r, err = c:create_app_policy(APP, policy("once", { precedence = 4 }))
      assert.is_nil(err)
      assert.equal("once", r.name)
      assert.equal(1, policies())
      assert.equal(1, m:count("POST"))
      c:close()
    end)

    it("never lets libcurl re-send a create on a dead keep-alive connection", function()
      local c = client()
      assert(c:list_app_policies(APP))          -- opens the connection
      m:fault{ action = "commit_then_fail", ["then"] = "reset", method = "POST" }
      local r, err = c:create_app_policy(APP, policy("reused"))
      assert.is_nil(err)
      assert.equal("reused", r.name)
      assert.equal(1, policies())
      local log = m:log()
      assert.equal(1, m:count("POST"))
      assert.equal(log[1].connection, log[2].connection)   -- the POST went on the reused one
      local logged = table.concat(lines, "\n")
      assert.truthy(logged:find("listing", 1, true), logged)
      c:close()
    end)

    it("matches with server-filled defaults and a /32 address", function()
      local c = client()
      m:fault{ action = "commit_then_fail", method = "POST", headers = AT_ONCE }
      local r = assert(c:create_app_policy(APP, policy("defaults", {
        approval_required = false, session_duration = "24h" })))
      assert.equal("198.51.100.7/32", r.include[2].ip.ip)
      assert.equal(1, policies())
      c:close()
    end)

    it("re-sends a create that did not happen, once", function()
      local c = client()
      m:fault{ action = "status", status = 502, method = "POST", headers = AT_ONCE }
      local r, err = c:create_app_policy(APP, policy("retried"))
      assert.is_nil(err)
      assert.equal("retried", r.name)
      assert.equal(1, policies())
      assert.equal(2, m:count("POST"))
      c:close()
    end)

    it("does not take a different policy with the same name for its own", function()
      local c = client()
      assert(c:create_app_policy(APP, policy("same", { decision = "deny" })))
      m:fault{ action = "status", status = 500, method = "POST", headers = AT_ONCE }
      local r, err = c:create_app_policy(APP, policy("same"))
      assert.is_nil(err)
      assert.equal("allow", r.decision)
      assert.equal(2, policies())
      c:close()
    end)

    it("reports the failure when no retries remain and nothing was created", function()
      local c = client{ max_retries = 0 }
      m:fault{ action = "status", status = 500, method = "POST", headers = AT_ONCE }
      local r, err = c:create_app_policy(APP, policy("never"))
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(500, err.status)
      assert.equal(1, err.attempts)
      assert.equal(0, policies())
      c:close()
    end)

    it("does not re-send when it cannot check what the failed create did", function()
      local c = client()
      m:fault{ { action = "commit_then_fail", method = "POST", headers = AT_ONCE },
               { action = "status", status = 400, method = "GET" } }
      local r, err = c:create_app_policy(APP, policy("unchecked"))
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(500, err.status)
      assert.equal(1, m:count("POST"))
      assert.equal(1, policies())
      c:close()
    end)

    it("ends with one policy after a create times out", function()
      local c = client{ timeout = 0.5, max_retries = 3 }
      m:fault{ action = "delay", seconds = 0.8, method = "POST" }
      local r, err = c:create_app_policy(APP, policy("slow", { precedence = 5 }))
      assert.is_nil(err)
      assert.equal("slow", r.name)
      assert.equal(5, r.precedence)
      -- let the delayed request finish: it has once the mock has answered
      -- every POST (a bounded poll, not a fixed sleep)
      local pending
      for _ = 1, 200 do
        pending = 0
        for _, q in ipairs(m:log()) do
          if q.method == "POST" and type(q.status) ~= "number" then pending = pending + 1 end
        end
        if pending == 0 then break end
        socket.sleep(0.05)
      end
      assert.equal(0, pending, "a POST still unanswered after 10 s")
      assert.equal(1, policies())
      c:close()
    end)

    it("covers reusable policies too", function()
      local c = client()
      m:fault{ action = "commit_then_fail", ["then"] = "reset", method = "POST" }
      local r, err = c:create_policy(policy("shared"))
      assert.is_nil(err)
      assert.is_true(r.reusable)
      assert.equal(1, policies())
      c:close()
    end)
  end)

  describe("pagination", function()
    it("stops on a server that repeats the same page", function()
      local c = client()
      for i = 1, 3 do assert(c:create_app_policy(APP, policy("p" .. i))) end
      m:fault{ action = "repeat_page", method = "GET", times = 1000 }
      local r, err = c:list_app_policies(APP, { per_page = 3 })
      assert.is_nil(err)
      assert.equal(3, #r)
      assert.truthy(m:count("GET") <= 2)
      c:close()
    end)
  end)

  describe("pacing", function()
    it("waits when the window is full", function()
      local c = client{ rate_limit = { requests = 2, per = 0.3 } }
      for _ = 1, 3 do assert(c:list_app_policies(APP)) end
      local logged = table.concat(lines, "\n")
      assert.truthy(logged:find("pacing", 1, true), logged)
      c:close()
    end)

    it("obeys a Ratelimit header added to a normal answer", function()
      -- the header's 1 s wait is slept through (within max_retry_wait)
      local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                    on_log = function(l, msg) lines[#lines + 1] = l .. " " .. msg end })
      m:fault{ action = "headers", method = "GET", headers = { Ratelimit = '"default";r=0;t=1' } }
      assert.same({}, assert(c:list_app_policies(APP)))
      assert.falsy(table.concat(lines, "\n"):find("pacing", 1, true))
      assert.same({}, assert(c:list_app_policies(APP)))
      local logged = table.concat(lines, "\n")
      assert.truthy(logged:find("pacing", 1, true), logged)
      c:close()
    end)

    it("does not pace with rate_limit = false", function()
      local c = client{ rate_limit = false }
      for _ = 1, 5 do assert(c:list_app_policies(APP)) end
      assert.falsy(table.concat(lines, "\n"):find("pacing", 1, true))
      c:close()
    end)

    it("fails at once with retry_after when the Ratelimit header's wait exceeds max_retry_wait", function()
      -- issue 10 item 12: r=0;t=100000 used to stretch every call to
      -- max_retry_wait with no error
      local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                    max_retry_wait = 5,
                                    on_log = function(l, msg) lines[#lines + 1] = l .. " " .. msg end })
      m:fault{ action = "headers", method = "GET", headers = { Ratelimit = '"default";r=0;t=100000' } }
      assert(c:list_app_policies(APP))
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("api", err.kind)
      assert.equal(100000, err.retry_after)
      assert.truthy(err.message:find("max_retry_wait", 1, true), err.message)
      assert.equal(1, m:count("GET"))           -- the second was never sent
      c:close()
    end)
  end)

  describe("re-entrancy", function()
    it("stops a request whose client on_log closes", function()
      local c
      c = client{ on_log = function() c:close() end }
      m:fault{ action = "status", status = 500, method = "GET", times = 3, headers = AT_ONCE }
      local r, err = c:list_app_policies(APP)
      assert.is_nil(r)
      assert.equal("usage", err.kind)
      assert.truthy(err.message:find("closed", 1, true))
      assert.equal(1, m:count("GET"))
      assert.equal("cfaccess.client (closed)", tostring(c))
      assert.has_error(function() c:list_app_policies(APP) end)
      c:close()
    end)

    it("allows calls on the same client from on_log", function()
      local c, nested
      c = client{ on_log = function()
        if not nested then nested = assert(c:create_policy(policy("from-log"))) end
      end }
      m:fault{ action = "status", status = 500, method = "POST", path = "apps", headers = AT_ONCE }
      local r, err = c:create_app_policy(APP, policy("outer"))
      assert.is_nil(err)
      assert.equal("outer", r.name)
      assert.equal("from-log", nested.name)
      assert.equal(2, policies())
      c:close()
    end)
  end)

  describe("secrets", function()
    it("never appear in errors, log lines or tostring", function()
      errors = {}
      local c = client()
      local function try(ok, err)
        if not ok then errors[#errors + 1] = tostring(err) .. " " .. tostring(err.message) end
      end
      m:fault{ action = "status", status = 500, method = "GET", headers = AT_ONCE }
      try(c:list_app_policies(APP))
      m:fault{ action = "commit_then_fail", ["then"] = "reset", method = "POST" }
      try(c:create_app_policy(APP, policy("s")))
      m:fault{ action = "rate_limit", retry_after = 500, method = "GET" }
      try(c:list_app_policies(APP))
      m:fault{ action = "garbage", method = "GET" }
      try(c:list_app_policies(APP))
      try(c:get_app_policy(APP, "bad"))
      local bad = client{ api_token = TOKEN .. "x" }
      try(bad:list_policies())
      local dead = client{ base_url = dead_url(), max_retries = 0 }
      try(dead:list_policies())
      local _, uerr = core.client{ account_id = ACCT, api_token = TOKEN, api_key = TOKEN,
                                   api_email = "a@example.com" }
      try(nil, uerr)
      local all = table.concat(errors, "\n") .. table.concat(lines, "\n") ..
                  tostring(c) .. tostring(bad) .. tostring(dead)
      assert.truthy(#errors >= 6)
      assert.truthy(#lines >= 2)
      assert.falsy(all:find(TOKEN, 1, true))
      for _, q in ipairs(m:log()) do
        assert.falsy(q.headers.authorization:find(TOKEN, 1, true))
      end
      c:close(); bad:close(); dead:close()
    end)

    -- A server or proxy that echoes the request back into its error text.
    local function echoing(secret, status)
      local cjson = require("cjson")
      return { action = "status", status = status, method = "GET", headers = AT_ONCE, body = cjson.encode{
        success = false, result = cjson.null,
        errors = { { code = 10000, message = "bad credential " .. secret .. " (" .. secret .. ")",
                     documentation_url = "https://example.com/?k=" .. secret,
                     source = { pointer = "/" .. secret } } },
        messages = { { code = 1, message = secret, ["k-" .. secret] = true } } } }
    end

    local function all_strings(v, out)
      out = out or {}
      if type(v) == "string" then out[#out + 1] = v
      elseif type(v) == "table" then for k, x in pairs(v) do all_strings(k, out); all_strings(x, out) end end
      return out
    end

    it("are redacted from error text a server echoes back", function()
      local KEY = "k3y-faults-spec-S3CRET"
      local cases = {
        { client(), TOKEN, 403 },
        { client(), TOKEN, 200 },                                     -- success=false on a 200
        { assert(core.client{ account_id = ACCT, api_key = KEY, api_email = "ops@example.com",
                              base_url = m.base_url, rate_limit = false, max_retries = 1,
                              on_log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end }),
          KEY, 403 },
      }
      for _, case in ipairs(cases) do
        local c, secret, status = case[1], case[2], case[3]
        lines = {}
        m:fault(echoing(secret, status))
        m:fault(echoing(secret, 500))
        local r, err = c:list_app_policies(APP)
        assert.is_nil(r)
        assert.equal("api", err.kind)
        local text = table.concat(all_strings(err), "\n") .. tostring(err) .. table.concat(lines, "\n")
        assert.falsy(text:find(secret, 1, true))
        assert.equal("bad credential [redacted] ([redacted])", err.errors[1].message)
        assert.equal("https://example.com/?k=[redacted]", err.errors[1].documentation_url)
        assert.equal("/[redacted]", err.errors[1].source.pointer)
        assert.equal("[redacted]", err.messages[1].message)
        assert.is_true(err.messages[1]["k-[redacted]"])
        assert.truthy(tostring(err):find("bad credential [redacted]", 1, true))
        c:close()
      end
    end)
  end)
end)
