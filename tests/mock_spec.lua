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
