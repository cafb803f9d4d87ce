--- Canonical JSON (cfaccess.encode's output) as a tree that keeps key
-- order, and that tree written as pretty JSON.
-- @module cfaccess.state.tree
local common = require("cfaccess.state.common")

local ipairs, error = ipairs, error
local format, concat = string.format, table.concat
local cjson = common.cjson

local M = {}

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

--- The tree of canonical JSON text: `{ obj = true, keys =, vals = }`,
-- `{ arr = true, keys = {}, vals = }` or `{ raw = token text, value = }`.
-- @function parse
M.parse = parse_canonical

--- One JSON string as the canonical encoder writes it.
-- @function json_string
M.json_string = json_string

--- Append the pretty JSON of a tree to list `out` (no final newline).
-- @function write
-- @tparam table node the tree
-- @tparam string indent the indent of the line it starts on
-- @tparam table out the list of pieces
M.write = pretty

--- Pretty-print canonical JSON text (two-space indent, key order kept).
-- @tparam string json e.g. `cfaccess.encode(policy)`
-- @treturn string the same JSON over several lines, ending with a newline
function M.pretty_json(json)
  local out = {}
  pretty(parse_canonical(json), "", out)
  out[#out + 1] = "\n"
  return concat(out)
end

return M
