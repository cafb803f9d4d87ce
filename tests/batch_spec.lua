-- client:batch against the mock: results in input order, validation of
-- every op before anything is sent, per-op failures isolated, on_progress,
-- real concurrency, the no-duplicate create inside a batch, and a batch of
-- 1,000. Concurrency is checked by the overlap of delayed requests with
-- wide margins, never by a timed assertion on performance.
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local socket = require("socket")

local tu = require("testutil")

local TOKEN = tu.token("batch")
local ACCT, APP, APP2, APP3, MISSING = tu.ACCOUNT, tu.APP, tu.APP2, tu.APP3, tu.OTHER

local policy = tu.named_policy

describe("client:batch", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN },
    { { "accounts", ACCT, APP }, { "accounts", ACCT, APP2 }, { "accounts", ACCT, APP3 } },
    function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  before_each(function()
    lines = {}
  end)

  local function client(opts) return m:client(ACCT, TOKEN, lines, opts) end

  it("runs mixed ops and returns results in input order", function()
    local c = client()
    local existing = assert(c:create_app_policy(APP, policy("existing")))
    local old = assert(c:create_policy(policy("old reusable")))
    local ops = {
      { op = "create_app_policy", app_id = APP, policy = policy("first") },
      { op = "update_app_policy", app_id = APP, policy_id = existing.id,
        policy = policy("renamed") },
      { op = "get_app_policy", app_id = APP, policy_id = existing.id },
      { op = "create_policy", policy = policy("reusable") },
      { op = "list_policies" },
      { op = "delete_policy", policy_id = old.id },
      { op = "create_app_policy", app_id = APP2, policy = policy("second") },
    }
    local results, err = c:batch(ops, { concurrency = 4 })
    assert.is_nil(err)
    assert.equal(#ops, #results)
    for i, r in ipairs(results) do assert.is_true(r.ok, "op " .. i) end
    assert.equal("first", results[1].result.name)
    assert.equal("renamed", results[2].result.name)
    assert.equal(existing.id, results[2].result.id)
    assert.equal(existing.id, results[3].result.id)
    assert.equal("reusable", results[4].result.name)
    assert.equal("table", type(results[5].result))
    assert.equal(old.id, results[6].result.id)
    assert.equal("second", results[7].result.name)
    -- the state the mock holds agrees
    local names = {}
    for _, p in ipairs(m:state()) do names[p.name] = true end
    assert.is_true(names.first and names.renamed and names.second and names.reusable)
    assert.is_nil(names["old reusable"])
    c:close()
  end)

  it("follows every page of a list op", function()
    local c = client()
    for i = 1, 5 do assert(c:create_app_policy(APP3, policy("p" .. i))) end
    local results = assert(c:batch({
      { op = "list_app_policies", app_id = APP3, per_page = 2 },
      { op = "list_app_policies", app_id = APP3, page = 2, per_page = 2 },
    }))
    assert.equal(5, #results[1].result)
    assert.equal(2, #results[2].result)
    assert.equal("p3", results[2].result[1].name)
    c:close()
  end)

  it("validates every op first and sends nothing when one is invalid", function()
    local c = client()
    local results, err = c:batch({
      { op = "create_app_policy", app_id = APP, policy = policy("fine") },
      { op = "delete_app_policy", app_id = "../x", policy_id = MISSING },
      { op = "create_app_policy", app_id = APP,
        policy = { name = "bad", decision = "allow", include = { { email = { email = 42 } } } } },
      { op = "frobnicate" },
      { op = "get_policy" },
      { op = "list_policies", per_page = 0, extra = true },
      "not a table",
    })
    assert.is_nil(results)
    assert.equal("invalid", err.kind)
    local paths = {}
    for _, p in ipairs(err.problems) do paths[p.path] = p.message end
    assert.truthy(paths["ops[2].app_id"])
    assert.truthy(paths["ops[3].policy.include[1].email.email"], tostring(err))
    assert.truthy(paths["ops[4].op"])
    assert.truthy(paths["ops[5].policy_id"])
    assert.truthy(paths["ops[6].per_page"])
    assert.truthy(paths["ops[6].extra"])
    assert.truthy(paths["ops[7]"])
    assert.is_nil(paths["ops[1].policy"])
    assert.truthy(tostring(err):find("ops[", 1, true))
    assert.equal(0, #m:log())
    c:close()
  end)

  it("rejects bad options as usage errors and wrong types by raising", function()
    local c = client()
    local r, err = c:batch({}, { concurrency = 0 })
    assert.is_nil(r)
    assert.equal("usage", err.kind)
    r, err = c:batch({}, { concurency = 2 })
    assert.is_nil(r)
    assert.equal("usage", err.kind)
    assert.has_error(function() c:batch("ops") end)
    assert.same({}, assert(c:batch({})))
    c:close()
  end)

  it("isolates failing ops: 404, 500 after retries, success=false", function()
    local c = client()
    -- (retry-after-ms: 1 stands in for the backoff, which this test is not about)
    m:fault{ action = "status", status = 500, method = "POST", path = APP2, times = -1,
             headers = { ["retry-after-ms"] = "1" } }
    m:fault{ action = "success_false", method = "POST", path = APP3, times = -1 }
    local ops = {}
    for i = 1, 3 do ops[#ops + 1] = { op = "create_app_policy", app_id = APP, policy = policy("ok" .. i) } end
    ops[#ops + 1] = { op = "get_app_policy", app_id = APP, policy_id = MISSING }
    ops[#ops + 1] = { op = "create_app_policy", app_id = APP2, policy = policy("five hundred") }
    ops[#ops + 1] = { op = "create_app_policy", app_id = APP3, policy = policy("said no") }
    for i = 1, 3 do ops[#ops + 1] = { op = "create_app_policy", app_id = APP, policy = policy("ok" .. (i + 3)) } end
    local results = assert(c:batch(ops, { concurrency = 4 }))
    assert.equal(9, #results)
    for _, i in ipairs{ 1, 2, 3, 7, 8, 9 } do
      assert.is_true(results[i].ok, "op " .. i)
      assert.equal("ok" .. (i <= 3 and i or i - 3), results[i].result.name)
    end
    assert.is_false(results[4].ok)
    assert.equal("api", results[4].err.kind)
    assert.equal(404, results[4].err.status)
    assert.is_false(results[5].ok)
    assert.equal(500, results[5].err.status)
    assert.equal(3, results[5].err.attempts)
    assert.is_false(results[6].ok)
    assert.equal("api", results[6].err.kind)
    assert.truthy(results[6].err.message:find("success=false", 1, true))
    assert.equal(6, #m:state())
    c:close()
  end)

  it("calls on_progress once per op with increasing done", function()
    local c = client()
    local ops, calls = {}, {}
    for i = 1, 12 do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("p" .. i) } end
    assert(c:batch(ops, { concurrency = 5, on_progress = function(done, total)
      calls[#calls + 1] = { done, total }
    end }))
    assert.equal(12, #calls)
    for i, call in ipairs(calls) do
      assert.equal(i, call[1])
      assert.equal(12, call[2])
    end
    c:close()
  end)

  it("propagates an error raised by on_progress and stays usable", function()
    local c = client()
    local ops = {}
    for i = 1, 6 do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("e" .. i) } end
    local ok, msg = pcall(c.batch, c, ops, { concurrency = 3, on_progress = function(done)
      if done == 2 then error("stop here") end
    end })
    assert.is_false(ok)
    assert.truthy(tostring(msg):find("stop here", 1, true))
    -- the client still works: no transfer was left on its multi handle
    assert(c:create_app_policy(APP, policy("after")))
    local results = assert(c:batch({ { op = "list_app_policies", app_id = APP } }))
    assert.is_true(results[1].ok)
    c:close()
  end)

  it("fails only the op that on_progress made invalid after the check", function()
    local c = client()
    local ops = {}
    for i = 1, 4 do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("m" .. i) } end
    local results = assert(c:batch(ops, { concurrency = 1, on_progress = function(done)
      if done == 1 then ops[3].policy = { name = "broken", decision = "maybe" } end
    end }))
    assert.is_true(results[1].ok and results[2].ok and results[4].ok)
    assert.is_false(results[3].ok)
    assert.equal("invalid", results[3].err.kind)
    assert.equal("ops[3].policy.decision", results[3].err.problems[1].path)
    -- m:count counts this test's log generation only: a create the previous
    -- test abandoned (its on_progress raised) can reach the mock after the
    -- reset, and the mock files it under the previous generation
    assert.equal(3, m:count("POST"))
    c:close()
  end)

  it("fails the ops not yet started when on_progress closes the client", function()
    local c = client()
    local ops = {}
    for i = 1, 5 do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("c" .. i) } end
    local results = assert(c:batch(ops, { concurrency = 1, on_progress = function(done)
      if done == 2 then c:close() end
    end }))
    assert.is_true(results[1].ok and results[2].ok)
    for i = 3, 5 do
      assert.is_false(results[i].ok)
      assert.equal("usage", results[i].err.kind)
      assert.truthy(results[i].err.message:find("closed", 1, true))
    end
    assert.equal(2, m:count("POST"))
    assert.has_error(function() c:batch({}) end)
  end)

  it("runs ops concurrently (delays overlap) on several connections", function()
    local c = client()
    local N, DELAY = 6, 0.5
    m:fault{ action = "delay", seconds = DELAY, method = "POST", times = N }
    local ops = tu.creates(N, "d")
    -- When the first op is done (its answer was held DELAY), how many of
    -- the others had reached the mock? Run one at a time: none; here the
    -- slots start together, so they all have (a count, not a duration:
    -- the speed-up itself is the benchmark's to measure).
    local arrived
    local results = assert(c:batch(ops, { concurrency = N, on_progress = function(done)
      if done == 1 then arrived = m:count("POST") end
    end }))
    for i = 1, N do assert.is_true(results[i].ok) end
    assert.truthy(arrived >= 2, "POSTs at the mock when the first was answered: " .. arrived)
    local conns = {}
    for _, q in ipairs(m:log()) do conns[q.connection] = true end
    local nconn = 0
    for _ in pairs(conns) do nconn = nconn + 1 end
    assert.truthy(nconn > 1, "connections: " .. nconn)
    c:close()
  end)

  it("never duplicates a create after commit_then_fail inside a batch", function()
    local c = client()
    m:fault{ action = "commit_then_fail", method = "POST", path = APP2, headers = { ["retry-after-ms"] = "1" } }
    m:fault{ action = "commit_then_fail", ["then"] = "reset", method = "POST", path = APP3 }
    local ops = {
      { op = "create_app_policy", app_id = APP, policy = policy("a") },
      { op = "create_app_policy", app_id = APP2, policy = policy("once-500") },
      { op = "create_app_policy", app_id = APP3, policy = policy("once-reset") },
      { op = "create_app_policy", app_id = APP, policy = policy("b") },
    }
    local results = assert(c:batch(ops, { concurrency = 4 }))
    for i = 1, 4 do assert.is_true(results[i].ok, "op " .. i) end
    assert.equal("once-500", results[2].result.name)
    assert.equal("once-reset", results[3].result.name)
    local byname = {}
    for _, p in ipairs(m:state()) do byname[p.name] = (byname[p.name] or 0) + 1 end
    assert.same({ a = 1, b = 1, ["once-500"] = 1, ["once-reset"] = 1 }, byname)
    assert.equal(4, m:count("POST"))
    assert.truthy(table.concat(lines, "\n"):find("listing", 1, true))
    c:close()
  end)

  it("runs a batch of 1,000 ops", function()
    local c = client{ on_log = nil }
    local ops = {}
    for i = 1, 1000 do
      ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("n" .. i) }
    end
    local last = 0
    local results = assert(c:batch(ops, { concurrency = 8,
      on_progress = function(done) last = done end }))
    assert.equal(1000, #results)
    assert.equal(1000, last)
    for i = 1, 1000 do
      assert.is_true(results[i].ok)
      assert.equal("n" .. i, results[i].result.name)
    end
    assert.equal(1000, m:count("POST"))
    c:close()
  end)
end)

-- Over HTTPS a batch waits for a connection that can multiplex (PIPEWAIT):
-- against an nginx that offers HTTP/2, every op shares one connection.
describe("client:batch over HTTP/2", function()
  local dir, pidfile

  local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1", "r"))
    local out = p:read("a")
    local ok = p:close()
    return ok, out
  end

  local readfile = mockctl.read_file

  teardown(function()
    local pid = pidfile and readfile(pidfile)
    if pid and pid:match("^%d+") then
      -- nginx (daemon on) leads its own process group: SIGKILL to the group
      -- ends master and workers at once. Gone means no process or a zombie
      -- (an orphan's zombie waits for PID 1 to reap it: `kill -0` still
      -- succeeds on it, which kept this loop waiting for 1.5 s or more).
      local n = pid:match("^%d+")
      os.execute("kill -KILL -" .. n .. " 2>/dev/null")
      for _ = 1, 50 do
        local stat = readfile("/proc/" .. n .. "/stat")
        local state = stat and stat:match("^%d+ %b() (%a)")
        if not state or state == "Z" or state == "X" then break end
        socket.sleep(0.05)
      end
    end
    if dir then os.execute("rm -rf " .. mockctl.shell_quote(dir)) end
  end)

  it("multiplexes every op on one connection", function()
    local ok, out = sh("command -v nginx || ls /usr/sbin/nginx")
    assert.is_true(ok, "nginx is needed (make deps): " .. out)
    local nginx = out:match("[^\n]+")
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. mockctl.shell_quote(dir)))
    ok, out = sh(("openssl req -x509 " ..
      "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s/key.pem -out %s/cert.pem "
      .. "-days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1"):format(dir, dir))
    assert.is_true(ok, out)
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    pidfile = dir .. "/nginx.pid"
    local conf = ([[
worker_processes 1;
daemon on;
pid @D/nginx.pid;
error_log @D/error.log warn;
events { worker_connections 64; }
http {
  log_format c "$connection $server_protocol $status";
  access_log @D/access.log c;
  client_body_temp_path @D/body;
  proxy_temp_path @D/proxy;
  fastcgi_temp_path @D/fastcgi;
  uwsgi_temp_path @D/uwsgi;
  scgi_temp_path @D/scgi;
  default_type application/json;
  server {
    listen 127.0.0.1:@P ssl http2;
    ssl_certificate @D/cert.pem;
    ssl_certificate_key @D/key.pem;
    location / {
      return 201 '{"success":true,"errors":[],"messages":[],"result":{"id":"%s","name":"h2"}}';
    }
  }
}
]]):gsub("@D", dir):gsub("@P", tostring(port)):format(APP)
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    ok, out = sh(("%s -p %s -c %s/nginx.conf -e %s/error.log -q"):format(nginx, dir, dir, dir))
    assert.is_true(ok, out)
    for _ = 1, 100 do
      if readfile(pidfile) then break end
      socket.sleep(0.05)
    end
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, rate_limit = false,
                                  base_url = ("https://127.0.0.1:%d/client/v4"):format(port),
                                  cafile = dir .. "/cert.pem" })
    local ops = {}
    for i = 1, 40 do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy("h" .. i) } end
    local results = assert(c:batch(ops, { concurrency = 8 }))
    for i = 1, 40 do assert.is_true(results[i].ok, tostring(results[i].err)) end
    c:close()
    -- nginx logs a request when it finalises it, which can come just after
    -- the client has its response: wait (bounded) for all 40 lines.
    local log
    for _ = 1, 40 do
      log = assert(readfile(dir .. "/access.log"))
      if select(2, log:gsub("\n", "")) >= 40 then break end
      socket.sleep(0.05)
    end
    local conns, n, total = {}, 0, 0
    for line in log:gmatch("[^\n]+") do
      local conn, proto = line:match("^(%d+) (%S+)")
      assert.equal("HTTP/2.0", proto)
      total = total + 1
      if not conns[conn] then conns[conn] = true; n = n + 1 end
    end
    assert.equal(40, total)
    assert.equal(1, n)
  end)
end)
