--- cfaccess.cli_test: the `cfaccess test` command (API.md section 10),
-- registered into cfaccess.cli with `M.register(require("cfaccess.cli_test").command)`.
--
--     cfaccess test FILE...        0 every case passed; 1 a case failed (or a file is invalid);
--                                  3 a case was indeterminate
--     cfaccess test --live FILE    the policies come from the live application named in the file
--
-- A test file (`.lua` read as `cfaccess.state.load` reads it, or `.json`):
--
--     return {
--       policies = { ... },              -- the app's policies, or: state = <state table or file>, app = "<app id>"
--       groups = { [id] = group }, lists = { [id] = { "entry", ... } },   -- optional
--       account_id = "<32 hex>", strict_service_tokens = false,          -- optional
--       cases = {
--         { name = "staff from DE", request = { ... },
--           expect = { allowed = true, status = "approved", decided_by = "staff" } },
--       },
--     }
--
-- `expect` fields left out are not compared; `decided_by = false` expects
-- that no policy decides. Output on stdout, TAP-like: `# FILE`, then one
-- line per case, `ok - NAME` or `not ok - NAME: expected ..., got ...
-- (decided by ...)`, then `N passed, M failed`. An invalid file prints its
-- problems as `FILE: path: message`.
-- @module cfaccess.cli_test
local cfaccess = require("cfaccess")
local state = require("cfaccess.state")

local format, concat, type, pairs, ipairs, tostring = string.format, table.concat, type, pairs,
  ipairs, tostring

local M = {}

M.EXIT = { ok = 0, failure = 1, indeterminate = 3, usage = 64 }
local EXIT = M.EXIT

local TOP = { policies = true, state = true, app = true, groups = true, lists = true, cases = true,
              account_id = true, strict_service_tokens = true }
local CASE = { name = true, request = true, expect = true }
local EXPECT = { allowed = "boolean", status = "string", decided_by = "string" }
local STATUSES = { approved = true, blocked = true, login_required = true, indeterminate = true }

local sorted_keys = require("cfaccess.state.common").sorted_keys
local copy = require("cfaccess.state.common").copy
local function sorted(set) return concat(sorted_keys(set), ", ") end

-- Problems of the test file's own shape (not of its policies).
local function shape_problems(t, live)
  local probs = {}
  local function add(path, fmt, ...) probs[#probs + 1] = { path = path, message = format(fmt, ...) } end
  for k in pairs(t) do
    if not TOP[k] then add(tostring(k), "unknown field (known: %s)", sorted(TOP)) end
  end
  if live then
    if type(t.app) ~= "string" then add("app", "the live application's id is required with --live") end
  elseif t.policies ~= nil and t.state ~= nil then
    add("state", "give policies or state (with app), not both")
  elseif t.policies == nil and t.state == nil then
    add("policies", "required (or state with app)")
  elseif t.policies ~= nil and type(t.policies) ~= "table" then
    add("policies", "expected a list of policies, got %s", type(t.policies))
  elseif t.state ~= nil then
    if type(t.state) ~= "table" and type(t.state) ~= "string" then
      add("state", "expected a state table or the path of a state file, got %s", type(t.state))
    end
    if type(t.app) ~= "string" then add("app", "required with state: the id of one of its apps") end
  end
  if type(t.cases) ~= "table" or #t.cases == 0 then
    add("cases", "expected a non-empty list of cases")
    return probs
  end
  for i, c in ipairs(t.cases) do
    local p = "cases[" .. i .. "]"
    if type(c) ~= "table" then
      add(p, "expected a case table, got %s", type(c))
    else
      for k in pairs(c) do
        if not CASE[k] then add(p .. "." .. tostring(k), "unknown field (known: %s)", sorted(CASE)) end
      end
      if type(c.name) ~= "string" or c.name == "" then add(p .. ".name", "expected a non-empty string") end
      if type(c.request) ~= "table" then add(p .. ".request", "expected a table, got %s", type(c.request)) end
      local e = c.expect
      if type(e) ~= "table" then
        add(p .. ".expect", "expected a table, got %s", type(e))
      else
        local n = 0
        for k, v in pairs(e) do
          n = n + 1
          local want = EXPECT[k]
          if not want then
            add(p .. ".expect." .. tostring(k), "unknown field (known: allowed, decided_by, status)")
          elseif k == "decided_by" and v == false then   -- luacheck: ignore 542
            -- no policy decides
          elseif type(v) ~= want then
            add(p .. ".expect." .. k, "expected a %s, got %s", want, type(v))
          elseif k == "status" and not STATUSES[v] then
            add(p .. ".expect.status", "%q is not one of approved, blocked, login_required, indeterminate", v)
          end
        end
        if n == 0 then add(p .. ".expect", "expects nothing (give allowed, status or decided_by)") end
      end
    end
  end
  return probs
end

-- The directory part of a path ("" for a bare name).
local function dirname(path) return path:match("^(.*/)[^/]*$") or "" end

-- The policies of app `app` in a state, at precedences 1..n in the state's
-- order (reusable names or ids first, then legacy policies), or nil and problems.
local function state_policies(s, app)
  local probs = {}
  local entry = type(s.apps) == "table" and s.apps[app]
  if type(entry) ~= "table" then
    return nil, { { path = "app", message = format("%q is not an app of the state", app) } }
  end
  local by = {}
  for _, p in ipairs(type(s.policies) == "table" and s.policies or {}) do
    if type(p) == "table" then
      if p.name ~= nil then by[p.name] = p end
      if p.id ~= nil then by[p.id] = p end
    end
  end
  local list = {}
  for i, ref in ipairs(entry) do
    local p = by[ref]
    if not p then
      probs[#probs + 1] = { path = format("state.apps[%q][%d]", app, i),
                            message = format("no policy named %q in state.policies", tostring(ref)) }
    else
      list[#list + 1] = p
    end
  end
  for _, p in ipairs(type(entry.legacy) == "table" and entry.legacy or {}) do list[#list + 1] = p end
  if #probs > 0 then return nil, probs end
  local out = {}
  for i, p in ipairs(list) do
    local c = copy(p)
    c.precedence = i
    out[i] = c
  end
  return out
end

-- A problem path of the evaluator, as a path in the test file.
local function file_path(path, from_state)
  if path:sub(1, 1) == "[" then return (from_state and "app policies" or "policies") .. path end
  if path:sub(1, 5) == "opts." then return path:sub(6) end
  return path
end

local function show(k, v)
  if type(v) == "string" then return format("%q", v) end
  if k == "decided_by" and v == false then return "none" end
  if k == "allowed" and v == nil then return "nil" end
  return tostring(v)
end

-- "allowed = false, status = "blocked"" for the fields `expect` names.
local function fields(expect, get)
  local parts = {}
  for _, k in ipairs{ "allowed", "status", "decided_by" } do
    if expect[k] ~= nil then parts[#parts + 1] = k .. " = " .. show(k, get(k)) end
  end
  return concat(parts, ", ")
end

-- Run one case; returns "pass", "fail" or "indeterminate" and the line.
local function run_case(ev, c, i)
  local res, err = ev:evaluate(c.request)
  if not res then
    local pr = err.problems and err.problems[1]
    local where = pr and (format("cases[%d].", i) .. pr.path .. ": " .. pr.message) or tostring(err)
    return "fail", format("not ok - %s: invalid request: %s", c.name, where)
  end
  local e = c.expect
  local got = { allowed = res.allowed, status = res.status,
                decided_by = res.decided_by and res.decided_by.name or false }
  local same = true
  for k, v in pairs(e) do
    if got[k] ~= v then same = false end
  end
  if same then return "pass", "ok - " .. c.name end
  if res.status == "indeterminate" and e.status ~= "indeterminate" then
    return "indeterminate", format("not ok - %s: %s", c.name, tostring(res))
  end
  local by = res.decided_by and format("decided by %q", res.decided_by.name) or tostring(res)
  return "fail", format("not ok - %s: expected %s, got %s (%s)", c.name,
    fields(e, function(k) return e[k] end), fields(e, function(k) return got[k] end), by)
end

-- A client from the environment for --live (as the other commands make it).
local function live_client()
  local cli = require("cfaccess.cli")
  local o, why = cli.client_options(os.getenv)
  if not o then return nil, why end
  local client, err = cfaccess.client(o)
  if not client then return nil, tostring(err) end
  return client
end

-- The policies and evaluation options of a loaded test file t: from the
-- live app (--live), its state's app, or its own policies; or its problems.
local function file_policies(file, t, opts, client)
  local probs = shape_problems(t, opts.live)
  local policies, eopts, from_state
  if #probs == 0 then
    eopts = { groups = t.groups, lists = t.lists, account_id = t.account_id,
              strict_service_tokens = t.strict_service_tokens }
    if opts.live then
      local p, e = require("cfaccess.eval.client").load(client, t.app, eopts)
      if not p then
        local ep = type(e) == "table" and e.problems
        if ep then probs = ep else probs = { { path = "app", message = tostring(e) } } end
      else
        policies, eopts = p, e
      end
    elseif t.state ~= nil then
      local s = t.state
      if type(s) == "string" then
        local path = s:sub(1, 1) == "/" and s or dirname(file) .. s
        local serr
        s, serr = state.load(path)
        if not s then probs = { { path = "state", message = tostring(serr.message or serr) } } end
      end
      if s then
        local sp
        policies, sp = state_policies(s, t.app)
        if not policies then probs = sp end
        from_state = true
      end
    else
      policies = t.policies
    end
  end
  return probs, policies, eopts, from_state
end

--- Run the test files; returns the exit code.
-- @tparam table files paths
-- @tparam[opt] table opts `live` (bool), `out`, `err` (file handles; default stdout, stderr)
function M.run(files, opts)
  opts = opts or {}
  local out, errh = opts.out or io.stdout, opts.err or io.stderr
  local oneline = require("cfaccess.evaluate").oneline
  local function say(...)
    out:write(oneline(concat({ ... })), "\n")
  end
  local passed, failed, indeterminate, bad = 0, 0, 0, 0
  local client
  if opts.live then
    local why
    client, why = live_client()
    if not client then
      errh:write("cfaccess: ", why, "\n")
      return EXIT.usage
    end
  end
  for _, file in ipairs(files) do
    say("# ", file)
    local t, lerr = state.load(file)
    local probs
    if not t then
      local msg = tostring(type(lerr) == "table" and lerr.message or lerr)
      if msg:sub(1, #file + 1) == file .. ":" then say(msg) else say(file, ": ", msg) end
      bad = bad + 1
    else
      local policies, eopts, from_state
      probs, policies, eopts, from_state = file_policies(file, t, opts, client)
      local ev
      if #probs == 0 then
        local e
        ev, e = cfaccess.evaluator(policies, eopts)
        if not ev then probs = e.problems or { { path = "", message = tostring(e) } } end
      end
      if #probs > 0 then
        for _, pr in ipairs(probs) do
          local path = file_path(pr.path or "", from_state)
          say(file, ": ", path ~= "" and (path .. ": ") or "", pr.message)
        end
        bad = bad + 1
      else
        for i, c in ipairs(t.cases) do
          local how, line = run_case(ev, c, i)
          say(line)
          if how == "pass" then passed = passed + 1
          elseif how == "indeterminate" then indeterminate = indeterminate + 1
          else failed = failed + 1 end
        end
      end
    end
  end
  if client then client:close() end
  if indeterminate > 0 then say("# ", indeterminate,
    " indeterminate: a request leaves out an input that decides it") end
  say(passed, " passed, ", failed + indeterminate, " failed")
  out:flush()
  if failed > 0 or bad > 0 then return EXIT.failure end
  if indeterminate > 0 then return EXIT.indeterminate end
  return EXIT.ok
end

--- The command's definition for `cfaccess.cli.register`.
M.command = {
  name = "test",
  summary = "Run access test cases offline: would these requests get in? (exit 0 passed, 1 failed, 3 indeterminate)",
  setup = function(cmd)
    cmd:flag("--live", "Take the policies from the live application named by the file's app "
      .. "(credentials and account from the environment).")
    cmd:argument("file", "A .lua or .json test file: policies (or state and app), groups, lists, cases."):args("+")
  end,
  run = function(args, ctx)
    return M.run(args.file, { live = args.live, out = ctx and ctx.out, err = ctx and ctx.err })
  end,
}

return M
