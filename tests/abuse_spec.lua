-- Fault and abuse suite (issue 4, item 4): hostile servers on 127.0.0.1
-- (a raw Python server written to a temp file, and the mock), hostile
-- arguments, and hostile policy tables. Every case is bounded by the
-- client's own small timeouts (1-2 s), checks the exact err.kind, and checks
-- that the token appears in no error. Timing itself is never asserted.
-- Also holds the regression tests for inputs the fuzzers found
-- (tests/fuzz/regress/).
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local socket = require("socket")

local tu = require("testutil")

local TOKEN = tu.token("abuse")
local ACCT, APP = tu.ACCOUNT, tu.APP
local POLICY = tu.everyone_policy("abuse")

-- One raw HTTP server for what the mock cannot do, started once for the
-- file (a python start costs more than most of these tests). The first
-- path segment picks the behaviour ("/silent/client/v4/..."); requests are
-- counted per mode (GET /__count/<mode>). Prints "port N" once listening;
-- serves until killed (each connection a thread).
local RAW = [==[
import socket, sys, threading, time, json
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(64)
print("port %d" % srv.getsockname()[1], flush=True)
counts = {}
lock = threading.Lock()
def read_req(c, buf):
    while b"\r\n\r\n" not in buf:
        r = c.recv(65536)
        if not r: return None, b""
        buf += r
    head, rest = buf.split(b"\r\n\r\n", 1)
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length": n = int(v)
    while len(rest) < n:
        r = c.recv(65536)
        if not r: break
        rest += r
    return head, rest[n:]
def envelope(result, info=None):
    d = {"success": True, "errors": [], "messages": [], "result": result}
    if info: d["result_info"] = info
    return json.dumps(d).encode()
def send(c, body, status="200 OK", extra=b""):
    c.sendall(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)
def serve(c):
    try:
        buf = b""
        while True:
            head, buf = read_req(c, buf)
            if head is None: return
            path = head.split(b" ")[1].decode()
            if path.startswith("/__count/"):
                with lock: n = counts.get(path[len("/__count/"):], 0)
                send(c, str(n).encode()); continue
            mode = path.split("/")[1]
            with lock:
                counts[mode] = counts.get(mode, 0) + 1
                n = counts[mode]
            if mode == "silent":
                time.sleep(3600)
            elif mode == "slowloris":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n")
                for i in range(400):
                    c.sendall(b" "); time.sleep(0.1)
            elif mode in ("huge", "huge_chunked"):
                block = b" " * (1 << 20)
                if mode == "huge":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % (100 << 20))
                    for i in range(100): c.sendall(block)
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
                    for i in range(100): c.sendall(b"100000\r\n" + block + b"\r\n")
                    c.sendall(b"0\r\n\r\n")
            elif mode == "badchunk":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"zz\r\n{\"success\":true}\r\n0\r\n\r\n")
                return
            elif mode == "pages":
                q = dict(kv.split("=") for kv in (path.split("?", 1) + [""])[1].split("&") if "=" in kv)
                p = int(q.get("page", "1"))
                pol = {"id": "%08d-0000-4000-8000-000000000000" % p, "name": "p%d" % p, "decision": "allow",
                       "include": [{"everyone": {}}]}
                send(c, envelope([pol], {"page": p, "per_page": 1, "count": 1,
                                         "total_count": 10000, "total_pages": 10000}))
            elif mode == "fold":
                # odd requests: a normal answer; even: the first header line
                # is an obs-fold continuation (libcurl 7.88 keeps a dangling
                # pointer to the previous transfer's last header)
                body = envelope({"id": "x"})
                if n % 2 == 1:
                    send(c, body, extra=b"X-First: 1\r\n")
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\n\tfolded: 1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            elif mode == "echo":
                send(c, envelope({"seen": head.decode("latin-1")}))
            elif mode == "null":
                send(c, envelope(None))
    except (OSError, ValueError):
        pass
    finally:
        try: c.close()
        except OSError: pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
]==]

local q = mockctl.shell_quote

local read_file = mockctl.read_file

local script_path, shared             -- the server's script; { pid =, port = }
local function raw_server(mode)
  if not shared then
    script_path = os.tmpname()
    local f = assert(io.open(script_path, "w"))
    f:write(RAW)
    f:close()
    local out = os.tmpname()
    local p = assert(io.popen("env -u LD_PRELOAD python3 " .. q(script_path) ..
      " </dev/null >" .. q(out) .. " 2>&1 & echo $!"))
    local pid = tonumber(p:read("l"))
    p:close()
    local port
    for _ = 1, 500 do                                  -- at most 10 s
      port = (read_file(out) or ""):match("port (%d+)")
      if port then break end
      socket.sleep(0.02)
    end
    os.remove(out)
    assert(port, "the raw server did not start")
    shared = { pid = pid, port = tonumber(port) }
  end
  local srv = { port = shared.port, url = "http://127.0.0.1:" .. shared.port .. "/" .. mode .. "/client/v4" }
  function srv.count()                                 -- requests in this mode so far
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv.port))
    c:send("GET /__count/" .. mode .. " HTTP/1.1\r\nHost: x\r\n\r\n")
    local len = 0
    while true do
      local line = c:receive("*l")
      if not line or line == "" then break end
      len = tonumber(line:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
    end
    local body = c:receive(len)
    c:close()
    return tonumber(body and body:match("%d+"))
  end
  return srv
end

-- Stop the raw server and remove its script (the next raw_server starts
-- it again).
local function stop_raw_server()
  if shared then os.execute("kill " .. shared.pid .. " 2>/dev/null") end
  if script_path then os.remove(script_path) end
  shared, script_path = nil, nil
end

-- Everything a failed call left behind must be free of the token.
local function no_secret(v, depth)
  depth = depth or 0
  if depth > 20 then return end
  if type(v) == "string" then
    assert(not v:find(TOKEN, 1, true), "the token leaked into: " .. v:sub(1, 200))
  elseif type(v) == "table" then
    for k, x in pairs(v) do no_secret(k, depth + 1); no_secret(x, depth + 1) end
    local mt = getmetatable(v)
    if mt and mt.__tostring then no_secret(tostring(v), depth + 1) end
  end
end

-- Run Lua code in a child interpreter (same LUA_PATH/CPATH) under
-- `timeout` (after the shell words in prefix, e.g. a ulimit), so that a
-- hang or a crash fails one test, not the suite.
-- Returns os.execute's three results and the child's output.
local function child(code, secs, prefix)
  local f, out = os.tmpname(), os.tmpname()
  local h = assert(io.open(f, "w"))
  h:write(code)
  h:close()
  local lua = os.getenv("LUA") or "lua5.4"
  local ok, how, rc = os.execute((prefix or "") .. "timeout " .. secs .. " " .. lua .. " " .. q(f) ..
    " >" .. q(out) .. " 2>&1")
  local text = read_file(out) or ""
  os.remove(f)
  os.remove(out)
  return ok, how, rc, text
end

-- Shell words that cap a child's memory at mb: ulimit -v, except under
-- ASan (its shadow memory needs terabytes of address space), where ASan's
-- own allocation limit does it.
local function mem_limit_prefix(mb)
  if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
    local opts = os.getenv("ASAN_OPTIONS") or ""
    return "ASAN_OPTIONS=" .. q(opts .. (opts ~= "" and ":" or "") ..
      "allocator_may_return_null=1:max_allocation_size_mb=" .. mb // 2) .. " "
  end
  return "ulimit -v " .. mb * 1024 .. "; "
end

local logs = {}
local function client(url, extra)
  -- 5 s: roomy enough for valgrind runs; the cases that are meant to time
  -- out set their own 1-2 s.
  local o = { account_id = ACCT, api_token = TOKEN, base_url = url, timeout = 5,
              connect_timeout = 5, max_retries = 0, rate_limit = false,
              on_log = function(level, msg) logs[#logs + 1] = tostring(level) .. " " .. tostring(msg) end }
  for k, v in pairs(extra or {}) do o[k] = v end
  local c, err = core.client(o)
  assert(c, err and tostring(err))
  return c
end

local function fails(kind, r, err)
  assert.is_nil(r)
  assert.is_table(err)
  no_secret(err)
  assert.equal(kind, err.kind, tostring(err))
  return err
end

describe("abuse: hostile servers", function()
  local start = raw_server

  after_each(function()
    for _, l in ipairs(logs) do no_secret(l) end
    logs = {}
  end)

  teardown(stop_raw_server)

  it("a server that accepts and never answers: timeout", function()
    local s = start("silent")
    local c = client(s.url, { timeout = 0.5 })
    local err = fails("timeout", c:get_app_policy(APP, APP))
    assert.equal(1, err.attempts)
    c:close()
  end)

  it("a slowloris body (a byte every 0.1 s, 40 s in all): timeout", function()
    local s = start("slowloris")
    local c = client(s.url, { timeout = 0.6 })
    fails("timeout", c:get_app_policy(APP, APP))
    c:close()
  end)

  it("a 100 MB body with Content-Length: refused at max_response_bytes", function()
    local s = start("huge")
    local c = client(s.url, { max_response_bytes = 1024 * 1024, timeout = 10 })
    local before = collectgarbage("count")
    local err = fails("decode", c:get_app_policy(APP, APP))
    assert.truthy(err.message:find("max_response_bytes", 1, true), err.message)
    assert.is_true(collectgarbage("count") - before < 8 * 1024, "the body went into Lua memory")
    c:close()
  end)

  it("a 100 MB chunked body: refused at max_response_bytes", function()
    local s = start("huge_chunked")
    local c = client(s.url, { max_response_bytes = 1024 * 1024, timeout = 10 })
    local err = fails("decode", c:get_app_policy(APP, APP))
    assert.truthy(err.message:find("max_response_bytes", 1, true), err.message)
    c:close()
  end)

  it("invalid chunked encoding: network", function()
    local s = start("badchunk")
    local c = client(s.url)
    fails("network", c:get_app_policy(APP, APP))
    c:close()
  end)

  it("10,000 pages: listing stops at the client's page cap", function()
    local s = start("pages")
    local c = client(s.url, { timeout = 5 })
    local list, err = c:list_app_policies(APP)
    local seen = s.count()
    assert(list or err, "neither a list nor an error")
    if list then
      assert.is_true(#list >= 1 and #list <= 1000, "listed " .. #list)
      assert.equal(#list, seen)
    else
      no_secret(err)
    end
    assert.is_true(seen <= 1001, seen .. " requests for one listing")
    assert.is_true(seen >= 2, "did not follow pages at all")
    c:close()
  end)

  it("a folded first header line on a reused handle: no memory error", function()
    -- found by fuzz_response (tests/fuzz/regress/fuzz_response/libcurl-fold-*):
    -- a heap use-after-free inside libcurl 7.88.1 (fixed in curl 8.1.0,
    -- "headers: clear (possibly) lingering pointer in init"). Only a
    -- sanitizer run (make asan) or valgrind sees it; here the second call
    -- must end in a result or a clean error.
    -- In a child process: on an unfixed system the heap is corrupted and
    -- glibc aborts ("realloc(): invalid pointer").
    local s = start("fold")
    local ok, how, rc, out = child(string.format([[
      local core = require("cfaccess.core")
      local c = assert(core.client{ account_id = %q, api_token = "abuse-fold-T0KEN", base_url = %q,
        timeout = 2, max_retries = 0, rate_limit = false })
      assert(c:get_app_policy(%q, %q))
      local r, err = c:get_app_policy(%q, %q)
      assert(r ~= nil or (err and (err.kind == "network" or err.kind == "decode")), tostring(err))
      c:close()
    ]], ACCT, s.url, APP, APP, APP, APP), 10)
    assert(ok, "the client process died (" .. tostring(how) .. " " .. tostring(rc) .. "): " .. out)
  end)

  it("sends the token only in the Authorization header, never in the URL", function()
    local s = start("echo")
    local c = client(s.url)
    local r = assert(c:get_app_policy(APP, APP))
    local head = r.seen
    assert.truthy(head:find("Authorization: Bearer " .. TOKEN, 1, true))
    assert.is_nil(head:match("^[^\r\n]*" .. TOKEN:gsub("%-", "%%-")))   -- request line
    c:close()
  end)
end)

describe("abuse: the mock", function()
  local m
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  it("Retry-After of a year: fails at once with err.retry_after", function()
    m:fault{ action = "rate_limit", retry_after = 31536000 }
    local c = client(m.base_url, { max_retries = 3 })
    local err = fails("api", c:create_app_policy(APP, POLICY))
    assert.equal(429, err.status)
    assert.equal(31536000, err.retry_after)
    assert.equal(1, #m:log(), "the client retried after a year-long Retry-After")
    c:close()
  end)

  local bad_ids = {
    { "../x", "dot-dot" }, { "../../zones", "dot-dot-slash" },
    { APP:sub(1, 8) .. "%2F" .. APP:sub(12), "percent-2F" }, { "a%2Fb", "short percent" },
    { APP .. "\0", "trailing NUL" }, { APP:sub(1, 10) .. "\0" .. APP:sub(12), "inner NUL" },
    { APP .. "\r\nX-Evil: 1", "CR/LF" }, { string.rep("a", 10240), "10 KB" },
    { "", "empty" }, { APP .. "/", "trailing slash" }, { " " .. APP, "space" },
  }
  for _, case in ipairs(bad_ids) do
    it("id " .. case[2] .. ": invalid, and no request is sent", function()
      local c = client(m.base_url)
      local id = case[1]
      fails("invalid", c:get_app_policy(id, APP))
      fails("invalid", c:get_app_policy(APP, id))
      fails("invalid", c:create_app_policy(id, POLICY))
      fails("invalid", c:update_app_policy(APP, id, POLICY))
      fails("invalid", c:delete_app_policy(APP, id))
      fails("invalid", c:delete_policy(id))
      fails("invalid", c:list_app_policies(id))
      assert.equal(0, #m:log())
      c:close()
    end)
  end

  it("a token with CR/LF, or NUL: usage error from client{}, token not echoed", function()
    for _, tok in ipairs{ TOKEN .. "\r\nX-Evil: 1", TOKEN .. "\n", TOKEN .. "\0x", "\r" .. TOKEN } do
      local c, err = core.client{ account_id = ACCT, api_token = tok, base_url = m.base_url }
      fails("usage", c, err)
    end
    assert.equal(0, #m:log())
  end)

  it("a base_url with CR/LF or a non-loopback http host: usage, no request", function()
    for _, url in ipairs{ m.base_url .. "\r\nX: y", "http://example.com/client/v4",
                          "http://127.0.0.1.example.com/client/v4", "ftp://127.0.0.1/x",
                          "file:///etc/passwd" } do
      local c, err = core.client{ account_id = ACCT, api_token = TOKEN, base_url = url }
      fails("usage", c, err)
    end
    assert.equal(0, #m:log())
  end)

  it("10 KB strings in a policy are sent intact", function()
    local c = client(m.base_url, { timeout = 5 })
    local name = string.rep("n", 10240)
    local prompt = string.rep("é", 5120)
    local r = assert(c:create_app_policy(APP, { name = name, decision = "allow", purpose_justification_prompt = prompt,
      include = { { email = { email = string.rep("a", 64) .. "@example.com" } } } }))
    assert.equal(name, r.name)
    assert.equal(prompt, r.purpose_justification_prompt)
    c:close()
  end)

  it("an invalid policy never leaves the process", function()
    local c = client(m.base_url)
    fails("invalid", c:create_app_policy(APP, { name = "x", decision = "allow", include = { { bogus = {} } } }))
    fails("invalid", c:create_app_policy(APP, setmetatable({}, { __index = function() error("boom") end })))
    assert.equal(0, #m:log())
    c:close()
  end)
end)

describe("abuse: TLS", function()
  local dir, m
  local function openssl(cn, san, name)
    local cmd = string.format("openssl req -x509 " ..
      "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=%s " ..
      "-addext subjectAltName=%s -keyout %s/%s.key -out %s/%s.pem >/dev/null 2>&1",
      cn, san, dir, name, dir, name)
    assert(os.execute(cmd), "openssl failed")
  end
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    openssl("wrong.example", "DNS:wrong.example", "wrong")
    m = mockctl.start{ token = TOKEN, tls_cert = dir .. "/wrong.pem", tls_key = dir .. "/wrong.key" }
    m:app("accounts", ACCT, APP)
  end)
  teardown(function()
    if m then m:stop() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("a certificate for another host name: network, even with cafile trusting it", function()
    local c = client(m.base_url, { cafile = dir .. "/wrong.pem" })
    local err = fails("network", c:get_app_policy(APP, APP))
    assert.is_nil(err.status)
    c:close()
    c = client(m.base_url)                               -- system trust only
    fails("network", c:get_app_policy(APP, APP))
    c:close()
  end)
end)

describe("abuse: hostile policy tables", function()
  it("100,000 rules encode (or fail cleanly) without a crash", function()
    local inc = {}
    for i = 1, 100000 do inc[i] = { email = { email = "u" .. i .. "@example.com" } } end
    local json, err = core.encode{ name = "big", decision = "allow", include = inc }
    if json then
      assert.equal(100000, select(2, json:gsub('"email":{', "")))
    else
      assert.equal("invalid", err.kind)
    end
    inc[50000] = { email = { email = 5 } }
    local ok, verr = core.validate{ name = "big", decision = "allow", include = inc }
    assert.is_nil(ok)
    assert.equal("invalid", verr.kind)
    assert.equal("include[50000].email.email", verr.problems[1].path)
  end)

  it("200 levels of nesting: invalid, not a stack overflow", function()
    local deep = {}
    local cur = deep
    for _ = 1, 200 do cur.email = {}; cur = cur.email end
    local ok, err = core.validate{ name = "deep", decision = "allow", include = { deep } }
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
    local t = {}
    for _ = 1, 200 do t = { t } end
    ok, err = core.validate({ name = "deep", decision = "allow", include = { { everyone = {} } }, x = t },
                            { allow_unknown = true })
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
  end)

  it("a __index that raises is never called (raw access)", function()
    local called = false
    local mt = { __index = function() called = true; error("boom") end }
    local p = setmetatable({ name = "x", include = { setmetatable({ everyone = {} }, mt) } }, mt)
    local ok, err = core.validate(p)
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
    assert.equal("decision", err.problems[1].path)
    assert.is_false(called)
    p.decision = "allow"
    assert.is_true(core.validate(p))
    assert.is_false(called)
  end)

  it("a string field whose __tostring lies is rejected as a table", function()
    local liar = setmetatable({}, { __tostring = function() return "allow" end,
                                    __name = "string" })
    local ok, err = core.validate{ name = liar, decision = liar, include = { { email = { email = liar } } } }
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
    local paths = {}
    for _, p in ipairs(err.problems) do paths[p.path] = p.message end
    assert.truthy(paths.name and paths.name:find("expected a string", 1, true), tostring(err))
    assert.truthy(paths.decision, tostring(err))
    assert.truthy(paths["include[1].email.email"], tostring(err))
  end)

  it("__pairs, __len and __eq are ignored", function()
    local mt = { __pairs = function() error("pairs") end, __len = function() return 1e9 end,
                 __eq = function() return true end }
    local p = setmetatable({ name = "x", decision = "allow",
                             include = setmetatable({ { everyone = {} } }, mt) }, mt)
    local json = assert(core.encode(p))
    assert.equal('{"name":"x","decision":"allow","include":[{"everyone":{}}]}', json)
  end)
end)

-- Inputs the fuzzers found (tests/fuzz/regress/). Each runs in a child
-- process under `timeout` so that a regression cannot hang the suite.
describe("fuzz regressions", function()
  teardown(stop_raw_server)

  it("fuzz_encode timeout-dag-self-cycles: a table reachable twice from itself " ..
     "under an unknown field (allow_unknown) is rejected quickly, not walked 2^64 times", function()
    local ok, how, rc = child([[
      local core = require("cfaccess.core")
      local x = {}
      x.a = x; x.b = x
      local p = { name = "n", decision = "allow", include = { { everyone = {} } }, extra = x }
      local json, err = core.encode(p, { allow_unknown = true })
      assert(json == nil and err.kind == "invalid")
      -- a DAG without a cycle: 2^40 paths through 40 tables
      local d = {}
      for _ = 1, 40 do d = { l = d, r = d } end
      p.extra = d
      json, err = core.encode(p, { allow_unknown = true })
      assert(json == nil or #json < 64 * 1024 * 1024)
    ]], 10)
    assert(ok, "the encode did not finish within 10 s (" .. tostring(how) .. " " .. tostring(rc) .. ")")
  end)

  it("fuzz_encode oom-dag-huge-strings: a pass-through DAG that would encode to " ..
     "gigabytes fails with nil, err instead of allocating them", function()
    -- 160 KB string reachable 2^20 ways under an unknown field: the visit
    -- budget alone allows ~100,000 x 160 KB of JSON. Run with 1.5 GB of
    -- address space so that an unbounded encode cannot take the machine.
    local ok, how, rc, out = child([[
      local core = require("cfaccess.core")
      local d = { s = string.rep("a", 160 * 1024) }
      for _ = 1, 20 do d = { l = d, r = d } end
      local p = { name = "n", decision = "allow", include = { { everyone = {} } }, extra = d }
      local okc, json, err = pcall(core.encode, p, { allow_unknown = true })
      assert(okc, "raised instead of returning nil, err: " .. tostring(json))
      assert(json == nil and err.kind == "invalid", "encoded " .. tostring(json and #json) .. " bytes")
    ]], 30, mem_limit_prefix(1536))
    assert(ok, "(" .. tostring(how) .. " " .. tostring(rc) .. ") " .. out)
  end)

  it("fuzz_encode timeout-dag-huge-keys: huge keys and sparse tables reachable " ..
     "many ways cost no more than the budgets allow", function()
    local ok, how, rc, out = child([[
      local core = require("cfaccess.core")
      local big = string.rep("k", 100 * 1024)
      local wide = { [big .. "1"] = 1, [big .. "2"] = 2 }   -- 200 KB of keys
      local sparse = {}
      for i = 1, 100000, 2 do sparse[i] = i end             -- not a list
      for _, leaf in ipairs{ wide, sparse } do
        local d = leaf
        for _ = 1, 20 do d = { l = d, r = d } end
        local p = { name = "n", decision = "allow", include = { { everyone = {} } }, extra = d }
        for _, f in ipairs{ core.validate, core.encode } do
          local r, err = f(p, { allow_unknown = true })
          assert(r == nil and err.kind == "invalid", "accepted")
        end
      end
    ]], 20)
    assert(ok, "(" .. tostring(how) .. " " .. tostring(rc) .. ") " .. tostring(out))
  end)

  it("fuzz_response result-null-no-err: success with result null returns a table or nil, err", function()
    -- the raw server in mode "null" answers every request with
    -- {"success":true,...,"result":null} (killed at the end of the file:
    -- nothing waits on a server's own timeouts)
    local s = raw_server("null")
    local c = client(s.url)
    local r, err = c:get_app_policy(APP, APP)
    c:close()
    local seen = s.count()
    assert(r ~= nil or err ~= nil, "get_app_policy returned nil without an error")
    if r == nil then no_secret(err) end
    assert.equal(1, seen)                              -- one answer, no retry
  end)
end)
