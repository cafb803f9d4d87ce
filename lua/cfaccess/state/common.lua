--- What cfaccess.state's parts share: errors, the private lua-cjson, paths
-- of table keys, key order, the shapes an app entry takes.
-- @module cfaccess.state.common
local M = {}

-- lua-cjson, a private instance (nobody else's settings), loaded on first
-- use: `require("cfaccess")` loads cfaccess.state, and a host that embeds
-- the core statically without lua-cjson on its path must still be able to.
local cjson_instance
--- The private lua-cjson instance (created on first use).
function M.cjson()
  cjson_instance = cjson_instance or require("cjson").new()
  return cjson_instance
end

local function err_mt_tostring(e) return e.message end
local ERR_MT = { __tostring = err_mt_tostring }

--- An error table as the core makes them ({ kind, message [, problems] }).
function M.mkerr(kind, message, problems)
  return setmetatable({ kind = kind, message = message, problems = problems }, ERR_MT)
end

--- Is `t` a list (a table whose keys are exactly 1..#t)?
function M.is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

--- A copy of table `t`, one level deep: the caller may change the copy's
-- fields, never `t`'s.
function M.copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- A Lua-style path component for a table key (`.name`, `["a b"]`, `[3]`).
function M.keypath(k)
  if type(k) == "string" then
    if k:match("^[%a_][%w_]*$") then return "." .. k end
    return string.format("[%q]", k)
  end
  return "[" .. tostring(k) .. "]"
end

--- The keys of `t` in a stable order: strings and numbers by value, other
-- types after them by type name.
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end

--- What an app entry that is neither a list nor `{ legacy = }` should be.
M.NOT_A_LIST = "expected a list of policy names or ids, or { legacy = { ... } }"
--- An app's legacy policies are of this kind when the state says so
-- (`{ legacy = {...}, kind = "infrastructure" }`, as export writes it).
M.LEGACY_KINDS = { app = true, zone = true, infrastructure = true }

return M
