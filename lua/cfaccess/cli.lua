--- cfaccess.cli: the `cfaccess` command (API.md section 9).
--
--     cfaccess validate [--kind K] [--strict] FILE...
--     cfaccess fmt [--check] FILE...
--     cfaccess plan [--prune] [--json] STATE
--     cfaccess apply [--prune] [--yes] STATE
--     cfaccess export [--app ID]... [--format lua|json]
--     cfaccess list [--app ID] [--json]
--
-- Exit codes: 0 success, 1 failure (problems, API errors, a failed change),
-- 2 only for `plan` with changes, 64 usage (bad arguments, a missing
-- environment variable: sysexits' EX_USAGE, so that plan's 2 always means
-- changes). `bin/cfaccess` is `os.exit(require("cfaccess.cli").main(arg))`.
--
-- Commands are data: `M.commands` is a list of `{ name =, summary =,
-- setup = function(cmd) (argparse options) end, run = function(args, ctx)
-- return exit code end }`; another module adds one with `M.register(def)`
-- before `main` runs (e.g. `cfaccess test`).
--
-- Libraries: argparse (Debian lua-argparse, the LuaRocks rock `argparse`,
-- the parser luacheck uses) for commands, options and --help; the streams
-- (terminal, colour, redaction, progress) are cfaccess.cli_io's.
-- @module cfaccess.cli
local argparse = require("argparse")
local cfaccess = require("cfaccess")
local state = require("cfaccess.state")
local render = require("cfaccess.render")

local format, concat = string.format, table.concat

local M = {}

--- Exit codes.
M.EXIT = { ok = 0, failure = 1, changes = 2, usage = 64 }
local EXIT = M.EXIT

local io_ = require("cfaccess.cli_io")
M.isatty = io_.isatty
M.progress_display = io_.progress_display
local context = io_.context

local function say(ctx, ...) ctx.out:write(...) end
local function complain(ctx, ...) ctx.err:write(...) end

-- "cfaccess: message" on stderr; returns code.
local function fail(ctx, code, msg)
  complain(ctx, "cfaccess: ", msg, "\n")
  return code
end

-- --------------------------------------------------------- file problems

-- One problem line: FILE: path: message (FILE: message without a path).
local function problem_line(ctx, file, path, msg, warning)
  local parts = { render.paint(ctx.colour, "bold", file) }
  if path and path ~= "" then parts[#parts + 1] = path end
  if warning then parts[#parts + 1] = render.paint(ctx.colour, "yellow", "warning") end
  parts[#parts + 1] = msg
  say(ctx, concat(parts, ": "), "\n")
end

-- Load a file as state.load does; on failure print its problem and return nil.
-- A JSON syntax error prints as FILE:line:column: JSON syntax error: ...
-- (the form editors and CI annotations read); a Lua error already starts
-- with FILE:line:.
local function load_file(ctx, file)
  local value, err = state.load(file)
  if value then return value end
  if err.line then
    say(ctx, render.paint(ctx.colour, "bold", file .. ":" .. err.line .. ":" .. err.column), ": JSON syntax error: ",
      err.reason, "\n")
  else
    local msg = tostring(err.message or err)
    if msg:sub(1, #file + 1) == file .. ":" then
      say(ctx, render.paint(ctx.colour, "bold", file), msg:sub(#file + 1), "\n")
    else
      problem_line(ctx, file, nil, msg)
    end
  end
  return nil, err
end

-- Print every problem and warning of value; returns the problem count
-- (warnings count as problems with strict).
local function report_problems(ctx, file, value, opts, strict)
  local problems, warnings = state.problems(value, opts)
  for _, p in ipairs(problems) do problem_line(ctx, file, p.path, p.message) end
  for _, w in ipairs(warnings) do problem_line(ctx, file, w.path, w.message, not strict) end
  return #problems + (strict and #warnings or 0), #warnings
end

-- ------------------------------------------------------------ the client

--- The client options from the environment (API.md section 3's variables
-- plus CLOUDFLARE_ACCOUNT_ID / CLOUDFLARE_ZONE_ID), or nil and a message
-- naming the missing variable. The token is read by the core itself from
-- the environment and never held here.
-- @tparam function getenv like `os.getenv`
-- @treturn table `{ account_id =, zone_id =, base_url = }` or nil, message
function M.client_options(getenv)
  local function env(name)
    local v = getenv(name)
    if v == "" then return nil end
    return v
  end
  local token, key, email = env("CLOUDFLARE_API_TOKEN"), env("CLOUDFLARE_API_KEY"), env("CLOUDFLARE_EMAIL")
  if token and (key or email) then
    return nil, "set CLOUDFLARE_API_TOKEN or CLOUDFLARE_API_KEY with CLOUDFLARE_EMAIL, not both"
  end
  if not token then
    if key and not email then return nil, "CLOUDFLARE_EMAIL is not set (CLOUDFLARE_API_KEY needs it)" end
    if email and not key then return nil, "CLOUDFLARE_API_KEY is not set (CLOUDFLARE_EMAIL needs it)" end
    if not key then
      return nil, "CLOUDFLARE_API_TOKEN is not set (or set CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL)"
    end
  end
  local account, zone = env("CLOUDFLARE_ACCOUNT_ID"), env("CLOUDFLARE_ZONE_ID")
  if account and zone then
    return nil, "set CLOUDFLARE_ACCOUNT_ID or CLOUDFLARE_ZONE_ID, not both"
  end
  if not account and not zone then
    return nil, "CLOUDFLARE_ACCOUNT_ID is not set (or CLOUDFLARE_ZONE_ID for a zone)"
  end
  return { account_id = account, zone_id = zone, base_url = env("CLOUDFLARE_BASE_URL") }
end

-- A client from the environment, or nil and the exit code (64 for a
-- missing variable or bad option: the core's `usage`/`invalid`).
local function make_client(ctx)
  local o, why = M.client_options(ctx.getenv)
  if not o then return nil, fail(ctx, EXIT.usage, why) end
  local client, err = cfaccess.client(o)
  if not client then
    local kind = type(err) == "table" and err.kind
    return nil, fail(ctx, (kind == "usage" or kind == "invalid") and EXIT.usage or EXIT.failure, tostring(err))
  end
  ctx.zone = o.zone_id ~= nil
  return client
end

-- The progress display on stderr: only on a terminal and without --quiet.
local function progress(ctx, args)
  return M.progress_display(ctx.err, ctx.err_tty and not args.quiet)
end

-- A method the match helper adds (client:plan/apply/export); a clear error
-- when this build does not have it.
local function method(ctx, client, name)
  local f = client[name]
  if type(f) ~= "function" then
    return nil, fail(ctx, EXIT.failure, "client:" .. name .. " is not available in this build of cfaccess")
  end
  return f
end

-- Run fn(client, f1, f2, ...) with a client from the environment and its
-- methods `names` (f1 = client[names[1]], ...). The client is closed when
-- fn is done (a to-be-closed variable: also when fn raises). Returns fn's
-- exit code, or that of the first failure (no client, a missing method).
local function with_client(ctx, names, fn)
  local client, code = make_client(ctx)
  if not client then return code end
  local _ <close> = client
  local fns = {}
  for i, name in ipairs(names) do
    local f, mcode = method(ctx, client, name)
    if not f then return mcode end
    fns[i] = f
  end
  return fn(client, table.unpack(fns, 1, #names))
end

-- Load and validate a state file for plan/apply: problems print as for
-- validate and give exit 1.
local function load_state(ctx, file, zone)
  local value = load_file(ctx, file)
  if not value then return nil end
  if state.shape(value) ~= "state" then
    problem_line(ctx, file, nil, "expected a state (a table with policies and/or apps)")
    return nil
  end
  local n = report_problems(ctx, file, value, { zone = zone }, false)
  if n > 0 then return nil end
  return value
end

-- The plan of the state file args.state (with args.prune), or nil and the
-- exit code (the file's problems or plan's error printed).
local function make_plan(ctx, client, plan_fn, args)
  local desired = load_state(ctx, args.state, ctx.zone)
  if not desired then return nil, EXIT.failure end
  local plan, err = plan_fn(client, desired, { prune = args.prune })
  if not plan then return nil, fail(ctx, EXIT.failure, tostring(err)) end
  return plan
end

-- The setup of a command on a state file (plan, apply): --prune, then the
-- flags `flags` ({ { names, help }, ... }), then the STATE argument.
local function state_command_setup(flags)
  return function(cmd)
    cmd:flag("--prune", "Also delete live policies the state does not list.")
    for _, f in ipairs(flags) do cmd:flag(f[1], f[2]) end
    cmd:argument("state", "The desired state: a .lua or .json file.")
  end
end

-- Run check(file) for every FILE argument (it prints what it finds and
-- returns true for a good file); exit 1 when any was not.
local function each_file(args, check)
  local bad = 0
  for _, file in ipairs(args.file) do
    if not check(file) then bad = bad + 1 end
  end
  return bad > 0 and EXIT.failure or EXIT.ok
end

-- --json output of plain data (a plan): render.json (sorted keys, empty
-- lists as []), pretty-printed.
local function json_text(v)
  return state.pretty_json(render.json(v))
end

-- ------------------------------------------------------------- commands

M.commands = {}

--- Add a command: `{ name =, summary =, setup = function(cmd), run = function(args, ctx) }`.
function M.register(def)
  assert(type(def) == "table" and type(def.name) == "string" and type(def.run) == "function",
    "cfaccess.cli.register: expected { name =, run = }")
  for i, c in ipairs(M.commands) do
    if c.name == def.name then M.commands[i] = def; return end
  end
  M.commands[#M.commands + 1] = def
end

local KINDS = { "app", "zone", "reusable", "infrastructure", "group" }

M.register{
  name = "validate",
  summary = "Check policy, policy-list and state files; every problem as FILE: path: message.",
  setup = function(cmd)
    cmd:option("--kind", "Policy kind of policy and list files (a state's are reusable and app; "
      .. "zone checks a state as a zone client's).")
      :choices(KINDS)
    cmd:flag("--strict", "Count warnings as problems (exit 1).")
    cmd:argument("file", "A .json or .lua file: a policy, a list of policies or a state."):args("+")
  end,
  run = function(args, ctx)
    return each_file(args, function(file)
      local value = load_file(ctx, file)
      if not value then return false end
      local opts = { kind = args.kind, zone = args.kind == "zone" }
      if report_problems(ctx, file, value, opts, args.strict) > 0 then return false end
      say(ctx, file, ": valid\n")
      return true
    end)
  end,
}

-- Write text to path through a temporary file in the same directory, so
-- that a failure never leaves a half-written file.
local function write_atomic(path, text)
  local tmp = path .. ".cfaccess-tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then os.remove(tmp); return nil, tostring(werr or cerr) end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); return nil, rerr end
  return true
end

M.register{
  name = "fmt",
  summary = "Rewrite JSON files as canonical, pretty JSON.",
  setup = function(cmd)
    cmd:flag("--check", "Change nothing; exit 1 if a file would change.")
    cmd:argument("file", "A .json file: a policy, a list of policies or a state."):args("+")
  end,
  run = function(args, ctx)
    return each_file(args, function(file)
      if not file:match("%.json$") then
        problem_line(ctx, file, nil, "fmt formats .json files")
        return false
      end
      local value = load_file(ctx, file)
      if not value or report_problems(ctx, file, value, {}, false) > 0 then return false end
      local text, derr = state.dump(value, "json")
      if not text then
        problem_line(ctx, file, nil, tostring(derr))
        return false
      end
      local f = assert(io.open(file, "rb"))
      local old = f:read("a")
      f:close()
      if old == text then return true end
      if args.check then
        problem_line(ctx, file, nil, "not formatted (cfaccess fmt would rewrite it)")
        return false
      end
      local ok, werr = write_atomic(file, text)
      if not ok then
        problem_line(ctx, file, nil, "cannot write: " .. tostring(werr))
        return false
      end
      say(ctx, file, ": formatted\n")
      return true
    end)
  end,
}

M.register{
  name = "plan",
  summary = "Show what apply would change (exit 0: no changes, 2: changes).",
  setup = state_command_setup{ { "--json", "Print the plan's data as JSON." } },
  run = function(args, ctx)
    return with_client(ctx, { "plan" }, function(client, plan_fn)
      local plan, code = make_plan(ctx, client, plan_fn, args)
      if not plan then return code end
      if args.json then
        say(ctx, json_text({ changes = plan.changes or {}, summary = plan.summary, warnings = plan.warnings or {} }))
      else
        say(ctx, render.plan(plan, ctx.colour))
      end
      return #(plan.changes or {}) > 0 and EXIT.changes or EXIT.ok
    end)
  end,
}

-- Ask "Apply N changes? [y/N]" on the terminal; true for y/yes.
local function confirm(ctx, n)
  complain(ctx, format("Apply %d change%s? [y/N] ", n, n == 1 and "" or "s"))
  ctx.err:flush()
  local answer = ctx.input:read("l")
  return answer ~= nil and (answer:lower() == "y" or answer:lower() == "yes")
end

M.register{
  name = "apply",
  summary = "Make the live state match the file (prints the plan; asks, or needs --yes).",
  setup = state_command_setup{
    { "-y --yes", "Apply without asking (needed when not on a terminal)." },
    { "-q --quiet", "No progress display." },
  },
  run = function(args, ctx)
    return with_client(ctx, { "plan", "apply" }, function(client, plan_fn, apply_fn)
      local plan, code = make_plan(ctx, client, plan_fn, args)
      if not plan then return code end
      say(ctx, render.plan(plan, ctx.colour))
      local n = #(plan.changes or {})
      if n == 0 then return EXIT.ok end
      if not args.yes then
        if not (ctx.in_tty and ctx.err_tty) then
          return fail(ctx, EXIT.failure, "not applied: no terminal to ask on; run with --yes to apply")
        end
        if not confirm(ctx, n) then return fail(ctx, EXIT.failure, "not applied") end
      end
      -- the progress bar: apply's on_progress covers the whole apply, waits included
      local on_progress, finish = progress(ctx, args)
      local report, aerr = apply_fn(client, plan, { on_progress = on_progress })
      finish()
      if not report then return fail(ctx, EXIT.failure, tostring(aerr)) end
      say(ctx, render.report(report, ctx.colour))
      if (report.failed or 0) > 0 or aerr then return EXIT.failure end
      return EXIT.ok
    end)
  end,
}

-- { [app_id] = { name =, domain = } } for the Lua dump's comments: from
-- export's second result when it gives one (a table, or its .apps), else
-- one client:get_app per app where the client has it; nil when unknown.
local function app_names(client, live, info)
  if type(info) == "table" then return info.apps or info end
  if type(live.apps) ~= "table" or type(client.get_app) ~= "function" then return nil end
  local names = {}
  for id in pairs(live.apps) do
    local app = client:get_app(id)
    if type(app) == "table" then names[id] = { name = app.name, domain = app.domain } end
  end
  return names
end

M.register{
  name = "export",
  summary = "Print the live state (reusable policies and apps) as a state file.",
  setup = function(cmd)
    cmd:option("--app", "Only this application (repeatable; default: every app)."):count("*")
    cmd:option("--format", "Output format."):choices({ "lua", "json" }):default("lua")
  end,
  run = function(args, ctx)
    -- a bad --app is a usage error (64, as for list), found before anything is read
    for _, id in ipairs(args.app) do
      if not require("cfaccess.plan.common").is_app_id(id) then
        return fail(ctx, EXIT.usage, ("--app %q: expected an application id (a UUID or 32 hex characters)"):format(id))
      end
    end
    return with_client(ctx, { "export" }, function(client, export_fn)
      local opts = {}
      if #args.app > 0 then opts.apps = args.app end
      local live, info = export_fn(client, opts)
      if not live then return fail(ctx, EXIT.failure, tostring(info)) end
      local text, derr = state.dump(live, args.format, { apps = app_names(client, live, info) })
      if not text then return fail(ctx, EXIT.failure, tostring(derr)) end
      say(ctx, text)
      return EXIT.ok
    end)
  end,
}

-- A listed policy as JSON: the core's canonical encoding (schema order,
-- server fields passed through with allow_unknown), else render.json.
local function policy_json(p, kind)
  local ok, j = pcall(cfaccess.encode, p, { kind = kind, allow_unknown = true })
  if ok and j then return j end
  return render.json(p)
end

M.register{
  name = "list",
  summary = "List an app's policies, or without --app the account's reusable policies.",
  setup = function(cmd)
    cmd:option("--app", "The application's id.")
    cmd:flag("--json", "Print the policies as a JSON array.")
  end,
  run = function(args, ctx)
    return with_client(ctx, {}, function(client)
      if not args.app and ctx.zone then
        return fail(ctx, EXIT.usage, "reusable policies belong to an account: set CLOUDFLARE_ACCOUNT_ID, or give --app")
      end
      local list, err
      if args.app then list, err = client:list_app_policies(args.app)
      else list, err = client:list_policies() end
      if not list then
        local kind = type(err) == "table" and err.kind
        return fail(ctx, kind == "invalid" and EXIT.usage or EXIT.failure, tostring(err))
      end
      local kind = args.app and (ctx.zone and "zone" or "app") or "reusable"
      if args.json then
        local parts = {}
        for n, p in ipairs(list) do parts[n] = policy_json(p, kind) end
        say(ctx, state.pretty_json("[" .. concat(parts, ",") .. "]"))
        return EXIT.ok
      end
      if #list == 0 then
        say(ctx, args.app and "No policies.\n" or "No reusable policies.\n")
        return EXIT.ok
      end
      for _, p in ipairs(list) do
        local cols = {}
        if args.app then cols[#cols + 1] = format("%3s", tostring(p.precedence or "-")) end
        cols[#cols + 1] = tostring(p.id)
        cols[#cols + 1] = format("%-14s", tostring(p.decision))
        cols[#cols + 1] = tostring(p.name)
        say(ctx, concat(cols, "  "), "\n")
      end
      return EXIT.ok
    end)
  end,
}

-- Commands defined in other modules, each exporting `command` (a table for
-- `register`): registered when the module is installed. `cfaccess test`
-- (lua/cfaccess/cli_test.lua, API.md section 10) is one. A module that is
-- there but fails to load raises: it is never silently left out.
M.EXTRA_COMMANDS = { "cfaccess.cli_test" }
for _, name in ipairs(M.EXTRA_COMMANDS) do
  if package.searchpath(name, package.path) then
    local mod = require(name)
    if type(mod) == "table" and type(mod.command) == "table" then M.register(mod.command) end
  end
end

-- ---------------------------------------------------------------- main

--- The version line: `cfaccess X.Y.Z`.
M.version = cfaccess._VERSION

-- The argparse parser for every registered command.
local function build_parser()
  local parser = argparse("cfaccess")
    :description("Validate, format, plan and apply Cloudflare Access policies.")
    :epilog("Exit codes: 0 success, 1 failure, 2 plan with changes, 64 usage.\n"
      .. "Credentials, account or zone and base URL come from the environment:\n"
      .. "CLOUDFLARE_API_TOKEN (or CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL),\n"
      .. "CLOUDFLARE_ACCOUNT_ID or CLOUDFLARE_ZONE_ID, CLOUDFLARE_BASE_URL.")
    :command_target("command")
    :require_command(true)
  parser:flag("--version", "Print the version and exit."):action(function()
    io.stdout:write(M.version, "\n")
    io.stdout:flush()
    os.exit(EXIT.ok)
  end)
  local cmds = {}
  for _, c in ipairs(M.commands) do
    local cmd = parser:command(c.name, c.summary)
    if c.setup then c.setup(cmd) end
    cmds[c.name] = cmd
  end
  return parser, cmds
end

--- Run the command line `argv` (a list of words without the program name).
-- @tparam table argv e.g. `{ "validate", "policy.json" }`
-- @tparam[opt] table opts streams and terminal facts for tests:
-- `out`, `err`, `input`, `getenv`, `out_tty`, `err_tty`, `in_tty`
-- @treturn integer the exit code
function M.main(argv, opts)
  local ctx = context(opts)
  local words = {}
  for i = 1, #(argv or {}) do words[i] = argv[i] end
  local parser, cmds = build_parser()
  local ok, args = parser:pparse(words)
  if not ok then
    if #words == 0 then
      complain(ctx, parser:get_help(), "\n")
      return EXIT.usage
    end
    -- the usage of the command the words name (its options), else the main one
    local cmd = cmds[words[1]] or parser
    complain(ctx, cmd:get_usage(), "\n\nError: ", tostring(args), "\n")
    return EXIT.usage
  end
  for _, c in ipairs(M.commands) do
    if c.name == args.command then
      local rok, code = xpcall(c.run, debug.traceback, args, ctx)
      ctx.out:flush()
      if not rok then return fail(ctx, EXIT.failure, "internal error: " .. tostring(code)) end
      return code or EXIT.ok
    end
  end
  return fail(ctx, EXIT.usage, "unknown command " .. tostring(args.command))
end

return M
