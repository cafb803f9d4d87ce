--- Writing states: Lua text with the rule builders (`r.email("a@x")`), or
-- pretty canonical JSON; what `cfaccess.state.load` reads back to an equal
-- state.
-- @module cfaccess.state.dump
local core = require("cfaccess.core")
local common = require("cfaccess.state.common")
local check = require("cfaccess.state.check")
local canonical = require("cfaccess.state.tree")

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, concat = string.format, table.concat
local cjson, mkerr, keypath, sorted_keys = common.cjson, common.mkerr, common.keypath, common.sorted_keys
local NOT_A_LIST, LEGACY_KINDS = common.NOT_A_LIST, common.LEGACY_KINDS
local parse_canonical, json_string, pretty = canonical.parse, canonical.json_string, canonical.write

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
  -- a state file's environment has `null` (cfaccess.null): "nil" would drop the field
  if v == cjson().null then return "null" end
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
  local shape = check.shape(value)
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
  if check.shape(state) ~= "state" then
    error("cfaccess.state.dump: the \"lua\" format writes states (a table with policies or apps)", 2)
  end
  local tree, err = state_tree(state)
  if not tree then return nil, err end
  local out = {}
  lua_state(tree, opts, out)
  return concat(out)
end

return M
