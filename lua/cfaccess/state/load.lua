--- Reading state files: a `.lua` chunk run in a sandbox (only `rules` and
-- safe basics, a bounded number of instructions) or `.json` decoded with
-- lua-cjson (syntax errors with line:column).
-- @module cfaccess.state.load
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
  .. ", string, table, math, utf8"

-- A fresh environment for one state file: copies, so the file cannot change
-- the host's tables. Reading any other global raises an error naming it
-- (`os is not available in a state file ...`), so `os.execute(...)` fails
-- with a clear message rather than "attempt to index a nil value".
local function sandbox_env()
  local env = { rules = rules }
  for _, name in ipairs(SAFE_GLOBALS) do env[name] = _G[name] end
  for lib in pairs(SAFE_LIBS) do
    local copy = {}
    for k, v in pairs(_G[lib]) do copy[k] = v end
    if lib == "string" then copy.dump = nil end
    env[lib] = copy
  end
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      error(format("%s is not available in a state file (it may use only %s)", tostring(k), ALLOWED), 2)
    end,
  })
end

local HOOK_EVERY = 10000

-- Run chunk in its own coroutine with a count hook on that coroutine only
-- (so the host's hooks, e.g. a coverage tool's, are left alone); at most
-- max_instructions instructions.
local function run_bounded(chunk, max_instructions)
  local co = coroutine.create(chunk)
  local used = 0
  debug.sethook(co, function()
    used = used + HOOK_EVERY
    if used > max_instructions then
      error(format("gave up after %d instructions (an endless loop?)", max_instructions), 2)
    end
  end, "", HOOK_EVERY)
  local ok, res = coroutine.resume(co)
  if not ok then return nil, tostring(res) end
  if coroutine.status(co) ~= "dead" then return nil, "the chunk yielded" end
  return true, res
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
    local chunk, lerr = load(text, "@" .. path, "t", sandbox_env())
    if not chunk then return nil, mkerr("invalid", lerr) end
    local ok, res = run_bounded(chunk, max_instructions)
    if not ok then return nil, mkerr("invalid", res) end
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
