--- Reading state files: a `.lua` chunk run in a sandbox (only `rules` and
-- safe basics, a bounded number of instructions) or `.json` decoded with
-- lua-cjson (syntax errors with line:column).
-- @module cfaccess.state.load
local core = require("cfaccess.core")
local rules = require("cfaccess.rules")
local common = require("cfaccess.state.common")

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, concat = string.format, table.concat
local cjson, mkerr = common.cjson, common.mkerr

local M = {}

-- What a state file's environment holds: the rule builders and the safe
-- basics. No io, os, require, load, loadfile, dofile, debug, package,
-- collectgarbage, getmetatable (the string metatable is shared with the
-- host), string.dump, print.
local SAFE_GLOBALS = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
  "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type",
  "xpcall", "_VERSION",
}
local SAFE_LIBS = { string = true, table = true, math = true, utf8 = true }
local ALLOWED = "rules and the safe basics: " .. concat(SAFE_GLOBALS, ", ", 1, #SAFE_GLOBALS - 1)
  .. ", string, table, math, utf8, null (cfaccess.null)"

--- The most memory (KiB, as collectgarbage("count") counts) a `.lua` state
-- file may add while it runs, and the longest string a string function may
-- make for it. A state is a few kilobytes; this stops `s = s .. s` loops and
-- `("x"):rep(1e10)` before they take the host's memory.
M.MAX_MEMORY_KB = 64 * 1024
local MAX_STRING = 16 * 1024 * 1024

-- Lua patterns backtrack: `(".-"):rep(12) .. "b"` on 40 characters runs
-- for hours inside one C call, where no hook can stop it. A pattern function
-- is refused when its subject length to the power (quantifiers + 1) is above
-- this (plain finds are linear and always allowed).
local MAX_PATTERN_COST = 1e9

-- Hand-written guards: Lua has no memory or time limit for one C call, so
-- the functions that can make a huge string or run for hours in one call
-- are checked before they run.
local function refuse(fname, why)
  error(format("string.%s: %s (a state file is limited)", fname, why), 3)
end

-- string.rep loops once per repetition in one C call, whatever the
-- lengths: `(""):rep(math.maxinteger)` makes nothing and never ends, so a
-- count above the string limit is refused too.
local function checked_rep(s, n, sep)
  local len, count = #tostring(s), tonumber(n) or 0
  if count > MAX_STRING then refuse("rep", format("%.0f repetitions", count)) end
  local total = len * count + (sep and #tostring(sep) * (count - 1) or 0)
  if total > MAX_STRING then refuse("rep", format("the result would be %.0f bytes", total)) end
  return string.rep(s, n, sep)
end

local function pattern_guard(fname, f)
  return function(s, pat, init, plain, ...)
    if fname == "find" and plain then return f(s, pat, init, plain, ...) end
    local q = 0
    -- the host's functions called directly: string methods reach the
    -- guarded table while the chunk runs
    local p = string.gsub(tostring(pat), "%%.", "x")
    for _ in string.gmatch(p, "[%*%+%-%?]") do q = q + 1 end
    local n = #tostring(s)
    if n > 1 and q > 0 and n ^ (q + 1) > MAX_PATTERN_COST then
      refuse(fname, format("the pattern has %d quantifiers for %d bytes of subject (it could backtrack for hours)",
        q, n))
    end
    if fname == "gsub" and (type(init) == "string" or type(init) == "table") then
      -- init is gsub's replacement: the result is at most one per byte
      local longest = 0
      if type(init) == "string" then longest = #init
      else for _, v in next, init do if type(v) == "string" and #v > longest then longest = #v end end end
      if (n + 1) * longest > MAX_STRING then
        refuse(fname, format("the result could be %.0f bytes", (n + 1) * longest))
      end
    end
    local r = table.pack(f(s, pat, init, plain, ...))
    if fname == "gsub" and type(r[1]) == "string" and #r[1] > MAX_STRING then
      refuse(fname, format("the result is %d bytes", #r[1]))
    end
    return table.unpack(r, 1, r.n)
  end
end

local function checked_concat(t, sep, i, j)
  local total, seplen = 0, sep and #tostring(sep) or 0
  for k = i or 1, j or #t do
    local v = t[k]
    total = total + (type(v) == "string" and #v or 32) + seplen
    if total > MAX_STRING then
      error(format("table.concat: the result would be over %d bytes (a state file is limited)", MAX_STRING), 2)
    end
  end
  return table.concat(t, sep, i, j)
end

local function checked_format(fmt, ...)
  local total = #tostring(fmt)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    total = total + (type(v) == "string" and #v or 0) + 100
  end
  if total > MAX_STRING then refuse("format", format("the result could be %d bytes", total)) end
  return string.format(fmt, ...)
end

local MAX_MOVE = 1000000
local function checked_move(a1, f, e, t, a2)
  if type(f) == "number" and type(e) == "number" and e - f > MAX_MOVE then
    error(format("table.move: %.0f elements (a state file is limited to %d)", e - f + 1, MAX_MOVE), 2)
  end
  return table.move(a1, f, e, t, a2)
end

-- A finalizer would run later, in the host, outside every limit.
local function checked_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: a __gc metamethod is not available in a state file", 2)
  end
  return setmetatable(t, mt)
end

-- A copy of a table (one level): the file may change its copy, never the
-- host's table (the rule builders are the host's module).
local copy_of = common.copy

-- A fresh environment for one state file: copies, so the file cannot change
-- the host's tables. Reading any other global raises an error naming it
-- (`os is not available in a state file ...`), so `os.execute(...)` fails
-- with a clear message rather than "attempt to index a nil value".
local function sandbox_env()
  -- null: cfaccess.null (lua-cjson's), for `session_duration = null` as dump writes it
  local env = { rules = copy_of(rules), null = cjson().null }
  for _, name in ipairs(SAFE_GLOBALS) do env[name] = _G[name] end
  for lib in pairs(SAFE_LIBS) do env[lib] = copy_of(_G[lib]) end
  env.setmetatable = checked_setmetatable
  local str = env.string
  -- string.pack("c2000000000", "") makes 2 GB in one call
  str.dump, str.pack, str.unpack, str.packsize = nil, nil, nil, nil
  env.table.move = checked_move
  str.rep, str.format = checked_rep, checked_format
  for _, fname in ipairs{ "find", "match", "gmatch", "gsub" } do str[fname] = pattern_guard(fname, string[fname]) end
  env.table.concat = checked_concat
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      error(format("%s is not available in a state file (it may use only %s)", tostring(k), ALLOWED), 2)
    end,
  })
end

local HOOK_EVERY = 1000
local MAX_MESSAGE = 1000

local function memory_message()
  return format("gave up: the file used more than %d MiB of memory", M.MAX_MEMORY_KB // 1024)
end

-- The message of an error the file raised, made in the host without running
-- any code of the file: a string (cut to MAX_MESSAGE bytes: it may be 16
-- MiB) or a number as it is, anything else (a table whose __tostring loops
-- or makes gigabytes) a fixed message naming its type.
local function error_text(e)
  if type(e) == "number" then return tostring(e) end
  if type(e) ~= "string" then return format("the file raised an error that is not a message (a %s)", type(e)) end
  if #e > MAX_MESSAGE then return e:sub(1, MAX_MESSAGE) .. format("... (%d bytes)", #e) end
  return e
end

-- Run chunk in its own coroutine with hooks on that coroutine only (so the
-- host's hooks, e.g. a coverage tool's, are left alone): at most
-- max_instructions instructions and M.MAX_MEMORY_KB more memory, checked on
-- every new line and loop iteration too ("l": `s = s .. s` in a loop grows
-- fast). Once a limit is passed every later hook raises again, so a file
-- that catches the error with pcall cannot go on. String methods
-- (`("x"):rep(n)`) go through the string metatable, shared with the host:
-- its __index is the sandbox's checked string table while the chunk runs,
-- and the host's again afterwards, whatever happened. The hook sees memory
-- only between instructions, and one instruction can allocate gigabytes
-- (`s .. s .. s ...`, 200 operands of 16 MiB, is one concatenation), so the
-- chunk also runs under the core's capped allocator (core._memcap_resume):
-- an allocation that would pass the same limit is refused before it is
-- made. An allocation refused even after Lua's emergency collection stops
-- the file at its next call or return (the allocator adds those events to
-- the hook): each refusal costs a full collection, so a
-- file catching them in a loop would otherwise run for hours. A refusal
-- whose retry succeeded (the collection freed enough) is no error. The
-- memory message is given when the hook stopped the file for memory or the
-- error that ended it is a memory error; the file's own error otherwise.
-- A full collection first, so that the host's garbage freed while the file
-- runs is not counted as the file's allowance (the allocator credits frees
-- only down to the memory in place when the file began).
local function run_bounded(chunk, max_instructions, strlib)
  local co = coroutine.create(chunk)
  local used, stop = 0, nil
  collectgarbage()
  local base = collectgarbage("count")
  debug.sethook(co, function(event)
    if stop then error(stop, 2) end
    if event == "count" then used = used + HOOK_EVERY end
    -- the allocator adds call and return events after a failed allocation
    -- (calling the core from here instead upsets Lua 5.4.4's hooks)
    if event ~= "count" and event ~= "line" then
      stop = memory_message()
    elseif used > max_instructions then
      stop = format("gave up after %d instructions (an endless loop?)", max_instructions)
    elseif collectgarbage("count") - base > M.MAX_MEMORY_KB then
      collectgarbage()
      if collectgarbage("count") - base > M.MAX_MEMORY_KB then stop = memory_message() end
    end
    if stop then
      debug.sethook(co, function() error(stop, 2) end, "l", 1)
      error(stop, 2)
    end
  end, "l", HOOK_EVERY)
  local smt = getmetatable("")
  local host_index = smt.__index
  smt.__index = strlib
  local _, status, res = core._memcap_resume(M.MAX_MEMORY_KB * 1024, co)
  smt.__index = host_index
  if status == "ok" and not stop then return true, res end
  if stop then
    -- the hook's error, with the file's line, unless the file raised another
    -- after it (every later hook raises again: it could not go on)
    if type(res) == "string" and #res <= MAX_MESSAGE and res:sub(-#stop) == stop then return nil, res end
    return nil, stop
  end
  if status == "memory" then return nil, memory_message() end
  if status == "yield" then return nil, "the chunk yielded" end
  return nil, error_text(res)
end

--- The deepest a state's tables may nest (a state is a few levels deep).
M.MAX_DEPTH = 200
--- The most tables a state may hold.
M.MAX_TABLES = 200000

-- A key as a path shows it: a long one cut (a key may be 16 MiB).
local function path_key(k, first)
  if type(k) ~= "string" then return "[" .. tostring(k) .. "]" end
  if #k > 64 then k = k:sub(1, 40) .. format("...(%d bytes)", #k) end
  return first and k or "." .. k
end

-- The path of the table being copied, from the keys on the way to it
-- (keys[1 .. depth - 1]): made only for an error, so that copying costs
-- memory in proportion to the state, not to its depth times its keys.
local function path_of(keys, depth)
  if depth == 1 then return "the returned table" end
  local parts = {}
  for i = 1, depth - 1 do parts[i] = path_key(keys[i], i == 1) end
  return concat(parts)
end

-- A copy of what a `.lua` file returned as plain tables: raw reads only, no
-- metatables, so no code of the file (__index, __pairs, __len, __eq ...)
-- runs later in the host, outside the sandbox's limits. A table that
-- contains itself, one nested deeper than M.MAX_DEPTH, more than
-- M.MAX_TABLES tables, or a key that is not a string or a number is an error
-- with its path. keys holds the keys from the top to v.
local function plain_copy(v, keys, depth, open)
  if type(v) ~= "table" then
    local t = type(v)
    if t == "function" or t == "thread" or (t == "userdata" and not rawequal(v, cjson().null)) then
      return nil, path_of(keys, depth) .. ": expected data, got a " .. type(v)
    end
    return v
  end
  if open[v] then return nil, path_of(keys, depth) .. ": the table contains itself" end
  if depth > M.MAX_DEPTH then
    return nil, path_of(keys, depth) .. ": nested deeper than " .. M.MAX_DEPTH .. " levels"
  end
  open.count = (open.count or 0) + 1
  if open.count > M.MAX_TABLES then
    return nil, path_of(keys, depth) .. ": more than " .. M.MAX_TABLES
      .. " tables (shared ones count each time they are reached)"
  end
  open[v] = true
  local c = {}
  for k, x in next, v do
    local kt = type(k)
    if kt ~= "string" and kt ~= "number" then return nil, path_of(keys, depth) .. ": a key of type " .. kt end
    keys[depth] = k
    local cx, err = plain_copy(x, keys, depth + 1, open)
    if err then return nil, err end
    c[k] = cx
  end
  keys[depth] = nil
  open[v] = nil
  return c
end

local function read_all(path)
  local f, oerr = io.open(path, "rb")
  if not f then return nil, oerr end
  local s, rerr = f:read("a")
  f:close()
  if not s then return nil, path .. ": " .. tostring(rerr) end
  return s
end

-- lua-cjson's token names, as a reader would say them.
local TOKEN_WORDS = {
  T_OBJ_BEGIN = "'{'", T_OBJ_END = "'}'", T_ARR_BEGIN = "'['", T_ARR_END = "']'",
  T_STRING = "a string", T_NUMBER = "a number", T_BOOLEAN = "a boolean", T_NULL = "null",
  T_COLON = "':'", T_COMMA = "','", T_END = "the end of the file",
}

--- Line and column (both from 1) of byte offset `pos` (from 1) in `text`.
-- Columns count UTF-8 characters where the line is valid UTF-8, else bytes.
function M.line_column(text, pos)
  local line, start = 1, 1
  local i = text:find("\n", 1, true)
  while i and i < pos do
    line, start = line + 1, i + 1
    i = text:find("\n", i + 1, true)
  end
  local prefix = text:sub(start, pos - 1)
  return line, (utf8.len(prefix) or #prefix) + 1
end

-- lua-cjson's "Expected value but found T_END at character 31" as
-- "3:5: expected a value but found the end of the file".
local function json_syntax_message(text, msg)
  msg = tostring(msg):gsub("^.-:%d+: ", "")
  local body, n = msg:match("^(.-) at character (%d+)$")
  if not body then body = msg end
  body = body:gsub("T_[%u_]+", TOKEN_WORDS)
  body = body:gsub("^Expected value", "Expected a value")
  body = body:gsub("^Expected the end", "Expected the end of the file")
  body = body:gsub("^Expected colon", "Expected ':'")
  body = body:gsub("^Expected comma or array end", "Expected ',' or ']'")
  body = body:gsub("^Expected comma or object end", "Expected ',' or '}'")
  body = body:gsub("^%u", string.lower)
  if n then
    local line, col = M.line_column(text, tonumber(n))
    return line, col, body
  end
  return nil, nil, body
end

-- lua-cjson 2.1.0 decodes every number as a float: make integral ones
-- integers again (precedence = 1, not 1.0) and check there are no nulls
-- hiding as userdata is left to the validator.
local function integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = integers(x) end
  elseif math.type(v) == "float" and v == math.floor(v) and v >= math.mininteger and v <= math.maxinteger then
    return math.tointeger(v)
  end
  return v
end

--- Decode JSON text into a Lua value; syntax errors as
-- `nil, err` with `err.line`, `err.column` and a message
-- `"name:line:column: JSON syntax error: ..."`.
-- @tparam string text the JSON text
-- @tparam[opt] string name the file name used in the message
function M.decode_json(text, name)
  local ok, v = pcall(cjson().decode, text)
  if ok then return integers(v) end
  local line, col, body = json_syntax_message(text, v)
  local where = (name or "JSON") .. (line and (":" .. line .. ":" .. col) or "")
  local e = mkerr("invalid", where .. ": JSON syntax error: " .. body)
  e.line, e.column, e.reason = line, col, body
  return nil, e
end

--- Read a state (or a policy, or a list of policies) from a file.
-- `.lua`: a chunk returning a table, run with only `rules` and the safe
-- basics in its environment and at most `max_instructions` instructions;
-- `.json`: decoded with lua-cjson. Nothing is validated here (see `validate`).
-- (cfaccess.state.load checks the arguments and gives the limit.)
-- @tparam string path a `.lua` or `.json` file
-- @tparam number max_instructions the most instructions a `.lua` file may run
-- @return the table, or `nil, err` (`err.kind` `"invalid"`: syntax, a
-- refused global, not a table; `"usage"`: another suffix or an unreadable file)
function M.load(path, max_instructions)
  local text, rerr = read_all(path)
  if not text then return nil, mkerr("usage", "cannot read " .. tostring(rerr)) end
  -- a UTF-8 byte order mark (some editors write one) is not part of the text
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  local value
  if path:match("%.json$") then
    local v, derr = M.decode_json(text, path)
    if derr then return nil, derr end
    value = v
  elseif path:match("%.lua$") then
    local env = sandbox_env()
    local chunk, lerr = load(text, "@" .. path, "t", env)
    if not chunk then return nil, mkerr("invalid", lerr) end
    local ok, res = run_bounded(chunk, max_instructions, env.string)
    if not ok then return nil, mkerr("invalid", res) end
    if type(res) == "table" then
      local c, cerr = plain_copy(res, {}, 1, {})
      if cerr then cerr = path .. ": " .. cerr end
      if cerr then return nil, mkerr("invalid", cerr) end
      res = c
    end
    value = res
  else
    return nil, mkerr("usage", path .. ": expected a .lua or .json file")
  end
  if type(value) ~= "table" then
    return nil, mkerr("invalid", path .. ": expected a table (a state, a policy or a list of policies), got "
      .. type(value))
  end
  return value
end

return M
