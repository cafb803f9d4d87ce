--- mockctl: start, drive and stop the local mock Cloudflare API
-- (tests/mock/cfmock.py) from busted specs.
--
--     local mockctl = require("mockctl")
--     local m = mockctl.start{ token = "t0k3n" }   -- raises if it cannot start
--     m:app("accounts", acct, app_id)              -- register an application
--     m:fault{ action = "rate_limit", retry_after = 1, method = "POST" }
--     local reqs = m:log()                         -- what the mock received
--     m:stop()
--
-- The mock runs as a separate python3 process on 127.0.0.1 with `--port 0`.
-- Its stdout goes to a temporary file rather than a pipe so that waiting for
-- the "listening" line is bounded (a pipe read cannot time out). Control
-- calls use LuaSocket's http with a 5 s timeout; with TLS they go to the
-- mock's plain-HTTP control port. Every wait here is bounded.
--
-- Control calls (methods of the object mockctl.start returns):
--   m:reset()                  POST /__mock/reset: forget policies, apps, groups,
--                              faults, log, rate counters, invariant records and
--                              config; starts a new log generation (returned).
--   m:app(scope, scope_id, app_id [, type [, extra]])
--                              POST /__mock/apps: register an application. type:
--                              any application type (default "self_hosted");
--                              extra: { domain =, name =, body = {other fields},
--                              policies = {links as in a PUT} }.
--   m:apps()                   GET /__mock/apps: every application, each
--                              { scope, scope_id, app_id, type, app (what GET
--                              returns), stored (fields kept), links, last_put }.
--   m:app_info(app_id [, scope, scope_id])
--                              GET /__mock/apps/{app_id}: one of those.
--   m:last_put(app_id)         the raw body of the app's last PUT, nil before any.
--   m:fault(f), m:faults(), m:clear_faults()
--                              POST/GET/DELETE /__mock/faults.
--   m:log([opts])              GET /__mock/log: requests of the current
--                              generation; opts.all = true: every kept one
--                              (each has `generation`; one sent before the
--                              reset by a client gone since is `stale`).
--   m:count([method])          how many of the current generation's requests.
--   m:count_status(status)     how many got that status (e.g. 429).
--   m:stats()                  GET /__mock/stats: { requests, writes,
--                              rate_limited, by_status, generation }.
--   m:state()                  GET /__mock/state .policies; m:snapshot(): the
--                              whole { policies, apps, groups }.
--   m:invariants()             GET /__mock/invariants: { ok, checks,
--                              duplicate_precedence = {{app, precedence, ids,
--                              after}}, empty_apps = {{app, after}},
--                              refused_duplicates }, recorded on every change.
--   m:assert_invariants()      raises with the records unless ok.
--   m:config(c)                POST /__mock/config, keys: ratelimit_remaining,
--                              max_body_bytes, log_max, enforce_ratelimit,
--                              lockout = { budget = N, window = s } | false,
--                              latency = s (every API answer), clock_skew = s
--                              (Date, created_at/updated_at), per_page_cap = N
--                              (0 = none), precedence_code (default 11018),
--                              unique_precedence (default true).
--   m:lockout(budget, window)  config{ lockout = ... }; m:lockout(false) ends it.
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson").new()   -- private instance: nobody else's settings

local M = {}

local START_TIMEOUT = 10   -- seconds to wait for the "listening" line
local STOP_TIMEOUT = 5     -- seconds to wait for exit after SIGTERM
local CONTROL_TIMEOUT = 5  -- seconds per control call

local Mock = {}
Mock.__index = Mock

-- The repository root: CFACCESS_TEST_ROOT (set by tests/run.sh), else the
-- directory above this file.
local function root()
  local r = os.getenv("CFACCESS_TEST_ROOT")
  if r and r ~= "" then return r end
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/tests/[^/]*$")
  return dir or "."
end

--- Quote one word for /bin/sh.
function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = M.shell_quote

--- The whole file at path, or nil when it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local read_file = M.read_file

-- Is `pid` still a live process (not gone, not a zombie)?
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat then
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= "Z" and state ~= "X"
  end
  local self_stat = io.open("/proc/self/stat", "r")
  if self_stat then self_stat:close(); return false end  -- /proc exists: gone
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- The pid of this Lua process (the parent of the shell io.popen runs).
local function own_pid()
  local p = io.popen("echo $PPID")
  local s = p:read("l")
  p:close()
  return tonumber(s)
end

--- The mock script: env CFMOCK_SCRIPT, else tests/mock/cfmock.py.
function M.script()
  local s = os.getenv("CFMOCK_SCRIPT")
  if s and s ~= "" then return s end
  return root() .. "/tests/mock/cfmock.py"
end

--- Start a mock. opts (all optional):
--   token, api_key, email, tls_cert, tls_key: passed as --token ...;
--   apps: list of "SCOPE:SCOPE_ID:APP_ID[:TYPE]" strings (--app);
--   args: list of extra command-line words; python: interpreter (default
--   env PYTHON or "python3"); script: the mock (default env CFMOCK_SCRIPT,
--   else tests/mock/cfmock.py); verbose: log requests to the mock's stderr file.
-- Returns the mock object; raises with the mock's stderr if it did not start
-- within 10 s.
function M.start(opts)
  opts = opts or {}
  local py = opts.python or os.getenv("PYTHON") or "python3"
  local script = opts.script or M.script()
  local words = { q(py), q(script), "--port", "0" }
  local function add(flag, v)
    if v ~= nil then words[#words + 1] = flag; words[#words + 1] = q(v) end
  end
  add("--token", opts.token)
  add("--api-key", opts.api_key)
  add("--email", opts.email)
  add("--tls-cert", opts.tls_cert)
  add("--tls-key", opts.tls_key)
  add("--watch-pid", own_pid())
  for _, a in ipairs(opts.apps or {}) do add("--app", a) end
  if opts.verbose then words[#words + 1] = "--verbose" end
  for _, a in ipairs(opts.args or {}) do words[#words + 1] = q(a) end

  local out, errf = os.tmpname(), os.tmpname()
  -- `env -u LD_PRELOAD`: the ASan run preloads the sanitizer runtimes for
  -- the Lua interpreter; python must not inherit them.
  local cmd = "env -u LD_PRELOAD " .. table.concat(words, " ") .. " </dev/null >" .. q(out)
    .. " 2>" .. q(errf) .. " & echo $!"
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("l"))
  p:close()
  local self = setmetatable({ pid = pid, out_file = out, err_file = errf, tls = opts.tls_cert ~= nil }, Mock)
  local deadline = socket.gettime() + START_TIMEOUT
  local line
  while true do
    local s = read_file(out) or ""
    line = s:match("(cfmock listening on [^\n]*)\n")
    if line or not pid or not alive(pid) or socket.gettime() > deadline then break end
    socket.sleep(0.02)
  end
  if not line then
    local why = read_file(errf) or ""
    self:stop()
    error("mockctl.start: the mock did not start: " .. (why ~= "" and why or "no output within 10 s"), 2)
  end
  local port, mpid, ctl = line:match("^cfmock listening on 127%.0%.0%.1:(%d+) pid (%d+)(.*)$")
  self.port = tonumber(port)
  self.pid = tonumber(mpid)
  self.control_port = tonumber(ctl:match("control (%d+)")) or self.port
  self.origin = (self.tls and "https" or "http") .. "://127.0.0.1:" .. self.port
  self.base_url = self.origin .. "/client/v4"
  self.control_url = "http://127.0.0.1:" .. self.control_port .. "/__mock"
  return self
end

--- One control call: method, path under /__mock/, optional Lua value sent
-- as JSON. Returns the decoded reply and the status; raises on transport
-- failure or a non-2xx status (with the mock's error message).
function Mock:control(method, path, data)
  local body = data ~= nil and cjson.encode(data) or ""
  local chunks = {}
  local ok, status = http.request{
    url = self.control_url .. path,
    method = method,
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
    source = ltn12.source.string(body),
    sink = ltn12.sink.table(chunks),
    create = function()
      local s = socket.tcp()
      s:settimeout(CONTROL_TIMEOUT)
      return s
    end,
  }
  if not ok then error("mockctl: " .. method .. " " .. path .. ": " .. tostring(status), 2) end
  local text = table.concat(chunks)
  local okd, reply = pcall(cjson.decode, text)
  if status < 200 or status > 299 then
    error("mockctl: " .. method .. " " .. path .. ": HTTP " .. status .. ": " ..
      (okd and type(reply) == "table" and tostring(reply.error) or text), 2)
  end
  if not okd then error("mockctl: " .. method .. " " .. path .. ": bad JSON reply: " .. text, 2) end
  return reply, status
end

--- Register an application: scope "accounts" or "zones", its 32-hex id, the
-- app id, optionally its type (default "self_hosted") and `extra`:
-- { domain =, name =, body = { other fields }, policies = { links } }.
function Mock:app(scope, scope_id, app_id, app_type, extra)
  local data = { scope = scope, scope_id = scope_id, app_id = app_id,
    type = app_type or "self_hosted" }
  for k, v in pairs(extra or {}) do data[k] = v end
  return self:control("POST", "/apps", data)
end

--- Every registered application (see the header comment for the fields).
function Mock:apps()
  return self:control("GET", "/apps").apps
end

--- One application: { scope, scope_id, app_id, type, app, stored, links, last_put }.
function Mock:app_info(app_id, scope, scope_id)
  local qs = {}
  if scope then qs[#qs + 1] = "scope=" .. scope end
  if scope_id then qs[#qs + 1] = "scope_id=" .. scope_id end
  return self:control("GET", "/apps/" .. app_id .. (#qs > 0 and "?" .. table.concat(qs, "&") or ""))
end

--- The raw body of the application's last PUT (a string), nil before any.
function Mock:last_put(app_id, scope, scope_id)
  local v = self:app_info(app_id, scope, scope_id).last_put
  if type(v) ~= "string" then return nil end
  return v
end

--- Queue one fault (a table) or several (a list of tables).
function Mock:fault(f)
  return self:control("POST", "/faults", f)
end

--- The faults still queued (each with `left`).
function Mock:faults()
  return self:control("GET", "/faults").faults
end

--- The requests of the current generation (since the last reset), in
-- arrival order; opts.all = true: every request kept, of any generation.
function Mock:log(opts)
  return self:control("GET", "/log" .. (opts and opts.all and "?generation=all" or "")).requests
end

--- Drop every queued fault.
function Mock:clear_faults()
  return self:control("DELETE", "/faults")
end

--- A cfaccess.core client of this mock for account `acct` with `token`:
-- no pacing, 2 retries, on_log lines appended to `lines` as "level msg";
-- fields of `opts` override. Raises if the client cannot be made.
function Mock:client(acct, token, lines, opts)
  local o = { account_id = acct, api_token = token, base_url = self.base_url,
              rate_limit = false, max_retries = 2,
              on_log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(require("cfaccess.core").client(o))
end

--- How many requests of the current generation the mock received (only
-- `method` ones, when given). A request sent before the last reset that
-- reached the mock after it is not counted.
function Mock:count(method)
  local n = 0
  for _, req in ipairs(self:log()) do
    if method == nil or req.method == method then n = n + 1 end
  end
  return n
end

--- How many requests of the current generation were answered with `status`.
function Mock:count_status(status)
  local n = 0
  for _, req in ipairs(self:log()) do
    if req.status == status then n = n + 1 end
  end
  return n
end

--- Counters of the current generation: { requests, writes, rate_limited, by_status, generation }.
function Mock:stats()
  return self:control("GET", "/stats")
end

--- Every stored policy (with _scope, _scope_id, _app_id, _kind).
function Mock:state()
  return self:control("GET", "/state").policies
end

--- The write requests (every method but GET and HEAD) of the current generation's log
-- from entry `from` (default 1) on: their count, and the list.
function Mock:writes(from)
  local n, list = 0, {}
  for i, req in ipairs(self:log()) do
    if i >= (from or 1) and req.method ~= "GET" and req.method ~= "HEAD" then
      n = n + 1
      list[#list + 1] = req
    end
  end
  return n, list
end

--- The stored legacy policies of application `app`, in precedence order.
function Mock:legacy_of(app)
  local out = {}
  for _, p in ipairs(self:state()) do
    if p._app_id == app then out[#out + 1] = p end
  end
  table.sort(out, function(a, b) return a.precedence < b.precedence end)
  return out
end

--- The stored reusable policies, by name.
function Mock:reusable_live()
  local out = {}
  for _, p in ipairs(self:state()) do
    if p._kind == "reusable" then out[#out + 1] = p end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

--- The whole store: { policies = ..., apps = ..., groups = ... }.
function Mock:snapshot()
  return self:control("GET", "/state")
end

--- The invariant records: { ok, checks, duplicate_precedence, empty_apps, refused_duplicates }.
function Mock:invariants()
  return self:control("GET", "/invariants")
end

--- Raise (naming the apps and the requests) unless no two policies of an
-- app ever shared a precedence and no app was ever left without a policy.
function Mock:assert_invariants()
  local inv = self:invariants()
  if not inv.ok then
    error("mock invariants broken: " .. cjson.encode{ duplicate_precedence = inv.duplicate_precedence,
      empty_apps = inv.empty_apps }, 2)
  end
  return inv
end

--- Clear policies, apps, groups, faults, log, rate counters, invariant
-- records and config; returns the new log generation.
function Mock:reset()
  return self:control("POST", "/reset", {}).generation
end

--- Change settings (keys in the header comment).
function Mock:config(c)
  return self:control("POST", "/config", c)
end

--- Cloudflare's lockout scaled: `budget` requests per `window` seconds per
-- credential, then 429 (code 971, Retry-After) until the window ends.
-- m:lockout(false) turns it off.
function Mock:lockout(budget, window)
  if budget == false then return self:config{ lockout = false } end
  return self:config{ lockout = { budget = budget, window = window } }
end

--- Stop the mock: SIGTERM, wait (bounded) for exit, SIGKILL if it lingers.
-- Idempotent.
function Mock:stop()
  local pid = self.pid
  if pid and not self.stopped then
    self.stopped = true
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    local deadline = socket.gettime() + STOP_TIMEOUT
    while alive(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
    if alive(pid) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  for _, f in ipairs{ self.out_file, self.err_file } do os.remove(f) end
  return true
end

--- The mock's stderr so far (tracebacks, --verbose request lines).
function Mock:stderr()
  return read_file(self.err_file) or ""
end

--- Hooks that give a busted describe block one mock; register them with
-- setup(h.setup), teardown(h.teardown), before_each(h.before_each). The mock
-- is started with `opts` (as for start) and handed to `set`, stopped at the
-- end, and reset before each test with `apps` registered (a list of
-- { scope, scope_id, app_id [, type] }).
function M.block_hooks(opts, apps, set)
  local m
  return {
    setup = function()
      m = M.start(opts)
      set(m)
    end,
    teardown = function()
      if m then m:stop() end
    end,
    before_each = function()
      m:reset()
      for _, a in ipairs(apps) do m:app(table.unpack(a)) end
    end,
  }
end

return M
