-- The mock Cloudflare API (tests/mock/cfmock.py) through LuaSocket, not
-- through cfaccess: the client's tests rely on everything checked here.
local socket = require("socket")
local cjson = require("cjson").new()
local mockctl = require("mockctl")

local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local ZONE = "0da42c8d2132a9ddaf714f9e7c920711"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local ZAPP = "7d1b4d0e2f5c4e3a9b8c6d5e4f3a2b1c"       -- 32-hex app id form
local TOKEN = "t0k3n-Secret-123"
local API_KEY = "k3y-Secret-456"
local EMAIL = "ops@example.com"
local UUID_PAT = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local TIME_PAT = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$"

local APP_PATH = "/client/v4/accounts/" .. ACCT .. "/access/apps/" .. APP .. "/policies"
local ZONE_PATH = "/client/v4/zones/" .. ZONE .. "/access/apps/" .. ZAPP .. "/policies"
local REUSE_PATH = "/client/v4/accounts/" .. ACCT .. "/access/policies"

local m

-- ---- a tiny HTTP/1.1 client over a raw LuaSocket TCP connection --------
-- Raw, so a test controls connection reuse and sees resets and partial
-- bodies exactly as they happen. Every read has a 5 s timeout.
local function connect(port)
  local c = assert(socket.connect("127.0.0.1", port or m.port))
  c:settimeout(5)
  return c
end

local function send(c, method, path, opts)
  opts = opts or {}
  local body = opts.body
  if type(body) == "table" then body = cjson.encode(body) end
  body = body or ""
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  local headers = opts.headers or { Authorization = "Bearer " .. TOKEN }
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  if body ~= "" or method == "POST" or method == "PUT" then
    lines[#lines + 1] = "Content-Type: application/json"
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
end

-- Read one response. Returns resp {status, headers (lower-case names),
-- body, json}, or nil, err, partial (whatever arrived: status, headers, body).
local function read_response(c)
  local partial = { headers = {}, body = "" }
  local line, err = c:receive("*l")
  if not line then return nil, err, partial end
  partial.status = tonumber(line:match("^HTTP/1%.1 (%d%d%d)"))
  while true do
    local h, herr = c:receive("*l")
    if not h then return nil, herr, partial end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    partial.headers[k:lower()] = v
  end
  local n = tonumber(partial.headers["content-length"] or "0")
  local body, berr, part = c:receive(n)
  if not body then partial.body = part or ""; return nil, berr, partial end
  partial.body = body
  local ok, decoded = pcall(cjson.decode, body)
  partial.json = ok and decoded or nil
  return partial
end

-- One request on a fresh connection.
local function request(method, path, opts)
  local c = connect()
  send(c, method, path, opts)
  local resp, err, partial = read_response(c)
  c:close()
  return resp, err, partial
end

local policy = require("testutil").named_policy

local function create(path, p)
  local r = assert(request("POST", path, { body = p }))
  assert.are.equal(201, r.status, r.body)
  return r.json.result
end

local function codes(resp)
  local out = {}
  for i, e in ipairs(resp.json.errors) do out[i] = math.tointeger(e.code) end
  return out
end

describe("cfmock", function()
  local hooks = mockctl.block_hooks({ token = TOKEN, api_key = API_KEY, email = EMAIL },
    { { "accounts", ACCT, APP }, { "zones", ZONE, ZAPP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  describe("startup", function()
    it("reports its port, pid and base URL", function()
      assert.is_true(m.port > 0)
      assert.are.equal("http://127.0.0.1:" .. m.port .. "/client/v4", m.base_url)
      assert.is_truthy(io.open("/proc/" .. m.pid .. "/stat"))
    end)

    it("refuses to bind anything but 127.0.0.1", function()
      -- `timeout`: a mock that wrongly started would otherwise run forever
      local cmd = "env -u LD_PRELOAD timeout 10 python3 " .. mockctl.shell_quote(mockctl.script())
        .. " --host 0.0.0.0 --port 0 >/dev/null 2>&1"
      local ok, how, code = os.execute(cmd)
      assert.is_falsy(ok)
      assert.are.equal("exit", how)
      assert.are.equal(2, code)
    end)
  end)

  describe("envelopes and statuses", function()
    local scopes = {
      { name = "account app", path = APP_PATH },
      { name = "zone app", path = ZONE_PATH },
      { name = "reusable", path = REUSE_PATH },
    }
    for _, s in ipairs(scopes) do
      it("runs create 201, get/list/update 200, delete 202 for " .. s.name, function()
        local r = assert(request("POST", s.path, { body = policy("p1") }))
        assert.are.equal(201, r.status)
        assert.are.equal("application/json", r.headers["content-type"])
        assert.is_true(r.json.success)
        assert.are.same({}, r.json.errors)
        assert.are.same({}, r.json.messages)
        local pol = r.json.result
        assert.matches(UUID_PAT, pol.id)
        assert.matches(TIME_PAT, pol.created_at)
        assert.matches(TIME_PAT, pol.updated_at)
        assert.are.equal("p1", pol.name)

        r = assert(request("GET", s.path .. "/" .. pol.id))
        assert.are.equal(200, r.status)
        assert.are.same(pol, r.json.result)

        r = assert(request("GET", s.path))
        assert.are.equal(200, r.status)
        assert.are.equal(1, #r.json.result)
        assert.are.equal(pol.id, r.json.result[1].id)
        assert.are.equal(1, r.json.result_info.total_count)
        assert.are.equal(1, r.json.result_info.total_pages)

        local upd = policy("p1-renamed", { decision = "deny" })
        r = assert(request("PUT", s.path .. "/" .. pol.id, { body = upd }))
        assert.are.equal(200, r.status)
        assert.are.equal("p1-renamed", r.json.result.name)
        assert.are.equal("deny", r.json.result.decision)
        assert.are.equal(pol.created_at, r.json.result.created_at)
        assert.are.equal(pol.id, r.json.result.id)

        r = assert(request("DELETE", s.path .. "/" .. pol.id))
        assert.are.equal(202, r.status)
        assert.are.same({ id = pol.id }, r.json.result)

        r = assert(request("GET", s.path .. "/" .. pol.id))
        assert.are.equal(404, r.status)
        assert.is_false(r.json.success)
        assert.are.equal(cjson.null, r.json.result)
        assert.are.same({ 12002 }, codes(r))
      end)
    end

    it("answers an unknown route with 404 and code 7003", function()
      local r = assert(request("GET", "/client/v4/accounts/" .. ACCT .. "/nothing/here"))
      assert.are.equal(404, r.status)
      assert.are.same({ 7003 }, codes(r))
      assert.are.equal("No route for the URI", r.json.errors[1].message)
      r = assert(request("GET", "/elsewhere"))
      assert.are.equal(404, r.status)
      assert.are.same({ 7003 }, codes(r))
    end)

    it("answers an unknown app, a malformed account id and a wrong method", function()
      local r = assert(request("GET", "/client/v4/accounts/" .. ACCT
        .. "/access/apps/00000000-0000-4000-8000-000000000000/policies"))
      assert.are.equal(404, r.status)
      assert.are.same({ 12001 }, codes(r))
      -- an app registered for the account is not one of the zone's
      r = assert(request("GET", "/client/v4/zones/" .. ZONE .. "/access/apps/" .. APP .. "/policies"))
      assert.are.equal(404, r.status)
      r = assert(request("GET", "/client/v4/accounts/not-hex/access/policies"))
      assert.are.equal(404, r.status)
      assert.are.same({ 7003 }, codes(r))
      r = assert(request("PATCH", REUSE_PATH))
      assert.are.equal(405, r.status)
    end)
  end)

  describe("stored defaults", function()
    it("fills app policy defaults and assigns increasing precedence", function()
      local a = create(APP_PATH, policy("a"))
      local b = create(APP_PATH, policy("b"))
      for _, p in ipairs{ a, b } do
        assert.are.equal("24h", p.session_duration)
        assert.is_false(p.approval_required)
        assert.is_false(p.isolation_required)
        assert.is_false(p.purpose_justification_required)
        assert.are.same({}, p.exclude)
        assert.are.same({}, p.require)
        assert.are.same({}, p.approval_groups)
        assert.is_false(p.reusable)
      end
      assert.are.equal(1, a.precedence)
      assert.are.equal(2, b.precedence)
      local c = create(APP_PATH, policy("c", { precedence = 10, session_duration = "30m" }))
      assert.are.equal(10, c.precedence)
      assert.are.equal("30m", c.session_duration)
      assert.are.equal(11, create(APP_PATH, policy("d")).precedence)
    end)

    it("leaves session_duration off zone policies", function()
      local p = create(ZONE_PATH, policy("z"))
      assert.is_nil(p.session_duration)
      assert.are.equal(1, p.precedence)
      assert.is_false(p.approval_required)
    end)

    it("marks reusable policies and gives them no precedence", function()
      local p = create(REUSE_PATH, policy("r"))
      assert.is_true(p.reusable)
      assert.are.equal(0, p.app_count)
      assert.is_nil(p.precedence)
      assert.are.equal("24h", p.session_duration)
    end)

    it("normalises single IP addresses to /32 and /128 and keeps networks", function()
      local p = create(APP_PATH, policy("ips", {
        include = { { ip = { ip = "203.0.113.7" } }, { ip = { ip = "2400:cb00:21:10a::1" } } },
        exclude = { { ip = { ip = "198.51.100.0/24" } } },
        require = { { ip = { ip = "2001:db8::/32" } } },
      }))
      assert.are.equal("203.0.113.7/32", p.include[1].ip.ip)
      assert.are.equal("2400:cb00:21:10a::1/128", p.include[2].ip.ip)
      assert.are.equal("198.51.100.0/24", p.exclude[1].ip.ip)
      assert.are.equal("2001:db8::/32", p.require[1].ip.ip)
      local bad = policy("bad", { include = { { ip = { ip = "300.1.1.1" } } } })
      local r = assert(request("POST", APP_PATH, { body = bad }))
      assert.are.equal(400, r.status)
    end)

    it("keeps the precedence on a PUT that leaves it out", function()
      create(APP_PATH, policy("a"))
      local b = create(APP_PATH, policy("b"))
      local r = assert(request("PUT", APP_PATH .. "/" .. b.id, { body = policy("b2") }))
      assert.are.equal(200, r.status)
      assert.are.equal(2, r.json.result.precedence)
      -- a PUT may keep its own precedence
      r = assert(request("PUT", APP_PATH .. "/" .. b.id, { body = policy("b3", { precedence = 2 }) }))
      assert.are.equal(200, r.status)
    end)
  end)

  describe("bodies the API rejects", function()
    it("rejects invalid JSON", function()
      local r = assert(request("POST", APP_PATH, { body = '{"name": "x",' }))
      assert.are.equal(400, r.status)
      assert.is_false(r.json.success)
      assert.are.equal(cjson.null, r.json.result)
      assert.are.equal(1, #r.json.errors)
    end)

    it("lists every missing required field", function()
      local r = assert(request("POST", APP_PATH, { body = { precedence = 3 } }))
      assert.are.equal(400, r.status)
      assert.are.equal(3, #r.json.errors)
      local text = cjson.encode(r.json.errors)
      assert.matches("name", text)
      assert.matches("decision", text)
      assert.matches("include", text)
      assert.are.equal(0, #m:state())
    end)

    it("rejects a decision outside the enum and a non-integer precedence", function()
      local r = assert(request("POST", APP_PATH, { body = policy("x", { decision = "permit" }) }))
      assert.are.equal(400, r.status)
      assert.matches("decision", r.json.errors[1].message)
      for _, bad in ipairs{ '1.5', '"1"', '1.0', 'true' } do
        local body = '{"name":"x","decision":"allow","include":[],"precedence":' .. bad .. '}'
        r = assert(request("POST", APP_PATH, { body = body }))
        assert.are.equal(400, r.status, bad)
        assert.matches("precedence", r.json.errors[1].message)
      end
      r = assert(request("POST", REUSE_PATH, { body = policy("x", { precedence = 1 }) }))
      assert.are.equal(400, r.status)
    end)

    it("answers a duplicate precedence with 400 and code 11018", function()
      create(APP_PATH, policy("a", { precedence = 5 }))
      local r = assert(request("POST", APP_PATH, { body = policy("b", { precedence = 5 }) }))
      assert.are.equal(400, r.status)
      assert.are.same({ 11018 }, codes(r))
      assert.are.equal("access.api.error.invalid_policy_precedence", r.json.errors[1].message)
      -- the same precedence in another app (the zone one) is fine
      create(ZONE_PATH, policy("z", { precedence = 5 }))
      -- and a PUT onto a sibling's precedence is refused too
      local c = create(APP_PATH, policy("c"))
      r = assert(request("PUT", APP_PATH .. "/" .. c.id, { body = policy("c", { precedence = 5 }) }))
      assert.are.same({ 11018 }, codes(r))
      -- the old code on request (config precedence_code), for clients not yet updated
      m:config{ precedence_code = 12130 }
      r = assert(request("PUT", APP_PATH .. "/" .. c.id, { body = policy("c", { precedence = 5 }) }))
      assert.are.same({ 12130 }, codes(r))
    end)

    it("answers 413 over max_body_bytes", function()
      m:config{ max_body_bytes = 64 }
      local r = assert(request("POST", APP_PATH, { body = policy(string.rep("n", 100)) }))
      assert.are.equal(413, r.status)
      m:config{ max_body_bytes = 16 * 1024 * 1024 }
      create(APP_PATH, policy(string.rep("n", 100)))
    end)
  end)

  describe("authentication", function()
    it("answers a request without credentials with 401, code 10000", function()
      local r = assert(request("GET", APP_PATH, { headers = {} }))
      assert.are.equal(401, r.status)
      assert.are.same({ 10000 }, codes(r))
      assert.are.equal("Authentication error", r.json.errors[1].message)
    end)

    it("answers wrong credentials with 403, code 10000", function()
      for _, h in ipairs{
        { Authorization = "Bearer wrong" },
        { Authorization = "Basic " .. TOKEN },
        { ["X-Auth-Email"] = EMAIL, ["X-Auth-Key"] = "wrong" },
        { ["X-Auth-Email"] = "other@example.com", ["X-Auth-Key"] = API_KEY },
        { ["X-Auth-Key"] = API_KEY },
      } do
        local r = assert(request("GET", APP_PATH, { headers = h }))
        assert.are.equal(403, r.status)
        assert.are.same({ 10000 }, codes(r))
      end
      assert.are.equal(0, #m:state())
    end)

    it("accepts X-Auth-Email with X-Auth-Key", function()
      local r = assert(request("POST", ZONE_PATH, {
        headers = { ["X-Auth-Email"] = EMAIL, ["X-Auth-Key"] = API_KEY }, body = policy("k") }))
      assert.are.equal(201, r.status)
    end)
  end)

  describe("pagination", function()
    it("pages app policies with result_info and total_pages", function()
      for i = 1, 5 do create(APP_PATH, policy("p" .. i)) end
      local seen = {}
      for page = 1, 3 do
        local r = assert(request("GET", APP_PATH .. "?page=" .. page .. "&per_page=2"))
        assert.are.equal(200, r.status)
        local info = r.json.result_info
        assert.are.equal(page, info.page)
        assert.are.equal(2, info.per_page)
        assert.are.equal(page < 3 and 2 or 1, info.count)
        assert.are.equal(#r.json.result, info.count)
        assert.are.equal(5, info.total_count)
        assert.are.equal(3, info.total_pages)
        for _, p in ipairs(r.json.result) do seen[#seen + 1] = p.name end
      end
      assert.are.same({ "p1", "p2", "p3", "p4", "p5" }, seen)
      local r = assert(request("GET", APP_PATH .. "?page=4&per_page=2"))
      assert.are.same({}, r.json.result)
      assert.are.equal(0, r.json.result_info.count)
    end)

    it("uses per_page defaults of 200 (app, zone) and 100 (reusable), max 1000", function()
      assert.are.equal(200, assert(request("GET", APP_PATH)).json.result_info.per_page)
      assert.are.equal(200, assert(request("GET", ZONE_PATH)).json.result_info.per_page)
      assert.are.equal(100, assert(request("GET", REUSE_PATH)).json.result_info.per_page)
      assert.are.equal(1000, assert(request("GET", REUSE_PATH .. "?per_page=5000")).json.result_info.per_page)
      local r = assert(request("GET", REUSE_PATH .. "?page=0"))
      assert.are.equal(400, r.status)
    end)

    it("pages zone and reusable lists too", function()
      for i = 1, 3 do create(ZONE_PATH, policy("z" .. i)); create(REUSE_PATH, policy("r" .. i)) end
      local r = assert(request("GET", ZONE_PATH .. "?page=2&per_page=2"))
      assert.are.equal(1, #r.json.result)
      assert.are.equal("z3", r.json.result[1].name)
      r = assert(request("GET", REUSE_PATH .. "?page=3&per_page=1"))
      assert.are.equal("r3", r.json.result[1].name)
      assert.are.equal(3, r.json.result_info.total_pages)
    end)
  end)

  describe("response headers", function()
    it("sends a fresh cf-ray and the Ratelimit headers, counting down", function()
      local r1 = assert(request("GET", APP_PATH))
      local r2 = assert(request("GET", APP_PATH))
      assert.matches("^%x+%-SJC$", r1.headers["cf-ray"])
      assert.are.equal(16, #r1.headers["cf-ray"]:match("^(%x+)"))
      assert.are_not.equal(r1.headers["cf-ray"], r2.headers["cf-ray"])
      assert.are.equal('"default";q=1200;w=300', r1.headers["ratelimit-policy"])
      local rem1, t1 = r1.headers["ratelimit"]:match('^"default";r=(%d+);t=(%d+)$')
      local rem2 = r2.headers["ratelimit"]:match('^"default";r=(%d+);t=%d+$')
      assert.are.equal(1199, tonumber(rem1))
      assert.are.equal(1198, tonumber(rem2))
      assert.is_true(tonumber(t1) >= 1 and tonumber(t1) <= 300)
    end)

    it("lets the control API set the remaining budget", function()
      m:config{ ratelimit_remaining = 5 }
      local r = assert(request("GET", APP_PATH))
      assert.matches('^"default";r=4;', r.headers["ratelimit"])
      m:config{ ratelimit_remaining = 0, enforce_ratelimit = true }
      r = assert(request("GET", APP_PATH))
      assert.are.equal(429, r.status)
      assert.is_truthy(tonumber(r.headers["retry-after"]))
      m:config{ enforce_ratelimit = false }
    end)
  end)

  describe("faults", function()
    it("status: answers as told and does not process the request", function()
      m:fault{ action = "status", status = 503, method = "POST", headers = { ["x-test"] = "yes" },
        errors = { { code = 10043, message = "busy" } } }
      local r = assert(request("POST", APP_PATH, { body = policy("s") }))
      assert.are.equal(503, r.status)
      assert.are.equal("yes", r.headers["x-test"])
      assert.are.same({ 10043 }, codes(r))
      assert.are.equal(0, #m:state())
      -- consumed: the next one goes through
      assert.are.equal(201, assert(request("POST", APP_PATH, { body = policy("s") })).status)
    end)

    it("status: sends a raw body", function()
      m:fault{ action = "status", status = 500, body = "plain failure" }
      local r = assert(request("GET", APP_PATH))
      assert.are.equal(500, r.status)
      assert.are.equal("plain failure", r.body)
    end)

    it("matches method and path, applies `times` times, in FIFO order", function()
      m:fault{
        { action = "status", status = 418, method = "DELETE" },
        { action = "status", status = 502, path = "/access/policies$", times = 2 },
        { action = "status", status = 503 },
      }
      assert.are.equal(503, assert(request("GET", APP_PATH)).status)  -- first match wins
      assert.are.equal(502, assert(request("GET", REUSE_PATH)).status)
      assert.are.equal(502, assert(request("GET", REUSE_PATH)).status)
      assert.are.equal(200, assert(request("GET", REUSE_PATH)).status)
      assert.are.equal(418, assert(request("DELETE", APP_PATH .. "/" .. APP)).status)
      assert.are.same({}, m:faults())
    end)

    it("rate_limit: 429 with Retry-After, retry-after-ms and code 10000", function()
      m:fault{ action = "rate_limit", retry_after = 7, retry_after_ms = 1500, method = "POST" }
      local r = assert(request("POST", APP_PATH, { body = policy("r") }))
      assert.are.equal(429, r.status)
      assert.are.equal("7", r.headers["retry-after"])
      assert.are.equal("1500", r.headers["retry-after-ms"])
      assert.are.same({ 10000 }, codes(r))
      assert.are.equal(0, #m:state())
      m:fault{ action = "rate_limit" }
      assert.are.equal("1", assert(request("GET", APP_PATH)).headers["retry-after"])
    end)

    it("delay: the answer comes late but complete", function()
      m:fault{ action = "delay", seconds = 1.0 }
      local c = connect()
      send(c, "POST", APP_PATH, { body = policy("slow") })
      c:settimeout(0.2)
      local line, err = c:receive("*l")
      assert.is_nil(line)
      assert.are.equal("timeout", err)
      c:settimeout(5)
      local r = assert(read_response(c))
      c:close()
      assert.are.equal(201, r.status)
      assert.are.equal(1, #m:state())
    end)

    it("reset_before: resets the connection without a response or processing", function()
      m:fault{ action = "reset_before", method = "POST" }
      local r, err, partial = request("POST", APP_PATH, { body = policy("gone") })
      assert.is_nil(r)
      assert.is_truthy(err == "closed" or err:match("reset"), err)
      assert.is_nil(partial.status)
      assert.are.equal(0, #m:state())
      local log = m:log()
      assert.are.equal(cjson.null, log[#log].status)
    end)

    it("reset_after_headers: processes, sends headers and half the body, resets", function()
      m:fault{ action = "reset_after_headers", method = "POST" }
      local r, err, partial = request("POST", APP_PATH, { body = policy("half") })
      assert.is_nil(r)
      assert.is_truthy(err == "closed" or err:match("reset"), err)
      assert.are.equal(201, partial.status)
      local n = tonumber(partial.headers["content-length"])
      assert.is_true(#partial.body > 0 and #partial.body < n)
      assert.are.equal(1, #m:state())
    end)

    it("garbage, truncated and html bodies", function()
      m:fault{ { action = "garbage" }, { action = "truncated" }, { action = "html" } }
      local r = assert(request("GET", APP_PATH))
      assert.are.equal(200, r.status)
      assert.are.equal("this is {not json", r.body)
      r = assert(request("GET", APP_PATH))
      assert.are.equal(200, r.status)
      assert.are.equal(tonumber(r.headers["content-length"]), #r.body)
      assert.matches('^{"success":true', r.body)
      assert.is_false(pcall(cjson.decode, r.body))
      r = assert(request("GET", APP_PATH))
      assert.are.equal(502, r.status)
      assert.are.equal("text/html", r.headers["content-type"])
      assert.matches("<html>", r.body)
    end)

    it("oversize: a valid envelope of exactly `bytes` bytes (default 20 MiB)", function()
      m:fault{ action = "oversize", bytes = 1024 * 1024 }
      local r = assert(request("GET", APP_PATH))
      assert.are.equal(200, r.status)
      assert.are.equal(1024 * 1024, #r.body)
      assert.is_true(r.json.success)
      m:fault{ action = "oversize" }
      local c = connect()
      send(c, "GET", APP_PATH)
      assert.are.equal("HTTP/1.1 200 OK", c:receive("*l"))
      local len
      repeat
        local h = assert(c:receive("*l"))
        len = len or tonumber(h:match("^Content%-Length: (%d+)$"))
      until h == ""
      c:close()
      assert.are.equal(20 * 1024 * 1024, len)
    end)

    it("success_false: 200 with success false and code 10001", function()
      m:fault{ action = "success_false" }
      local r = assert(request("GET", APP_PATH))
      assert.are.equal(200, r.status)
      assert.is_false(r.json.success)
      assert.are.same({ 10001 }, codes(r))
    end)

    it("commit_then_fail: stores the policy, then answers 500", function()
      m:fault{ action = "commit_then_fail", method = "POST" }
      local r = assert(request("POST", APP_PATH, { body = policy("committed") }))
      assert.are.equal(500, r.status)
      local st = m:state()
      assert.are.equal(1, #st)
      assert.are.equal("committed", st[1].name)
      assert.are.equal(APP, st[1]._app_id)
    end)

    it("commit_then_fail with then=reset: stores the policy, resets", function()
      m:fault{ action = "commit_then_fail", ["then"] = "reset", method = "POST" }
      local r, err = request("POST", APP_PATH, { body = policy("committed") })
      assert.is_nil(r)
      assert.is_truthy(err == "closed" or err:match("reset"), err)
      assert.are.equal(1, #m:state())
    end)

    it("headers: processes and adds the headers", function()
      m:fault{ action = "headers", headers = { ["x-should-retry"] = "false" } }
      local r = assert(request("POST", APP_PATH, { body = policy("h") }))
      assert.are.equal(201, r.status)
      assert.are.equal("false", r.headers["x-should-retry"])
      assert.are.equal(1, #m:state())
    end)

    it("repeat_page: every list request gets page 1 with total_pages 1000", function()
      for i = 1, 3 do create(APP_PATH, policy("p" .. i)) end
      m:fault{ action = "repeat_page", times = -1 }
      create(APP_PATH, policy("p4"))   -- not a list: does not consume the fault
      local first
      for page = 1, 3 do
        local r = assert(request("GET", APP_PATH .. "?page=" .. page .. "&per_page=1"))
        assert.are.equal(1000, r.json.result_info.total_pages)
        first = first or r.json.result[1].id
        assert.are.equal(first, r.json.result[1].id)
      end
      assert.are.equal(1, #m:faults())
    end)

    it("rejects an unknown action through the control API", function()
      assert.has_error(function() m:fault{ action = "explode" } end)
      assert.has_error(function() m:fault{ action = "status", times = 0 } end)
    end)
  end)

  describe("log", function()
    it("records requests in order, with bodies and statuses, secrets redacted", function()
      m:fault{ action = "status", status = 503, method = "GET" }
      request("GET", APP_PATH .. "?page=1", { headers = { Authorization = "Bearer " .. TOKEN } })
      request("POST", ZONE_PATH, { headers = { ["X-Auth-Email"] = EMAIL, ["X-Auth-Key"] = API_KEY },
        body = policy("logged") })
      local log = m:log()
      assert.are.equal(2, #log)
      assert.are.equal("GET", log[1].method)
      assert.are.equal(APP_PATH, log[1].path)
      assert.are.equal("page=1", log[1].query)
      assert.are.equal(503, log[1].status)
      assert.are.equal("[redacted]", log[1].headers.authorization)
      assert.are.equal("POST", log[2].method)
      assert.are.equal(201, log[2].status)
      assert.are.equal("[redacted]", log[2].headers["x-auth-key"])
      assert.are.equal(EMAIL, log[2].headers["x-auth-email"])
      assert.are.equal("logged", cjson.decode(log[2].body).name)
      assert.is_true(log[2].time >= log[1].time and log[1].time > 1.6e9)
      -- the raw control reply never carries a secret
      local raw = cjson.encode(log)
      assert.is_nil(raw:find(TOKEN, 1, true))
      assert.is_nil(raw:find(API_KEY, 1, true))
    end)

    it("is cleared by reset", function()
      request("GET", APP_PATH)
      assert.are.equal(1, #m:log())
      m:reset()
      assert.are.equal(0, #m:log())
      -- apps are cleared too
      assert.are.equal(404, assert(request("GET", APP_PATH)).status)
    end)
  end)

  describe("applications", function()
    local APPS = "/client/v4/accounts/" .. ACCT .. "/access/apps"
    local ZAPPS = "/client/v4/zones/" .. ZONE .. "/access/apps"
    local APP2 = "2c7e3a5b-1d4f-4e6a-9b8c-0d1e2f3a4b5c"
    local APP3 = "3d8f4b6c-2e5a-4f7b-8c9d-1e2f3a4b5c6d"

    local function get_app(id) return assert(request("GET", APPS .. "/" .. (id or APP))).json.result end
    local function put_app(body, id)
      return assert(request("PUT", APPS .. "/" .. (id or APP), { body = body }))
    end
    -- an application body with the fields a self_hosted PUT needs, `policies` raw JSON
    local function app_body(policies_json)
      return '{"type":"self_hosted","domain":"app.example.com","name":"App"'
        .. (policies_json and (',"policies":' .. policies_json) or "") .. "}"
    end
    local function ids_of(list)
      local out = {}
      for i, p in ipairs(list) do out[i] = p.id end
      return out
    end

    it("gives an infrastructure app's policies no precedence, and refuses one", function()
      m:app("accounts", ACCT, APP2, "infrastructure")
      local path = APPS .. "/" .. APP2 .. "/policies"
      local body = '{"name":"ssh","decision":"allow","include":[{"everyone":{}}],'
        .. '"connection_rules":{"ssh":{"usernames":["root"]}}'
      local r = assert(request("POST", path, { body = body .. "}" }))
      assert.are.equal(201, r.status)
      assert.is_nil(r.json.result.precedence)
      r = assert(request("POST", path, { body = body .. ',"precedence":1}' }))
      assert.are.equal(400, r.status)
      assert.matches("precedence is not allowed on infrastructure policies", r.json.errors[1].message, 1, true)
    end)

    it("lists applications at account and zone scope, paginated", function()
      m:app("accounts", ACCT, APP2, "ssh", { domain = "ssh.example.com" })
      m:app("accounts", ACCT, APP3, "saas")
      local r = assert(request("GET", APPS .. "?per_page=2"))
      assert.are.equal(200, r.status)
      assert.are.same({ APP, APP2 }, ids_of(r.json.result))
      assert.are.same({ page = 1, per_page = 2, count = 2, total_count = 3, total_pages = 2 },
        r.json.result_info)
      r = assert(request("GET", APPS .. "?per_page=2&page=2"))
      assert.are.same({ APP3 }, ids_of(r.json.result))
      assert.are.equal("saas", r.json.result[1].type)
      r = assert(request("GET", ZAPPS))
      assert.are.same({ ZAPP }, ids_of(r.json.result))
      assert.are.equal(404, assert(request("GET", ZAPPS .. "/" .. APP)).status)
    end)

    it("GET returns the stored fields, read-only ones and the policies expanded", function()
      m:app("accounts", ACCT, APP2, "self_hosted", { domain = "a.example.com", name = "A",
        body = { session_duration = "8h", app_launcher_visible = false } })
      local rp = create(REUSE_PATH, policy("r1"))
      local a = get_app(APP2)
      assert.are.equal("a.example.com", a.domain)
      assert.are.equal("A", a.name)
      assert.are.equal("8h", a.session_duration)
      assert.is_false(a.app_launcher_visible)
      assert.matches(TIME_PAT, a.created_at)
      assert.matches("^%x+$", a.aud)
      assert.are.same({}, a.policies)
      local r = put_app('{"type":"self_hosted","domain":"a.example.com","name":"A","policies":[{"id":"'
        .. rp.id .. '","precedence":3}]}', APP2)
      assert.are.equal(200, r.status, r.body)
      a = get_app(APP2)
      assert.are.equal(1, #a.policies)
      local p = a.policies[1]
      assert.are.equal(rp.id, p.id)
      assert.are.equal(3, p.precedence)
      assert.are.equal("allow", p.decision)
      assert.are.same(rp.include, p.include)
      assert.are.equal(rp.created_at, p.created_at)
      assert.is_true(p.reusable)
      assert.are.equal(1, p.app_count)
      -- the PUT reset what it left out (session_duration was not sent)
      assert.is_nil(a.session_duration)
    end)

    it("refuses a PUT without the fields its type requires, naming them", function()
      local cases = {
        { "self_hosted", '{"type":"self_hosted"}', { "domain" } },
        { "ssh", '{"type":"ssh","name":"x"}', { "domain" } },
        { "rdp", '{"type":"rdp"}', { "domain", "target_criteria" } },
        { "infrastructure", '{"type":"infrastructure"}', { "target_criteria" } },
        { "warp", '{"name":"w"}', { "type" } },
        { "self_hosted", '{"domain":"x.example.com"}', { "type" } },
      }
      for _, c in ipairs(cases) do
        m:app("accounts", ACCT, APP2, c[1])
        local r = put_app(c[2], APP2)
        assert.are.equal(400, r.status, c[2])
        assert.is_false(r.json.success)
        assert.are.equal(cjson.null, r.json.result)
        assert.are.equal(#c[3], #r.json.errors, c[2])
        for i, field in ipairs(c[3]) do
          assert.matches("^" .. field .. " is required for a " .. c[1] .. " application$",
            r.json.errors[i].message)
        end
        assert.is_nil(m:last_put(APP2))   -- refused: nothing stored
      end
      -- saas and bookmark require nothing (the stored type is kept)
      m:app("accounts", ACCT, APP3, "saas")
      assert.are.equal(200, put_app("{}", APP3).status)
      assert.are.equal("saas", get_app(APP3).type)
      assert.are.equal(400, put_app('{"type":"teleporter"}', APP3).status)
    end)

    it("keeps every policy on policies null or missing; [] detaches all and deletes the legacy ones", function()
      local l1 = create(APP_PATH, policy("l1"))
      local l2 = create(APP_PATH, policy("l2"))
      local rp = create(REUSE_PATH, policy("r"))
      local r = put_app(app_body('["' .. l1.id .. '","' .. l2.id .. '",{"id":"' .. rp.id .. '"}]'))
      assert.are.equal(200, r.status, r.body)
      assert.are.same({ l1.id, l2.id, rp.id }, ids_of(get_app().policies))
      assert.are.equal(200, put_app(app_body()).status)            -- missing
      assert.are.same({ l1.id, l2.id, rp.id }, ids_of(get_app().policies))
      assert.are.equal(200, put_app(app_body("null")).status)      -- null
      assert.are.same({ l1.id, l2.id, rp.id }, ids_of(get_app().policies))
      assert.are.equal(200, put_app(app_body("[]")).status)        -- detach everything
      assert.are.same({}, get_app().policies)
      assert.are.equal(404, assert(request("GET", APP_PATH .. "/" .. l1.id)).status)
      assert.are.equal(404, assert(request("GET", APP_PATH .. "/" .. l2.id)).status)
      local kept = assert(request("GET", REUSE_PATH .. "/" .. rp.id)).json.result
      assert.are.equal(0, kept.app_count)                        -- the reusable one stays
      assert.are.equal(1, #m:state())
    end)

    it("takes links as {id, precedence} or bare ids; missing precedences follow the list", function()
      local r1 = create(REUSE_PATH, policy("r1"))
      local r2 = create(REUSE_PATH, policy("r2"))
      local r3 = create(REUSE_PATH, policy("r3"))
      assert.are.equal(200, put_app(app_body('["' .. r2.id .. '",{"id":"' .. r1.id
        .. '","precedence":7},{"id":"' .. r3.id .. '"}]')).status)
      local a = get_app()
      assert.are.same({ r2.id, r1.id, r3.id }, ids_of(a.policies))
      assert.are.same({ 1, 7, 8 }, { a.policies[1].precedence, a.policies[2].precedence,
        a.policies[3].precedence })
      -- reorder in one PUT, and app_count follows
      assert.are.equal(200, put_app(app_body('[{"id":"' .. r3.id .. '","precedence":1},{"id":"'
        .. r2.id .. '","precedence":2}]')).status)
      assert.are.same({ r3.id, r2.id }, ids_of(get_app().policies))
      assert.are.equal(0, assert(request("GET", REUSE_PATH .. "/" .. r1.id)).json.result.app_count)
      assert.are.equal(1, assert(request("GET", REUSE_PATH .. "/" .. r2.id)).json.result.app_count)
      -- an unknown id is refused and changes nothing
      local r = put_app(app_body('["00000000-0000-4000-8000-000000000000"]'))
      assert.are.equal(400, r.status)
      assert.matches("not found", r.json.errors[1].message)
      assert.are.same({ r3.id, r2.id }, ids_of(get_app().policies))
    end)

    it("refuses reusable links and inline policies in one request", function()
      local rp = create(REUSE_PATH, policy("r"))
      local r = put_app(app_body('[{"id":"' .. rp.id .. '","precedence":1},'
        .. cjson.encode(policy("inline", { precedence = 2 })) .. "]"))
      assert.are.equal(400, r.status)
      assert.are.same({ 12142 }, codes(r))
      assert.matches("cannot be mixed", r.json.errors[1].message)
      assert.are.same({}, get_app().policies)
      -- inline alone creates a legacy policy
      r = put_app(app_body("[" .. cjson.encode(policy("inline")) .. "]"))
      assert.are.equal(200, r.status, r.body)
      local a = get_app()
      assert.are.equal("inline", a.policies[1].name)
      assert.is_false(a.policies[1].reusable)
    end)

    it("refuses duplicate precedences with 400, code 11018, and changes nothing", function()
      local r1 = create(REUSE_PATH, policy("r1"))
      local r2 = create(REUSE_PATH, policy("r2"))
      local l = create(APP_PATH, policy("l", { precedence = 4 }))
      local r = put_app(app_body('[{"id":"' .. r1.id .. '","precedence":2},{"id":"' .. r2.id
        .. '","precedence":2}]'))
      assert.are.equal(400, r.status)
      assert.are.same({ 11018 }, codes(r))
      assert.are.equal("access.api.error.invalid_policy_precedence", r.json.errors[1].message)
      assert.are.same({ l.id }, ids_of(get_app().policies))
      -- a link and a legacy policy share the app's precedences too
      r = put_app(app_body('[{"id":"' .. r1.id .. '","precedence":4},{"id":"' .. l.id .. '","precedence":4}]'))
      assert.are.same({ 11018 }, codes(r))
      assert.are.equal(200, put_app(app_body('[{"id":"' .. l.id .. '","precedence":4},{"id":"'
        .. r1.id .. '","precedence":5}]')).status)
      r = assert(request("POST", APP_PATH, { body = policy("x", { precedence = 5 }) }))
      assert.are.same({ 11018 }, codes(r))
      assert.are.equal(3, m:invariants().refused_duplicates)
    end)

    it("refuses a GET's expanded reusable policies echoed back as inline ones", function()
      local rp = create(REUSE_PATH, policy("r"))
      assert.are.equal(200, put_app(app_body('["' .. rp.id .. '"]')).status)
      local a = get_app()
      local r = put_app(cjson.encode(a))
      assert.are.equal(400, r.status)
      assert.matches("{id, precedence}", r.json.errors[1].message, 1, true)
      assert.are.same({ rp.id }, ids_of(get_app().policies))
    end)

    it("lists an app's legacy and linked reusable policies, marked, by precedence", function()
      local rp = create(REUSE_PATH, policy("r"))
      local l = create(APP_PATH, policy("l"))
      assert.are.equal(200, put_app(app_body('[{"id":"' .. rp.id .. '","precedence":1},{"id":"'
        .. l.id .. '","precedence":2}]')).status)
      local r = assert(request("GET", APP_PATH))
      assert.are.same({ rp.id, l.id }, ids_of(r.json.result))
      assert.is_true(r.json.result[1].reusable)
      assert.are.equal(1, r.json.result[1].precedence)
      assert.is_false(r.json.result[2].reusable)
      assert.are.equal(2, r.json.result_info.total_count)
      -- GET of the linked one through the app route works; PUT and DELETE do not
      r = assert(request("GET", APP_PATH .. "/" .. rp.id))
      assert.are.equal(200, r.status)
      assert.is_true(r.json.result.reusable)
      for _, method in ipairs{ "PUT", "DELETE" } do
        r = assert(request(method, APP_PATH .. "/" .. rp.id, { body = policy("r2") }))
        assert.are.equal(400, r.status, method)
        assert.are.same({ 12140 }, codes(r))
        assert.truthy(r.json.errors[1].message:find("/accounts/" .. ACCT .. "/access/policies/" .. rp.id, 1, true))
      end
      assert.are.equal("r", assert(request("GET", REUSE_PATH .. "/" .. rp.id)).json.result.name)
    end)

    it("make_reusable turns a legacy policy reusable, still linked at its precedence", function()
      local l = create(APP_PATH, policy("l", { precedence = 3 }))
      local r = assert(request("PUT", APP_PATH .. "/" .. l.id .. "/make_reusable"))
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(l.id, r.json.result.id)
      assert.is_true(r.json.result.reusable)
      assert.are.equal(1, r.json.result.app_count)
      assert.is_nil(r.json.result.precedence)
      local st = m:state()
      assert.are.equal("reusable", st[1]._kind)
      assert.are.equal(cjson.null, st[1]._app_id)
      local a = get_app()
      assert.are.equal(l.id, a.policies[1].id)
      assert.are.equal(3, a.policies[1].precedence)
      assert.is_true(a.policies[1].reusable)
      assert.are.same({ l.id }, ids_of(assert(request("GET", REUSE_PATH)).json.result))
      r = assert(request("PUT", APP_PATH .. "/" .. l.id .. "/make_reusable"))
      assert.are.equal(400, r.status)
      assert.matches("already reusable", r.json.errors[1].message)
      r = assert(request("PUT", APP_PATH .. "/00000000-0000-4000-8000-000000000000/make_reusable"))
      assert.are.equal(404, r.status)
      local z = create(ZONE_PATH, policy("z"))
      r = assert(request("PUT", ZONE_PATH .. "/" .. z.id .. "/make_reusable"))
      assert.are.same({ 7003 }, codes(r))                       -- account scope only
    end)

    it("refuses to delete a reusable policy still attached, counting its apps", function()
      m:app("accounts", ACCT, APP2, "self_hosted")
      local rp = create(REUSE_PATH, policy("r"))
      assert.are.equal(200, put_app(app_body('["' .. rp.id .. '"]')).status)
      assert.are.equal(200, put_app(app_body('["' .. rp.id .. '"]'), APP2).status)
      assert.are.equal(2, assert(request("GET", REUSE_PATH .. "/" .. rp.id)).json.result.app_count)
      local r = assert(request("DELETE", REUSE_PATH .. "/" .. rp.id))
      assert.are.equal(400, r.status)
      assert.are.same({ 12141 }, codes(r))
      assert.matches("used by 2 applications", r.json.errors[1].message)
      assert.are.equal(200, put_app(app_body("[]")).status)
      r = assert(request("DELETE", REUSE_PATH .. "/" .. rp.id))
      assert.matches("used by 1 application:", r.json.errors[1].message)
      assert.are.equal(200, put_app(app_body("[]"), APP2).status)
      assert.are.equal(202, assert(request("DELETE", REUSE_PATH .. "/" .. rp.id)).status)
    end)

    it("keeps the raw body of the last PUT and the stored fields for the control API", function()
      m:app("accounts", ACCT, APP2, "self_hosted", { domain = "b.example.com",
        body = { allowed_idps = { "idp-1" } } })
      local info = m:app_info(APP2)
      assert.is_nil(m:last_put(APP2))
      assert.are.equal("b.example.com", info.stored.domain)
      assert.are.same({ "idp-1" }, info.stored.allowed_idps)
      assert.are.equal("self_hosted", info.type)
      local body = '{"type":"self_hosted","domain":"b.example.com","allowed_idps":["idp-1"],'
        .. '"id":"' .. APP2 .. '","created_at":"2020-01-01T00:00:00Z","policies":null}'
      assert.are.equal(200, put_app(body, APP2).status)
      assert.are.equal(body, m:last_put(APP2))
      info = m:app_info(APP2, "accounts", ACCT)
      assert.is_nil(info.stored.id)                  -- read-only fields are not stored
      assert.is_nil(info.stored.created_at)
      assert.are_not.equal("2020-01-01T00:00:00Z", info.app.created_at)
      assert.are.same({ APP, ZAPP:lower(), APP2 }, { m:apps()[1].app_id, m:apps()[2].app_id,
        m:apps()[3].app_id })
    end)

    it("creates applications with POST; new ones take no legacy policies", function()
      local r = assert(request("POST", APPS, { body = '{"type":"self_hosted","domain":"n.example.com"}' }))
      assert.are.equal(201, r.status, r.body)
      local id = r.json.result.id
      assert.matches(UUID_PAT, id)
      local path = APPS .. "/" .. id .. "/policies"
      r = assert(request("POST", path, { body = policy("legacy") }))
      assert.are.equal(400, r.status)
      assert.matches("newly created applications", r.json.errors[1].message)
      r = put_app('{"type":"self_hosted","domain":"n.example.com","policies":['
        .. cjson.encode(policy("inline")) .. "]}", id)
      assert.are.equal(400, r.status)
      local rp = create(REUSE_PATH, policy("r"))
      assert.are.equal(200, put_app('{"type":"self_hosted","domain":"n.example.com","policies":["'
        .. rp.id .. '"]}', id).status)
      assert.are.same({ rp.id }, ids_of(get_app(id).policies))
      assert.are.equal(400, assert(request("POST", APPS, { body = '{"type":"rdp"}' })).status)
      assert.are.equal(202, assert(request("DELETE", APPS .. "/" .. id)).status)
      assert.are.equal(0, assert(request("GET", REUSE_PATH .. "/" .. rp.id)).json.result.app_count)
    end)
  end)

  describe("Access groups", function()
    local scopes = {
      { name = "account", path = "/client/v4/accounts/" .. ACCT .. "/access/groups",
        other = "/client/v4/zones/" .. ZONE .. "/access/groups" },
      { name = "zone", path = "/client/v4/zones/" .. ZONE .. "/access/groups",
        other = "/client/v4/accounts/" .. ACCT .. "/access/groups" },
    }
    for _, s in ipairs(scopes) do
      it("runs create, list, get, put and delete at " .. s.name .. " scope", function()
        local r = assert(request("POST", s.path, { body = { name = "eng",
          include = { { email_domain = { domain = "example.com" } }, { ip = { ip = "192.0.2.1" } } } } }))
        assert.are.equal(201, r.status, r.body)
        local g = r.json.result
        assert.matches(UUID_PAT, g.id)
        assert.are.equal("192.0.2.1/32", g.include[2].ip.ip)
        assert.are.same({}, g.exclude)
        assert.are.same({}, g.require)
        assert.is_false(g.is_default)
        assert.matches(TIME_PAT, g.created_at)
        assert.matches(TIME_PAT, g.updated_at)
        assert.are.same(g, assert(request("GET", s.path .. "/" .. g.id)).json.result)
        assert.are.equal(404, assert(request("GET", s.other .. "/" .. g.id)).status)
        for i = 2, 3 do
          assert.are.equal(201, assert(request("POST", s.path, { body = { name = "g" .. i,
            include = { { everyone = {} } } } })).status)
        end
        r = assert(request("GET", s.path .. "?per_page=2&page=2"))
        assert.are.equal(1, #r.json.result)
        assert.are.equal("g3", r.json.result[1].name)
        assert.are.same({ page = 2, per_page = 2, count = 1, total_count = 3, total_pages = 2 },
          r.json.result_info)
        assert.are.equal("eng", assert(request("GET", s.path .. "?name=eng")).json.result[1].name)
        r = assert(request("PUT", s.path .. "/" .. g.id, { body = { name = "eng2",
          include = { { everyone = {} } }, is_default = true } }))
        assert.are.equal(200, r.status)
        assert.are.equal("eng2", r.json.result.name)
        assert.is_true(r.json.result.is_default)
        assert.are.equal(g.created_at, r.json.result.created_at)
        assert.are.equal(202, assert(request("DELETE", s.path .. "/" .. g.id)).status)
        r = assert(request("GET", s.path .. "/" .. g.id))
        assert.are.equal(404, r.status)
        assert.are.same({ 12003 }, codes(r))
      end)
    end

    it("requires name and include (400 naming both) and checks the rest", function()
      local path = "/client/v4/accounts/" .. ACCT .. "/access/groups"
      local r = assert(request("POST", path, { body = '{"exclude":[]}' }))
      assert.are.equal(400, r.status)
      assert.are.equal(2, #r.json.errors)
      assert.matches("^name is required", r.json.errors[1].message)
      assert.matches("^include is required", r.json.errors[2].message)
      r = assert(request("POST", path, { body = '{"name":"x","include":[],"is_default":"yes"}' }))
      assert.matches("is_default", r.json.errors[1].message)
      assert.are.same({}, m:snapshot().groups)
    end)
  end)

  describe("list limits", function()
    it("caps per_page at the configured value and says so in result_info", function()
      for i = 1, 120 do create(REUSE_PATH, policy("r" .. i)) end
      m:config{ per_page_cap = 50 }
      local r = assert(request("GET", REUSE_PATH .. "?per_page=100"))
      assert.are.equal(50, #r.json.result)
      assert.are.same({ page = 1, per_page = 50, count = 50, total_count = 120, total_pages = 3 },
        r.json.result_info)
      r = assert(request("GET", REUSE_PATH .. "?per_page=100&page=3"))
      assert.are.equal(20, #r.json.result)
      assert.are.equal("r101", r.json.result[1].name)
      assert.are.equal(50, assert(request("GET", APP_PATH .. "?per_page=100")).json.result_info.per_page)
      m:config{ per_page_cap = 0 }
      r = assert(request("GET", REUSE_PATH .. "?per_page=1000"))
      assert.are.equal(120, #r.json.result)
      assert.are.equal(1000, r.json.result_info.per_page)
    end)
  end)

  describe("server clock", function()
    -- seconds since the epoch of an IMF-fixdate (the Date header)
    local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                     Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
    local function http_date(s)
      local d, mon, y, hh, mm, ss = s:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
      assert(d, "not an IMF-fixdate: " .. tostring(s))
      local days = os.time{ year = tonumber(y), month = MONTHS[mon], day = tonumber(d), hour = 12 }
        - os.time{ year = 1970, month = 1, day = 1, hour = 12 }
      return days + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
    end
    local function rfc3339(s)
      local y, mo, d, hh, mm, ss = s:match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)")
      return http_date(os.date("!%a, %d %b %Y ", os.time{ year = tonumber(y), month = tonumber(mo),
        day = tonumber(d), hour = 12 }) .. hh .. ":" .. mm .. ":" .. ss .. " GMT")
    end

    it("sends a Date header on every response, API or not", function()
      for _, r in ipairs{ assert(request("GET", APP_PATH)), assert(request("GET", "/elsewhere")),
                          assert(request("POST", APP_PATH, { body = "{" })),
                          assert(request("GET", "/__mock/faults")) } do
        assert.is_number(http_date(r.headers["date"]))
      end
    end)

    it("skews Date and created_at/updated_at by clock_skew", function()
      local before = os.time()
      m:config{ clock_skew = -7200 }
      local r = assert(request("POST", APP_PATH, { body = policy("old") }))
      local date = http_date(r.headers["date"])
      assert.is_true(date <= before - 7000 and date >= before - 7400, r.headers["date"])
      local created = rfc3339(r.json.result.created_at)
      assert.is_true(math.abs(created - date) <= 2, r.json.result.created_at)
      assert.are.equal(r.json.result.created_at, r.json.result.updated_at)
      m:config{ clock_skew = 0 }
      assert.is_true(http_date(assert(request("GET", APP_PATH)).headers["date"]) >= before - 2)
    end)
  end)

  describe("lockout", function()
    it("locks the credential out for the rest of the window once the budget is spent", function()
      m:lockout(3, 30)
      for i = 1, 3 do
        local r = assert(request("GET", REUSE_PATH))
        assert.are.equal(200, r.status)
        assert.are.equal('"default";q=3;w=30', r.headers["ratelimit-policy"])
        assert.matches('^"default";r=' .. (3 - i) .. ';t=%d+$', r.headers["ratelimit"])
      end
      for _ = 1, 2 do
        local r = assert(request("POST", APP_PATH, { body = policy("late") }))
        assert.are.equal(429, r.status)
        assert.are.same({ 971 }, codes(r))
        local ra = tonumber(r.headers["retry-after"])
        assert.is_true(ra >= 1 and ra <= 30, r.headers["retry-after"])
        assert.matches('^"default";r=0;t=%d+$', r.headers["ratelimit"])
        assert.are.equal('"default";q=3;w=30', r.headers["ratelimit-policy"])
      end
      assert.are.equal(0, #m:state())               -- nothing processed while locked out
      -- another credential has its own budget
      assert.are.equal(200, assert(request("GET", REUSE_PATH, { headers = {
        ["X-Auth-Email"] = EMAIL, ["X-Auth-Key"] = API_KEY } })).status)
      assert.are.equal(2, m:count_status(429))
      local st = m:stats()
      assert.are.equal(2, st.rate_limited)
      assert.are.equal(6, st.requests)
      assert.are.equal(4, st.by_status["200"])
      m:lockout(false)
      assert.are.equal(201, assert(request("POST", APP_PATH, { body = policy("after") })).status)
    end)

    it("lets calls through again when the window ends", function()
      m:lockout(1, 1)
      assert.are.equal(200, assert(request("GET", REUSE_PATH)).status)
      local r = assert(request("GET", REUSE_PATH))
      assert.are.equal(429, r.status)
      local ok
      for _ = 1, 50 do                               -- bounded: at most ~5 s
        socket.sleep(0.1)
        r = assert(request("GET", REUSE_PATH))
        if r.status == 200 then ok = true; break end
        assert.are.equal(429, r.status)
      end
      assert.is_true(ok)
    end)

    it("adds the configured latency to every API answer, not to control calls", function()
      m:config{ latency = 1.0 }
      local c = connect()
      send(c, "GET", REUSE_PATH)
      c:settimeout(0.2)
      local line, e = c:receive("*l")
      assert.is_nil(line)
      assert.are.equal("timeout", e)
      c:settimeout(5)
      local r = assert(read_response(c))
      c:close()
      assert.are.equal(200, r.status)
      m:config{ latency = 0 }
    end)
  end)

  describe("invariant recorders", function()
    it("records two policies of an app sharing a precedence when uniqueness is off", function()
      assert.is_true(m:invariants().ok)
      m:config{ unique_precedence = false }
      local a = create(APP_PATH, policy("a", { precedence = 1 }))
      local b = create(APP_PATH, policy("b", { precedence = 1 }))
      local inv = m:invariants()
      assert.is_false(inv.ok)
      assert.are.equal(1, #inv.duplicate_precedence)
      local d = inv.duplicate_precedence[1]
      assert.are.equal("accounts/" .. ACCT .. "/" .. APP, d.app)
      assert.are.equal(1, d.precedence)
      local want = { a.id, b.id }
      table.sort(want)
      assert.are.same(want, d.ids)
      assert.are.equal("POST " .. APP_PATH, d.after)
      local ok, msg = pcall(m.assert_invariants, m)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find(a.id, 1, true))
      -- moving one away ends the overlap; the record stays
      assert.are.equal(200, assert(request("PUT", APP_PATH .. "/" .. b.id,
        { body = policy("b", { precedence = 2 }) })).status)
      assert.are.equal(1, #m:invariants().duplicate_precedence)
      m:reset()
      assert.is_true(m:invariants().ok)
      assert.are.equal(0, m:invariants().checks)
    end)

    it("records an app left with no policy, and not a migration that keeps one", function()
      local APPS = "/client/v4/accounts/" .. ACCT .. "/access/apps/" .. APP
      local l1 = create(APP_PATH, policy("l1"))
      local l2 = create(APP_PATH, policy("l2"))
      local rp = create(REUSE_PATH, policy("r"))
      -- migration: link the reusable one (legacy kept), then drop the legacy ones
      local body = '{"type":"self_hosted","domain":"a.example.com","policies":["' .. l1.id .. '","'
        .. l2.id .. '",{"id":"' .. rp.id .. '","precedence":3}]}'
      assert.are.equal(200, assert(request("PUT", APPS, { body = body })).status)
      assert.are.equal(200, assert(request("PUT", APPS, { body = '{"type":"self_hosted",'
        .. '"domain":"a.example.com","policies":[{"id":"' .. rp.id .. '","precedence":1}]}' })).status)
      local inv = m:assert_invariants()
      assert.is_true(inv.checks >= 5)
      -- the unsafe way: [] then the new list
      assert.are.equal(200, assert(request("PUT", APPS, { body =
        '{"type":"self_hosted","domain":"a.example.com","policies":[]}' })).status)
      inv = m:invariants()
      assert.is_false(inv.ok)
      assert.are.same({ { app = "accounts/" .. ACCT .. "/" .. APP, after = "PUT " .. APPS } },
        inv.empty_apps)
      -- a deleted last legacy policy counts too
      m:reset()
      m:app("accounts", ACCT, APP)
      local only = create(APP_PATH, policy("only"))
      assert.are.equal(202, assert(request("DELETE", APP_PATH .. "/" .. only.id)).status)
      assert.are.equal(1, #m:invariants().empty_apps)
    end)
  end)

  describe("log generations", function()
    it("does not count a request sent before a reset and read after it", function()
      local old = m:reset()
      m:fault{ action = "delay", seconds = 1.5, method = "GET" }
      socket.sleep(0.1)   -- arrival times are known to a few ms (TCP_INFO): keep clear of the reset
      -- two pipelined requests on one connection: the mock reads the second
      -- only after the first's delay, by when the reset below has happened
      local c = connect()
      send(c, "GET", REUSE_PATH)
      send(c, "POST", REUSE_PATH, { body = policy("late") })
      assert(c:shutdown("send"))                     -- the client is done sending
      socket.sleep(0.1)
      local new = m:reset()
      assert.are.equal(old + 1, new)
      local r = assert(read_response(c))             -- the delayed GET's answer
      assert.are.equal(200, r.status)
      local rest, e = c:receive("*l")                 -- then the mock hangs up
      assert.is_nil(rest)
      assert.are.equal("closed", e)
      c:close()
      assert.are.same({}, m:log())
      assert.are.equal(0, m:count())
      local all = m:log{ all = true }
      assert.are.equal(1, #all)
      assert.are.equal("POST", all[1].method)
      assert.are.equal(old, all[1].generation)
      assert.is_true(all[1].stale)
      assert.are.same({}, m:state())                -- and it changed nothing
      -- a request of the new generation is counted as usual
      assert.are.equal(200, assert(request("GET", REUSE_PATH)).status)
      assert.are.equal(1, m:count("GET"))
      assert.are.equal(new, m:log()[1].generation)
    end)
  end)

  describe("robustness", function()
    it("has written nothing to stderr (no Python tracebacks) after all of the above", function()
      assert.are.equal("", m:stderr())
    end)
  end)

  describe("keep-alive", function()
    it("serves two requests on one connection and says so in the log", function()
      local c = connect()
      send(c, "POST", APP_PATH, { body = policy("ka") })
      local r1 = assert(read_response(c))
      send(c, "GET", APP_PATH)
      local r2 = assert(read_response(c))
      c:close()
      assert.are.equal(201, r1.status)
      assert.are.equal(200, r2.status)
      assert.are_not.equal("close", r2.headers["connection"])
      request("GET", APP_PATH)   -- a different connection
      local log = m:log()
      assert.are.equal(3, #log)
      assert.are.equal(log[1].connection, log[2].connection)
      assert.are_not.equal(log[1].connection, log[3].connection)
    end)
  end)
end)

describe("cfmock over TLS", function()
  local tm, dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. mockctl.shell_quote(dir)))
    local q = mockctl.shell_quote
    assert(os.execute("env -u LD_PRELOAD openssl req -x509 -newkey rsa:2048 -nodes -days 1"
      .. " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
      .. " -keyout " .. q(dir .. "/key.pem") .. " -out " .. q(dir .. "/cert.pem") .. " >/dev/null 2>&1"))
    tm = mockctl.start{ tls_cert = dir .. "/cert.pem", tls_key = dir .. "/key.pem" }
  end)

  teardown(function()
    if tm then tm:stop() end
    if dir then os.execute("rm -rf " .. mockctl.shell_quote(dir)) end
  end)

  it("serves https and keeps the control API on a plain port", function()
    assert.matches("^https://127%.0%.0%.1:%d+/client/v4$", tm.base_url)
    assert.are_not.equal(tm.port, tm.control_port)
    tm:app("accounts", ACCT, APP)
    local q = mockctl.shell_quote
    local p = io.popen("env -u LD_PRELOAD curl -s --max-time 10 --cacert " .. q(dir .. "/cert.pem")
      .. " -H 'Authorization: Bearer test-token' -H 'Content-Type: application/json'"
      .. " -d " .. q(cjson.encode(policy("tls"))) .. " -w '\\n%{http_code}' "
      .. q(tm.base_url .. "/accounts/" .. ACCT .. "/access/apps/" .. APP .. "/policies"))
    local out = p:read("a")
    p:close()
    local body, code = out:match("^(.*)\n(%d+)$")
    assert.are.equal("201", code)
    assert.are.equal("tls", cjson.decode(body).result.name)
    assert.are.equal(1, #tm:state())
    -- plain HTTP to the TLS port gets nothing usable
    local c = connect(tm.port)
    send(c, "GET", "/client/v4/accounts/" .. ACCT .. "/access/policies")
    local r = read_response(c)
    c:close()
    assert.is_true(r == nil or r.status ~= 200)
  end)

  it("stops on SIGTERM", function()
    assert.are.equal("", tm:stderr())   -- the plain-HTTP probe left no traceback
    local pid = tm.pid
    tm:stop()
    local f = io.open("/proc/" .. pid .. "/stat")
    local st = f and f:read("a")
    if f then f:close() end
    assert.is_true(st == nil or st:match("^%d+ %b() Z") ~= nil)
    tm = nil
  end)
end)
