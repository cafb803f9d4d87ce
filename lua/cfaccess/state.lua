--- cfaccess.state: desired-state files (API.md section 8), read and written.
--
--     local state = assert(cfaccess.state.load("access.lua"))   -- or .json
--     print(cfaccess.state.dump(state, "lua"))                   -- or "json"
--     local ok, err, warnings = cfaccess.state.validate(state)
--
-- A state is `{ policies = { reusable policy, ... }, apps = { [app_id] =
-- { "name or id", ... } | { legacy = { app policy, ... } } } }`.
-- `load` reads a `.lua` file (a chunk returning a state, run in a sandbox
-- whose environment holds only `rules` and safe basics) or a `.json` file
-- (lua-cjson; syntax errors with line:column). It only reads: it checks that
-- the file gives a table, and leaves the policies to `validate` (so that
-- every problem can be reported with its path) and to `client:plan`.
-- `dump` writes readable text that `load` reads back to an equal state.
-- @module cfaccess.state
local core = require("cfaccess.core")
local rules = require("cfaccess.rules")
-- lua-cjson, a private instance (nobody else's settings), loaded on first
-- use: `require("cfaccess")` loads this module, and a host that embeds the
-- core statically without lua-cjson on its path must still be able to.
local cjson_instance
local function cjson()
  cjson_instance = cjson_instance or require("cjson").new()
  return cjson_instance
end

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, concat, sort = string.format, table.concat, table.sort

local M = {}

-- The rule specs (lua helper's lua/cfaccess/rulespec.lua): one entry per
-- builder, { builder =, key =, args = { inner field, ... }, optional = {} }.
-- Until it is merged the Lua dump writes rules as table literals, which
-- load back just the same.
local specs_by_key
do
  local ok, specs = pcall(require, "cfaccess.rulespec")
  if ok and type(specs) == "table" then
    specs_by_key = {}
    for _, s in ipairs(specs) do
      -- the first builder for a key wins (list helpers such as emails are
      -- not in the spec; if several builders shared a key, the plain one
      -- comes first)
      if s.key and not specs_by_key[s.key] then specs_by_key[s.key] = s end
    end
  end
end

--- Is the Lua dump written with builder calls (`r.email("a@x")`)? False
-- until lua/cfaccess/rulespec.lua is available.
M.uses_builders = specs_by_key ~= nil

-- ---------------------------------------------------------------- errors

local function err_mt_tostring(e) return e.message end
local ERR_MT = { __tostring = err_mt_tostring }

-- An error table as the core makes them ({ kind, message [, problems] }).
local function mkerr(kind, message, problems)
  return setmetatable({ kind = kind, message = message, problems = problems }, ERR_MT)
end

-- --------------------------------------------------------------- loading

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

--- Instructions a `.lua` state file may run (a count hook stops it after
-- this many, so a file with an endless loop cannot hang the command).
M.MAX_INSTRUCTIONS = 50000000
local HOOK_EVERY = 10000

-- Run chunk in its own coroutine with a count hook on that coroutine only
-- (so the host's hooks, e.g. a coverage tool's, are left alone).
local function run_bounded(chunk)
  local co = coroutine.create(chunk)
  local used = 0
  debug.sethook(co, function()
    used = used + HOOK_EVERY
    if used > M.MAX_INSTRUCTIONS then
      error(format("gave up after %d instructions (an endless loop?)", M.MAX_INSTRUCTIONS), 2)
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
-- basics in its environment and at most `MAX_INSTRUCTIONS` instructions;
-- `.json`: decoded with lua-cjson. Nothing is validated here (see `validate`).
-- @tparam string path a `.lua` or `.json` file
-- @return the table, or `nil, err` (`err.kind` `"invalid"`: syntax, a
-- refused global, not a table; `"usage"`: another suffix or an unreadable file)
function M.load(path)
  if type(path) ~= "string" then
    error("cfaccess.state.load: argument #1 (path) expected a string, got " .. type(path), 2)
  end
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
    local ok, res = run_bounded(chunk)
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

-- ------------------------------------------------------------ validation

local STATE_KEYS = { policies = true, apps = true }

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

--- What a file's table is: `"state"` (it has `policies` or `apps`),
-- `"list"` (a non-empty list of policies) or `"policy"`.
function M.shape(t)
  if type(t) ~= "table" then return nil end
  if t.policies ~= nil or t.apps ~= nil then return "state" end
  if t[1] ~= nil and is_list(t) then return "list" end
  return "policy"
end

local function is_uuid(s)
  local h4 = "%x%x%x%x"
  return type(s) == "string" and s:match("^" .. h4 .. h4 .. "%-" .. h4 .. "%-" .. h4 .. "%-" .. h4 .. "%-"
    .. h4 .. h4 .. h4 .. "$") ~= nil
end
local function is_app_id(s)
  return is_uuid(s) or (type(s) == "string" and #s == 32 and s:match("^%x+$") ~= nil)
end

-- A Lua-style path component for a table key.
local function keypath(k)
  if type(k) == "string" then
    if k:match("^[%a_][%w_]*$") then return "." .. k end
    return format("[%q]", k)
  end
  return "[" .. tostring(k) .. "]"
end

-- Validate one policy as kind; problems and warnings get `prefix`.
local function check_policy(p, kind, prefix, opts, problems, warnings)
  if type(p) ~= "table" then
    problems[#problems + 1] = { path = prefix, message = "expected a policy (a table), got " .. type(p) }
    return
  end
  local ok, err, warns = core.validate(p, { kind = kind, legacy = opts.legacy, allow_unknown = opts.allow_unknown })
  local sep = prefix == "" and "" or "."
  if not ok then
    for _, pr in ipairs(err.problems or { { path = "", message = err.message } }) do
      local path = pr.path or ""
      if path == "" then path = prefix
      elseif path:sub(1, 1) == "[" then path = prefix .. path
      else path = prefix .. sep .. path end
      problems[#problems + 1] = { path = path, message = pr.message }
    end
  end
  for _, w in ipairs(warns or {}) do
    local path = w.path or ""
    if path == "" then path = prefix
    elseif path:sub(1, 1) == "[" then path = prefix .. path
    else path = prefix .. sep .. path end
    warnings[#warnings + 1] = { path = path, message = w.message }
  end
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end

-- Names used twice in a list of policies: a problem at the second use.
local function unique_names(list, prefix, problems)
  local seen = {}
  for i, p in ipairs(list) do
    local name = type(p) == "table" and p.name
    if type(name) == "string" then
      if seen[name] then
        problems[#problems + 1] = { path = format("%s[%d].name", prefix, i),
          message = format("%q is used twice (also %s[%d].name); names must be unique in a state",
            name, prefix, seen[name]) }
      else
        seen[name] = i
      end
    end
  end
  return seen
end

local NOT_A_LIST = "expected a list of policy names or ids, or { legacy = { ... } }"
-- an app's legacy policies are of this kind when the state says so
-- (`{ legacy = {...}, kind = "infrastructure" }`, as export writes it)
local LEGACY_KINDS = { app = true, zone = true, infrastructure = true }

local function describe(v)
  if type(v) == "string" then return format("%q", v) end
  return type(v)
end

local function check_state(s, opts, problems, warnings)
  local function add(path, message) problems[#problems + 1] = { path = path, message = message } end
  for _, k in ipairs(sorted_keys(s)) do
    if not STATE_KEYS[k] then
      problems[#problems + 1] = { path = tostring(k):match("^[%a_][%w_]*$") and tostring(k) or keypath(k),
        message = "unknown field (a state has policies and apps)" }
    end
  end
  local names = {}
  if s.policies ~= nil then
    if not is_list(s.policies) then
      problems[#problems + 1] = { path = "policies", message = "expected a list of reusable policies" }
    else
      for i, p in ipairs(s.policies) do
        check_policy(p, "reusable", format("policies[%d]", i), opts, problems, warnings)
      end
      names = unique_names(s.policies, "policies", problems)
    end
  end
  if s.apps ~= nil then
    if type(s.apps) ~= "table" or (s.apps[1] ~= nil) then
      problems[#problems + 1] = { path = "apps", message = "expected a table of applications by id" }
      return
    end
    for _, id in ipairs(sorted_keys(s.apps)) do
      local entry, at = s.apps[id], "apps" .. keypath(id)
      if not is_app_id(id) then
        problems[#problems + 1] = { path = at, message = "an application id is a UUID (or 32 hex characters)" }
      end
      if type(entry) ~= "table" then
        add(at, NOT_A_LIST .. ", got " .. type(entry))
      elseif entry.legacy ~= nil then
        for k in pairs(entry) do
          if k ~= "legacy" and k ~= "kind" then
            add(at .. keypath(k), "unexpected next to legacy (an application has either a list of reusable "
              .. "policies or legacy policies)")
          end
        end
        local kind = opts.legacy_kind or "app"
        if entry.kind ~= nil then
          if not LEGACY_KINDS[entry.kind] then
            add(at .. ".kind", "expected \"app\", \"zone\" or \"infrastructure\", got " .. describe(entry.kind))
          else
            kind = entry.kind
          end
        end
        if not is_list(entry.legacy) then
          problems[#problems + 1] = { path = at .. ".legacy", message = "expected a list of application policies" }
        else
          for i, p in ipairs(entry.legacy) do
            check_policy(p, kind, format("%s.legacy[%d]", at, i), opts, problems, warnings)
          end
          unique_names(entry.legacy, at .. ".legacy", problems)
        end
      elseif not is_list(entry) then
        add(at, NOT_A_LIST)
      else
        local seen = {}
        for i, ref in ipairs(entry) do
          local p = format("%s[%d]", at, i)
          if type(ref) ~= "string" or ref == "" then
            add(p, "expected a policy name or id, got " .. (ref == "" and "an empty string" or type(ref)))
          elseif not names[ref] and not is_uuid(ref) then
            add(p, format("%q is not a policy of this state (nor a policy id)", ref))
          elseif seen[ref] then
            add(p, format("%q is listed twice (also %s[%d])", ref, at, seen[ref]))
          end
          if type(ref) == "string" then seen[ref] = seen[ref] or i end
        end
      end
    end
  end
end

--- Every problem (and warning) of a state, a policy or a list of policies,
-- with paths from the file's top: `policies[2].include[1]...` for a state,
-- `[2].include[1]...` for a list, `include[1]...` for a policy.
-- @tparam table value what `load` returned
-- @tparam[opt] table opts `kind` (for a policy or a list; default `"app"`;
-- a state's policies are `"reusable"` and its legacy ones `legacy_kind` or
-- `"app"`), `legacy`, `allow_unknown` (as for `cfaccess.validate`)
-- @treturn table problems, a list of `{ path =, message = }` (empty when valid)
-- @treturn table warnings, the same shape
-- @treturn string the shape: `"state"`, `"list"` or `"policy"`
function M.problems(value, opts)
  opts = opts or {}
  local problems, warnings = {}, {}
  local shape = M.shape(value)
  if shape == "state" then
    check_state(value, opts, problems, warnings)
  elseif shape == "list" then
    for i, p in ipairs(value) do check_policy(p, opts.kind or "app", format("[%d]", i), opts, problems, warnings) end
  elseif shape == "policy" then
    check_policy(value, opts.kind or "app", "", opts, problems, warnings)
  else
    problems[1] = { path = "", message = "expected a table, got " .. type(value) }
  end
  return problems, warnings, shape
end

--- Validate a state as `cfaccess.validate` does a policy.
-- @tparam table state
-- @tparam[opt] table opts as for `problems`
-- @return `true, nil, warnings` or `nil, err` (`err.kind == "invalid"`, `err.problems`), warnings
function M.validate(state, opts)
  local problems, warnings = M.problems(state, opts)
  local warns = #warnings > 0 and warnings or nil
  if #problems == 0 then return true, nil, warns end
  local first = problems[1]
  local msg = "invalid state: " .. (first.path ~= "" and (first.path .. ": ") or "") .. first.message
  if #problems > 1 then
    msg = msg .. format(" (and %d more problem%s)", #problems - 1, #problems > 2 and "s" or "")
  end
  return nil, mkerr("invalid", msg, problems), warns
end

-- ---------------------------------------------------- canonical JSON tree

-- Canonical JSON (cfaccess.encode's output) parsed into a tree that keeps
-- key order: lua-cjson decodes objects into Lua tables, which lose the
-- schema's field order, and has no pretty printer. The input is our own
-- encoder's output (no whitespace, valid), so a small reader is enough:
-- node = { obj = true, keys = {...}, vals = {...} } | { arr = true, ... }
-- | { raw = "token text", value = lua value }.
local function parse_canonical(s)
  local pos = 1
  local value
  local function skip() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local function str_token()
    local i = pos + 1
    while true do
      local c = s:find('["\\]', i)
      if not c then error("cfaccess.state: unterminated string in canonical JSON") end
      if s:sub(c, c) == "\\" then i = c + 2 else
        local raw = s:sub(pos, c)
        pos = c + 1
        return raw
      end
    end
  end
  function value()
    skip()
    local c = s:sub(pos, pos)
    if c == "{" or c == "[" then
      local obj = c == "{"
      local node = { obj = obj, arr = not obj, keys = {}, vals = {} }
      pos = pos + 1
      skip()
      local close = obj and "}" or "]"
      if s:sub(pos, pos) == close then pos = pos + 1; return node end
      while true do
        if obj then
          skip()
          local raw = str_token()
          node.keys[#node.keys + 1] = cjson().decode(raw)
          skip()
          pos = pos + 1   -- ':'
        end
        node.vals[#node.vals + 1] = value()
        skip()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == close then return node end
      end
    elseif c == '"' then
      local raw = str_token()
      return { raw = raw, value = cjson().decode(raw) }
    else
      local raw = s:match("^[^,%]}%s]+", pos)
      pos = pos + #raw
      local v
      if raw == "true" then v = true elseif raw == "false" then v = false
      elseif raw == "null" then v = cjson().null
      else v = math.tointeger(tonumber(raw)) or tonumber(raw) end
      return { raw = raw, value = v }
    end
  end
  return value()
end

-- JSON text of one string, as the canonical encoder writes it: lua-cjson
-- would escape "/" as "\/", which the canonical form does not.
local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                   ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return JSON_ESC[c] or format("\\u%04x", c:byte())
  end) .. '"'
end

-- Does the node hold an array of objects or arrays somewhere (a policy's
-- rule lists, a list of policies)? Those are always written over lines.
local function has_nested_list(node)
  if node.raw then return false end
  for _, v in ipairs(node.vals) do
    if v.arr and v.vals[1] and not v.vals[1].raw then return true end
    if has_nested_list(v) then return true end
  end
  return node.arr and node.vals[1] ~= nil and not node.vals[1].raw
end

-- The node on one line: { "email": { "email": "a@example.com" } }.
local function json_inline(node)
  if node.raw then return node.raw end
  if #node.vals == 0 then return node.obj and "{}" or "[]" end
  local parts = {}
  for i, v in ipairs(node.vals) do
    parts[i] = (node.obj and (json_string(node.keys[i]) .. ": ") or "") .. json_inline(v)
  end
  return node.obj and ("{ " .. concat(parts, ", ") .. " }") or ("[ " .. concat(parts, ", ") .. " ]")
end

local JSON_WIDTH = 100

-- Pretty JSON of a tree: two-space indent; a rule, a string list or any
-- value without a nested list on one line when it fits in JSON_WIDTH
-- columns; empty objects and arrays as {} and [].
local function pretty(node, indent, out)
  if node.raw then out[#out + 1] = node.raw; return end
  local n = #node.vals
  if n == 0 then out[#out + 1] = node.obj and "{}" or "[]"; return end
  if #indent > 0 and not has_nested_list(node) then
    local line = json_inline(node)
    if #indent + #line <= JSON_WIDTH then out[#out + 1] = line; return end
  end
  local inner = indent .. "  "
  out[#out + 1] = node.obj and "{\n" or "[\n"
  for i = 1, n do
    out[#out + 1] = inner
    if node.obj then out[#out + 1] = json_string(node.keys[i]) .. ": " end
    pretty(node.vals[i], inner, out)
    out[#out + 1] = i < n and ",\n" or "\n"
  end
  out[#out + 1] = indent .. (node.obj and "}" or "]")
end

--- Pretty-print canonical JSON text (two-space indent, key order kept).
-- @tparam string json e.g. `cfaccess.encode(policy)`
-- @treturn string the same JSON over several lines, ending with a newline
function M.pretty_json(json)
  local out = {}
  pretty(parse_canonical(json), "", out)
  out[#out + 1] = "\n"
  return concat(out)
end

-- ----------------------------------------------------------------- dumping

local function leaf(v) return { raw = type(v) == "string" and json_string(v) or tostring(v), value = v } end

-- legacy = true: a state read from the live API (export) may hold the 2024
-- rule shapes; dump writes them as they are (as table literals).
local function encode_tree(p, kind, path)
  local json, err = core.encode(p, { kind = kind, legacy = true })
  if not json then
    local e = mkerr("invalid", path .. ": " .. tostring(err.message or err), err.problems)
    return nil, e
  end
  return parse_canonical(json)
end

-- The state as one tree: policies (each as the canonical encoder orders
-- it), then apps by id (sorted, so the output does not depend on pairs).
local function state_tree(state)
  local root = { obj = true, keys = {}, vals = {} }
  if state.policies ~= nil then
    local arr = { arr = true, keys = {}, vals = {} }
    for i, p in ipairs(state.policies) do
      local t, err = encode_tree(p, "reusable", format("policies[%d]", i))
      if not t then return nil, err end
      arr.vals[i] = t
    end
    root.keys[#root.keys + 1] = "policies"
    root.vals[#root.vals + 1] = arr
  end
  if state.apps ~= nil then
    local apps = { obj = true, keys = {}, vals = {} }
    for _, id in ipairs(sorted_keys(state.apps)) do
      local entry = state.apps[id]
      local node
      if type(entry) == "table" and entry.legacy ~= nil then
        local arr = { arr = true, keys = {}, vals = {} }
        local kind = LEGACY_KINDS[entry.kind] and entry.kind or "app"
        for i, p in ipairs(entry.legacy) do
          local t, err = encode_tree(p, kind, format("apps%s.legacy[%d]", keypath(id), i))
          if not t then return nil, err end
          arr.vals[i] = t
        end
        node = { obj = true, keys = { "legacy" }, vals = { arr } }
        if entry.kind ~= nil then
          node.keys[2], node.vals[2] = "kind", leaf(tostring(entry.kind))
        end
      elseif type(entry) == "table" then
        node = { arr = true, keys = {}, vals = {} }
        for i, ref in ipairs(entry) do node.vals[i] = leaf(ref) end
      else
        return nil, mkerr("invalid", "apps" .. keypath(id) .. ": " .. NOT_A_LIST)
      end
      apps.keys[#apps.keys + 1] = tostring(id)
      apps.vals[#apps.vals + 1] = node
    end
    root.keys[#root.keys + 1] = "apps"
    root.vals[#root.vals + 1] = apps
  end
  return root
end

-- Lua text of a scalar leaf.
local function lua_scalar(node)
  local v = node.value
  if type(v) == "string" then return (format("%q", v):gsub("\\\n", "\\n")) end
  if v == cjson().null then return "nil" end
  return tostring(v)
end

local function lua_key(k)
  if k:match("^[%a_][%w_]*$") and not ({ ["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1,
      ["elseif"] = 1, ["end"] = 1, ["false"] = 1, ["for"] = 1, ["function"] = 1, ["goto"] = 1,
      ["if"] = 1, ["in"] = 1, ["local"] = 1, ["nil"] = 1, ["not"] = 1, ["or"] = 1,
      ["repeat"] = 1, ["return"] = 1, ["then"] = 1, ["true"] = 1, ["until"] = 1,
      ["while"] = 1 })[k] then
    return k
  end
  return "[" .. format("%q", k) .. "]"
end

-- Lua text of a tree on one line ({ a = 1, b = { "x" } }).
local function lua_inline(node)
  if node.raw then return lua_scalar(node) end
  if #node.vals == 0 then return "{}" end
  local parts = {}
  for i, v in ipairs(node.vals) do
    parts[i] = (node.obj and (lua_key(node.keys[i]) .. " = ") or "") .. lua_inline(v)
  end
  return "{ " .. concat(parts, ", ") .. " }"
end

-- A rule node as a builder call (`r.email("a@x.com")`), or nil when the
-- rule's shape is not exactly what its builder makes (unknown or legacy
-- fields, empty strings): those are written as table literals.
local function builder_call(rule)
  if not specs_by_key or not rule.obj or #rule.keys ~= 1 then return nil end
  local spec = specs_by_key[rule.keys[1]]
  local inner = rule.vals[1]
  if not spec or not inner.obj then return nil end
  local fields = {}
  for i, k in ipairs(inner.keys) do fields[k] = inner.vals[i] end
  local known = {}
  for _, a in ipairs(spec.args) do known[a] = true end
  for k in pairs(fields) do if not known[k] then return nil end end
  local args, last = {}, 0
  for i, a in ipairs(spec.args) do
    local v = fields[a]
    if v == nil then
      if not (spec.optional and spec.optional[a]) then return nil end
      args[i] = "nil"
    elseif spec.list and spec.list[a] then
      if not v.arr then return nil end
      for _, e in ipairs(v.vals) do
        if not e.raw or type(e.value) ~= "string" or e.value == "" then return nil end
      end
      args[i] = lua_inline(v)
      last = i
    elseif v.raw and type(v.value) == "string" and v.value ~= "" then
      args[i] = lua_scalar(v)
      last = i
    else
      return nil
    end
  end
  return "r." .. spec.builder .. "(" .. concat(args, ", ", 1, last) .. ")"
end

local RULE_LISTS = { include = true, exclude = true, require = true }

-- A policy's tree as Lua: one field per line, one rule per line.
local function lua_policy(node, indent, out)
  local inner = indent .. "  "
  out[#out + 1] = "{\n"
  for i, k in ipairs(node.keys) do
    local v = node.vals[i]
    out[#out + 1] = inner .. lua_key(k) .. " = "
    if RULE_LISTS[k] and v.arr and #v.vals > 0 then
      out[#out + 1] = "{\n"
      for _, rule in ipairs(v.vals) do
        out[#out + 1] = inner .. "  " .. (builder_call(rule) or lua_inline(rule)) .. ",\n"
      end
      out[#out + 1] = inner .. "},\n"
    else
      out[#out + 1] = lua_inline(v) .. ",\n"
    end
  end
  out[#out + 1] = indent .. "}"
end

-- A comment line for an app: "-- Staff portal (portal.example.com)".
local function app_comment(info)
  if type(info) ~= "table" then return nil end
  local name, domain = info.name, info.domain
  local parts = {}
  if type(name) == "string" and name ~= "" then parts[#parts + 1] = name end
  if type(domain) == "string" and domain ~= "" then parts[#parts + 1] = "(" .. domain .. ")" end
  if #parts == 0 then return nil end
  return (concat(parts, " "):gsub("[\r\n]", " "))
end

local function lua_state(tree, opts, out)
  out[#out + 1] = "-- cfaccess state (cfaccess.state.dump): read it with cfaccess.state.load\n"
  out[#out + 1] = "local r = rules\n\nreturn {\n"
  local app_info = opts.apps or {}
  for ti, key in ipairs(tree.keys) do
    local node = tree.vals[ti]
    if key == "policies" then
      out[#out + 1] = "  policies = {\n"
      for _, p in ipairs(node.vals) do
        out[#out + 1] = "    "
        lua_policy(p, "    ", out)
        out[#out + 1] = ",\n"
      end
      out[#out + 1] = "  },\n"
    else
      out[#out + 1] = "  apps = {\n"
      for i, id in ipairs(node.keys) do
        local entry = node.vals[i]
        local c = app_comment(app_info[id])
        if c then out[#out + 1] = "    -- " .. c .. "\n" end
        out[#out + 1] = "    [" .. format("%q", id) .. "] = "
        if entry.obj then
          out[#out + 1] = "{\n      legacy = {\n"
          for _, p in ipairs(entry.vals[1].vals) do
            out[#out + 1] = "        "
            lua_policy(p, "        ", out)
            out[#out + 1] = ",\n"
          end
          out[#out + 1] = "      },\n"
          if entry.vals[2] then out[#out + 1] = "      kind = " .. lua_scalar(entry.vals[2]) .. ",\n" end
          out[#out + 1] = "    },\n"
        else
          out[#out + 1] = lua_inline(entry) .. ",\n"
        end
      end
      out[#out + 1] = "  },\n"
    end
  end
  out[#out + 1] = "}\n"
end

-- A JSON tree of the file's value for `dump`/`fmt`: a state, a list of
-- policies or one policy (tried as kind opts.kind, else app, then
-- infrastructure, then group, so that any valid policy file formats).
local function value_tree(value, opts)
  local shape = M.shape(value)
  if shape == "state" then return state_tree(value) end
  local function one(p, path)
    local kinds = opts.kind and { opts.kind } or { "app", "infrastructure", "group" }
    local first_err
    for _, kind in ipairs(kinds) do
      local ok, json, err = pcall(core.encode, p, { kind = kind, legacy = true })
      if ok and json then return parse_canonical(json) end
      first_err = first_err or (ok and err) or nil
    end
    local msg = tostring(first_err and first_err.message or "not a policy")
    return nil, mkerr("invalid", (path ~= "" and path .. ": " or "") .. msg, first_err and first_err.problems)
  end
  if shape == "list" then
    local arr = { arr = true, keys = {}, vals = {} }
    for i, p in ipairs(value) do
      local t, err = one(p, format("[%d]", i))
      if not t then return nil, err end
      arr.vals[i] = t
    end
    return arr
  end
  return one(value, "")
end

--- Readable text of a state that `load` reads back to an equal state.
-- `"lua"`: a chunk using the `cfaccess.rules` builders (one rule per line,
-- a comment with each app's name and domain when `opts.apps` gives them);
-- `"json"`: pretty canonical JSON (policies in the schema's field order).
-- A policy or a list of policies is written too (JSON only: used by `fmt`).
-- @tparam table state
-- @tparam string fmt `"lua"` or `"json"`
-- @tparam[opt] table opts `apps = { [app_id] = { name =, domain = } }`
-- @return the text, or `nil, err` (`invalid`: a policy that does not encode)
function M.dump(state, fmt, opts)
  if type(state) ~= "table" then
    error("cfaccess.state.dump: argument #1 (state) expected a table, got " .. type(state), 2)
  end
  if fmt ~= "lua" and fmt ~= "json" then
    error("cfaccess.state.dump: argument #2 (format) expected \"lua\" or \"json\", got " .. tostring(fmt), 2)
  end
  opts = opts or {}
  if fmt == "json" then
    local tree, err = value_tree(state, opts)
    if not tree then return nil, err end
    local out = {}
    pretty(tree, "", out)
    out[#out + 1] = "\n"
    return concat(out)
  end
  if M.shape(state) ~= "state" then
    error("cfaccess.state.dump: the \"lua\" format writes states (a table with policies or apps)", 2)
  end
  local tree, err = state_tree(state)
  if not tree then return nil, err end
  local out = {}
  lua_state(tree, opts, out)
  return concat(out)
end

return M
