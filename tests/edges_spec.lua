-- The client's edges (issue 10 items 2, 5, 6, 7, 8, 9 and parts of 12):
-- the credential after close() from a callback, SIGINT and hook errors,
-- fork(), timeouts below 1 ms, proxies, error codes as sent, short
-- credentials, retry log lines, NO_PROXY against an explicit proxy.
-- Servers: the mock, or a raw Python server on 127.0.0.1 for what the mock
-- cannot do (echo the request, hold it, order two answers). Every wait is
-- bounded; elapsed time is never asserted.
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local socket = require("socket")

local q = mockctl.shell_quote
local read_file = mockctl.read_file

local TOKEN = "edges-T0KEN-must-not-leak-4b1d"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local FAST = "00000000-0000-4000-8000-000000000001"
local SLOW = "00000000-0000-4000-8000-000000000002"
local LUA = os.getenv("LUA") or "lua5.4"

-- Raw server. Modes (argv[1]):
--   echo: a GET of FAST gets a plain 500 at once; a GET of SLOW waits until
--         FAST was answered, then gets a 500 whose errors/messages echo the
--         whole request head (Authorization included), as a hostile proxy
--         might;
--   hold: reads the request and never answers;
--   ratelimit: 429 with Retry-After: 30.
-- GET /__count answers the number of API requests seen.
local RAW = [==[
import socket, sys, threading, time, json
mode = sys.argv[1]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(64)
print("port %d" % srv.getsockname()[1], flush=True)
count = [0]
fast_done = threading.Event()
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
def send(c, body, status="200 OK", extra=b""):
    c.sendall(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)
def failure(msg):
    return json.dumps({"success": False, "result": None, "errors": [{"code": 10001, "message": msg}],
                       "messages": [{"code": 1, "message": msg}]}).encode()
def serve(c):
    try:
        buf = b""
        while True:
            head, buf = read_req(c, buf)
            if head is None: return
            path = head.split(b" ")[1].decode()
            if path.startswith("/__count"):
                send(c, str(count[0]).encode()); continue
            count[0] += 1
            if mode == "echo":
                if "0001" in path[-4:]:
                    send(c, failure("fast failure"), "500 Internal Server Error")
                    fast_done.set()
                else:
                    fast_done.wait(30); time.sleep(0.3)
                    send(c, failure("you sent: " + head.decode("latin-1")), "500 Internal Server Error")
            elif mode == "hold":
                c.settimeout(120)
                while c.recv(65536): pass
                return
            elif mode == "ratelimit":
                send(c, failure("slow down"), "429 Too Many Requests", b"Retry-After: 30\r\n")
    except (OSError, ValueError):
        pass
    finally:
        try: c.close()
        except OSError: pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
]==]

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local script_path
local servers = {}
local function raw_server(mode)
  if not script_path then
    script_path = os.tmpname()
    write_file(script_path, RAW)
  end
  local out = os.tmpname()
  local p = assert(io.popen("env -u LD_PRELOAD python3 " .. q(script_path) .. " " .. mode ..
    " </dev/null >" .. q(out) .. " 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  local port
  for _ = 1, 500 do                                    -- at most 10 s
    port = (read_file(out) or ""):match("port (%d+)")
    if port then break end
    socket.sleep(0.02)
  end
  os.remove(out)
  assert(port, "raw server " .. mode .. " did not start")
  local srv = { pid = pid, port = tonumber(port), url = "http://127.0.0.1:" .. port .. "/client/v4" }
  function srv.stop() os.execute("kill " .. pid .. " 2>/dev/null") end
  function srv.count()                                 -- API requests seen so far
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv.port))
    c:send("GET /__count HTTP/1.1\r\nHost: x\r\n\r\n")
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
  servers[#servers + 1] = srv
  return srv
end

-- Nothing of the token anywhere in v (strings, keys, tostring of tables).
local function no_token(v, depth)
  depth = depth or 0
  if depth > 20 then return end
  if type(v) == "string" then
    assert(not v:find(TOKEN, 1, true), "the token leaked into: " .. v:sub(1, 300))
  elseif type(v) == "table" then
    for k, x in pairs(v) do no_token(k, depth + 1); no_token(x, depth + 1) end
    local mt = getmetatable(v)
    if mt and mt.__tostring then no_token(tostring(v), depth + 1) end
  end
end

local function wait_until(what, pred, secs)            -- bounded polling
  local deadline = socket.gettime() + (secs or 10)
  while not pred() do
    assert(socket.gettime() < deadline, "gave up waiting for " .. what)
    socket.sleep(0.02)
  end
end

-- A child interpreter (same LUA_PATH/CPATH) running `code` in the
-- background. Returns { pid, out (file), rc () -> exit status or nil }.
local function spawn(code, env)
  local f, out, pidf, rcf = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
  write_file(f, code)
  os.remove(rcf)
  os.execute("{ " .. (env or "") .. " " .. LUA .. " " .. q(f) .. " </dev/null >" .. q(out) ..
    " 2>&1 & echo $! >" .. q(pidf) .. "; wait $!; echo $? >" .. q(rcf) .. "; } >/dev/null 2>&1 &")
  local ch = { out = out }
  wait_until("the child's pid", function()
    ch.pid = tonumber((read_file(pidf) or ""):match("%d+"))
    return ch.pid ~= nil
  end)
  function ch.rc() return tonumber((read_file(rcf) or ""):match("%d+")) end
  function ch.text() return read_file(out) or "" end
  function ch.kill() os.execute("kill -9 " .. ch.pid .. " 2>/dev/null") end
  function ch.clean()
    ch.kill()
    for _, x in ipairs{ f, out, pidf, rcf } do os.remove(x) end
  end
  return ch
end

teardown(function()
  for _, s in ipairs(servers) do s.stop() end
  if script_path then os.remove(script_path) end
end)

describe("edges: the credential after close() from a callback (item 2)", function()
  it("close() in on_progress while another op is in flight: the echo is redacted", function()
    local s = raw_server("echo")
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = s.url,
      timeout = 30, max_retries = 0, rate_limit = false })
    local closed_at
    local results = assert(c:batch({
      { op = "get_policy", policy_id = FAST },
      { op = "get_policy", policy_id = SLOW },
    }, { concurrency = 2, on_progress = function(done)
      if not closed_at then closed_at = done; c:close() end
    end }))
    assert.equal(1, closed_at)
    assert.equal("cfaccess.client (closed)", tostring(c))
    local err = assert(results[2].err)
    -- the server did echo the header, and what came back is redacted
    assert.truthy(err.message:find("Authorization: Bearer [redacted]", 1, true), err.message)
    no_token(results)
    no_token(err.errors)
    no_token(err.messages)
    no_token(tostring(err))
  end)

  it("close() in on_log while another op is in flight: no on_log line, no err shows it", function()
    local s = raw_server("echo")
    local lines = {}
    local c
    c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = s.url,
      timeout = 30, max_retries = 1, rate_limit = false,
      on_log = function(level, msg)
        lines[#lines + 1] = level .. " " .. msg
        c:close()
      end })
    local results = assert(c:batch({
      { op = "get_policy", policy_id = FAST },
      { op = "get_policy", policy_id = SLOW },
    }, { concurrency = 2 }))
    local echoed = false
    for _, l in ipairs(lines) do
      no_token(l)
      if l:find("Bearer [redacted]", 1, true) then echoed = true end
    end
    assert.is_true(echoed, "the echo was not logged: " .. table.concat(lines, "\n"))
    no_token(results)
    assert.equal("usage", results[1].err.kind)   -- its retry found the client closed
  end)
end)

describe("edges: SIGINT and hook errors propagate (item 5)", function()
  local function run_and_interrupt(mode, code, ready_count, settle)
    local s = raw_server(mode)
    local ch = spawn(string.format(code, ACCT, TOKEN, s.url))
    local ok, e = pcall(function()
      wait_until("the child's requests", function() return (s.count() or 0) >= ready_count end, 20)
      if settle then socket.sleep(settle) end     -- into the wait (not asserted)
      os.execute("kill -INT " .. ch.pid)
      -- bounded: the server holds the request for 120 s, the Retry-After
      -- is 30 s; an interrupt that is noticed ends the child long before
      wait_until("the child to exit after SIGINT", function() return ch.rc() ~= nil end, 20)
      local text = ch.text()
      assert.truthy(text:find("interrupted!", 1, true), text)
      assert.falsy(text:find("continued", 1, true), text)
      assert.are_not.equal(0, ch.rc())
    end)
    ch.clean()
    s.stop()
    assert(ok, e)
  end

  it("a batch waiting for its answers (curl_multi_poll) dies at once with interrupted!", function()
    run_and_interrupt("hold", [[
      local core = require("cfaccess.core")
      local c = assert(core.client{ account_id = %q, api_token = %q, base_url = %q,
        timeout = 120, max_retries = 0, rate_limit = false })
      local r, err = c:batch({
        { op = "get_policy", policy_id = "00000000-0000-4000-8000-000000000001" },
        { op = "get_policy", policy_id = "00000000-0000-4000-8000-000000000002" },
      }, { concurrency = 2 })
      print("continued", r, err)
    ]], 2)
  end)

  it("a call sleeping through Retry-After dies at once with interrupted!", function()
    run_and_interrupt("ratelimit", [[
      local core = require("cfaccess.core")
      local c = assert(core.client{ account_id = %q, api_token = %q, base_url = %q,
        timeout = 10, max_retries = 2, rate_limit = false })
      local r, err = c:get_policy("00000000-0000-4000-8000-000000000001")
      print("continued", r, err)
    ]], 1, 0.5)
  end)

  describe("with the mock", function()
    local m
    local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } },
      function(mock) m = mock end)
    setup(hooks.setup)
    teardown(hooks.teardown)
    before_each(hooks.before_each)

    it("an error a debug hook raises while the response is decoded propagates as itself", function()
      local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
        max_retries = 0, rate_limit = false })
      -- the private decoder is the function the registry keeps under a
      -- light userdata key; raise from a call hook when it is called
      local decoders = {}
      for k, v in pairs(debug.getregistry()) do
        if type(k) == "userdata" and getmetatable(k) == nil and type(v) == "function" then
          decoders[v] = true
        end
      end
      assert.is_not_nil(next(decoders), "no decoder found in the registry")
      local armed = true
      debug.sethook(function()
        local info = debug.getinfo(2, "f")
        if armed and info and decoders[info.func] then
          armed = false
          error("hook-boom")
        end
      end, "c")
      local ok, r, err = pcall(c.get_policy, c, FAST)
      debug.sethook()
      assert.is_false(armed, "the hook never saw the decoder")
      assert.is_false(ok, "the hook's error became a result: " .. tostring(r) .. " " .. tostring(err))
      assert.truthy(tostring(r):find("hook-boom", 1, true), tostring(r))
      -- the client is still usable: nothing was left on the multi handle
      local _, err2 = c:get_policy(FAST)
      assert.equal("api", err2.kind)
      assert.equal(404, err2.status)
      c:close()
    end)
  end)
end)

describe("edges: fork() (item 6)", function()
  local m, fork
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } },
    function(mock) m = mock end)
  setup(function()
    hooks.setup()
    -- a tiny Lua C module with fork, waitpid and _exit, built here
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    write_file(dir .. "/forktest.c", [[
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
static int l_fork(lua_State *L) { lua_pushinteger(L, (lua_Integer)fork()); return 1; }
static int l_wait(lua_State *L) {
  int st = 0;
  if (waitpid((pid_t)luaL_checkinteger(L, 1), &st, 0) < 0) return 0;
  lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return 1;
}
static int l_exit(lua_State *L) { _exit((int)luaL_checkinteger(L, 1)); return 0; }
int luaopen_forktest(lua_State *L);
int luaopen_forktest(lua_State *L) {
  static const luaL_Reg f[] = {{"fork", l_fork}, {"wait", l_wait}, {"exit", l_exit}, {NULL, NULL}};
  luaL_newlib(L, f);
  return 1;
}
]])
    local cc = os.getenv("CC") or "cc"
    assert(os.execute("env -u LD_PRELOAD " .. cc .. " -shared -fPIC $(pkg-config --cflags lua5.4) -o " ..
      q(dir .. "/forktest.so") .. " " .. q(dir .. "/forktest.c")), "cannot build the fork test module")
    fork = assert(package.loadlib(dir .. "/forktest.so", "luaopen_forktest"))()
    os.execute("rm -rf " .. q(dir))
  end)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  it("a client used in a forked child is a usage error, and the parent's connection is its own", function()
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
      rate_limit = false })
    local made = assert(c:create_policy({ name = "forked", decision = "allow",
      include = { { everyone = {} } } }))
    assert(c:get_policy(made.id))              -- a keep-alive connection now exists
    io.stdout:flush()
    io.stderr:flush()
    local pid = fork.fork()
    if pid == 0 then                             -- the child: never returns
      local ok, code = pcall(function()
        local r, err = c:get_policy(made.id)
        if r ~= nil then return 2 end
        if err.kind ~= "usage" or not err.message:find("fork()", 1, true) then return 3 end
        local r2, err2 = c:batch({ { op = "get_policy", policy_id = made.id } })
        if r2 ~= nil or err2.kind ~= "usage" then return 4 end
        c:close()                                -- must leave the parent's sockets alone
        return 0
      end)
      fork.exit(ok and code or 5)
    end
    assert.is_true(pid > 0, "fork failed")
    assert.equal(0, fork.wait(pid))
    -- the parent goes on, on its own connection
    for _ = 1, 2 do
      local r = assert(c:get_policy(made.id))
      assert.equal(made.id, r.id)
    end
    assert.equal(3, m:count("GET"))              -- the child sent nothing
    c:close()
  end)
end)

describe("edges: options", function()
  local base = { account_id = ACCT, api_token = TOKEN, base_url = "http://127.0.0.1:9/client/v4" }
  local function opts(extra)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(extra) do o[k] = v end
    return o
  end

  it("timeouts below 1 ms are usage errors (item 7)", function()
    for _, name in ipairs{ "timeout", "connect_timeout" } do
      for _, v in ipairs{ 0.0005, 0.0009999, 0 } do
        local c, err = core.client(opts{ [name] = v })
        assert.is_nil(c, name .. " = " .. v .. " was accepted")
        assert.equal("usage", err.kind)
        assert.equal("client option " .. name .. ": expected a number >= 0.001, got " ..
          tostring(v), err.message)
      end
      local c = assert(core.client(opts{ [name] = 0.001 }))
      c:close()
    end
  end)

  it("a proxy with a plain-http base URL is refused before any connection (item 8)", function()
    local proxy = assert(socket.bind("127.0.0.1", 0))
    local _, port = proxy:getsockname()
    local c, err = core.client(opts{ proxy = "http://127.0.0.1:" .. port })
    assert.is_nil(c)
    assert.equal("usage", err.kind)
    assert.truthy(err.message:find("proxy needs an https base_url", 1, true), err.message)
    proxy:settimeout(0)
    assert.is_nil(proxy:accept(), "the proxy was contacted")
    proxy:close()
    -- https with a proxy stays allowed
    local ok = assert(core.client(opts{ base_url = "https://127.0.0.1:9/client/v4",
      proxy = "http://127.0.0.1:" .. port }))
    ok:close()
  end)

  it("credentials shorter than 16 characters are usage errors that never show them (item 12)", function()
    for _, o in ipairs{ { api_token = "t" }, { api_token = "short-T0KEN-15c" },
                        { api_key = "k3y-V4LUE", api_email = "a@example.com" } } do
      local full = opts(o)
      if o.api_key then full.api_token = nil end
      local c, err = core.client(full)
      assert.is_nil(c)
      assert.equal("usage", err.kind)
      assert.truthy(err.message:find("too short: expected at least 16 characters", 1, true), err.message)
      for _, v in pairs(o) do
        if type(v) == "string" and #v > 4 and not v:find("@", 1, true) then
          assert.falsy(err.message:find(v, 1, true), err.message)
        end
      end
    end
    local c = assert(core.client(opts{ api_token = "sixteen-chars-ok" }))
    c:close()
  end)

  it("an explicit proxy carries the request whatever NO_PROXY says (item 12)", function()
    -- the child's client goes to https://127.0.0.1:<port> through the proxy
    -- on the same port, with NO_PROXY naming that host: the first bytes
    -- the listener reads tell which way it came (CONNECT, or a TLS hello)
    local lsn = assert(socket.bind("127.0.0.1", 0))
    local _, port = lsn:getsockname()
    local ch = spawn(string.format([[
      local core = require("cfaccess.core")
      local c = assert(core.client{ account_id = %q, api_token = %q,
        base_url = "https://127.0.0.1:%d/client/v4", proxy = "http://127.0.0.1:%d",
        timeout = 10, connect_timeout = 10, max_retries = 0, rate_limit = false })
      local r, err = c:get_policy("00000000-0000-4000-8000-000000000001")
      print("done", err and err.kind)
    ]], ACCT, TOKEN, port, port), "NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost")
    lsn:settimeout(20)
    local conn = lsn:accept()
    local first
    if conn then
      conn:settimeout(10)
      first = conn:receive(7)
      conn:close()
    end
    lsn:close()
    local ok, e = pcall(function()
      wait_until("the child to finish", function() return ch.rc() ~= nil end, 20)
    end)
    local text = ch.text()
    ch.clean()
    assert(ok, e)
    assert.equal("CONNECT", first, "the request did not go through the proxy: " .. text)
  end)
end)

describe("edges: the mock", function()
  local m
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } },
    function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  it("error codes are kept as sent: 4294979426 is not 12130 (item 9)", function()
    local lines = {}
    local c = m:client(ACCT, TOKEN, lines, { max_retries = 2 })
    m:fault{ action = "status", status = 502, method = "POST" }
    m:fault{ action = "status", status = 400, method = "POST",
             errors = { { code = 4294979426, message = "precedence taken" } } }
    local r, err = c:create_app_policy(APP, { name = "codes", decision = "allow",
      include = { { everyone = {} } } })
    assert.is_nil(r)
    assert.equal("api", err.kind)
    assert.equal(4294979426, err.errors[1].code)
    assert.is_true(math.type(err.errors[1].code) == "integer")
    assert.truthy(err.message:find("(code 4294979426)", 1, true), err.message)
    -- one listing (after the 502), none after the 400: 12130 (the
    -- truncation) is a duplicate-precedence code, 4294979426 is not
    assert.equal(1, m:count("GET"), table.concat(lines, "\n"))
    c:close()
  end)

  it("a retry log line states the request once and the wait rounded (item 12)", function()
    local lines = {}
    local c = m:client(ACCT, TOKEN, lines, { max_retries = 1 })
    m:fault{ action = "status", status = 500, method = "GET" }
    assert(c:list_policies())
    local line
    for _, l in ipairs(lines) do if l:find("retry 1 of 1", 1, true) then line = l end end
    assert(line, table.concat(lines, "\n"))
    local path = "/accounts/" .. ACCT .. "/access/policies"
    local _, n = line:gsub(path:gsub("%p", "%%%0"), "")
    assert.equal(1, n, line)
    assert.truthy(line:match(" in %d+%.%d%d s$"), line)
    c:close()
  end)
end)
