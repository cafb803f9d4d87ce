--- What cfaccess.plan's parts and cfaccess.apply share: errors in the
-- core's shape, option checks, ids and paths, deep copies.
-- @module cfaccess.plan.common
local core = require("cfaccess.core")

local M = {}

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local HEX32 = "^" .. ("%x"):rep(32) .. "$"
--- Lua pattern of a UUID (a policy id).
M.UUID = UUID
--- How many requests plan, export and apply run at once by default.
M.DEFAULT_CONCURRENCY = 4

-- The error metatable of the core (tostring(err) == err.message).
local ERR_MT = getmetatable(select(2, core.validate({})))

--- An error table as the core makes them: `{ kind =, message = }` plus the
-- fields of `extra`, with the core's error metatable.
function M.new_err(kind, message, extra)
  local e = { kind = kind, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, ERR_MT)
end

--- The `invalid` error of a list of `{ path =, message = }` problems: the
-- first one in the message, the rest counted.
function M.invalid(problems)
  local first = problems[1]
  local msg = ("invalid state: %s: %s"):format(first.path, first.message)
  if #problems > 1 then
    msg = msg .. (" (and %d more problem%s)"):format(#problems - 1, #problems > 2 and "s" or "")
  end
  return M.new_err("invalid", msg, { problems = problems })
end

--- Is `s` an application id (a UUID or 32 hex characters)?
function M.is_app_id(s)
  return type(s) == "string" and (s:match(UUID) ~= nil or s:match(HEX32) ~= nil)
end

--- The path of an app in a state: `apps["<id>"]`.
function M.app_path(app_id) return ("apps[%q]"):format(app_id) end

--- "accounts" or "zones": the client's scope. The core has no accessor for
-- it, so it is read from its tostring, which the core writes as
-- "cfaccess.client (<scope>/<id>, <base>)".
function M.scope_of(client)
  local s = tostring(client):match("^cfaccess%.client %((%a+)/")
  return s or "accounts"
end

--- Does the client have method `name` (section-6 methods may be missing)?
function M.has_method(client, name)
  local mt = getmetatable(client)
  local index = mt and mt.__index
  return type(index) == "table" and type(index[name]) == "function"
end

--- The keys of `t`, sorted by their tostring.
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

--- A deep copy of `t` (any other value as it is).
function M.copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = M.copy(v) end
  return c
end

--- A number as an integer where it is integral; nil for anything else.
function M.num(v)
  return type(v) == "number" and (math.tointeger(v) or v) or nil
end

--- Check an options table against `allowed` (`{ name = "type" }`); raises
-- (at the caller of the method `what`) for a non-table, an unknown option or
-- a wrong type. Returns the options (`{}` for nil).
function M.check_opts(opts, allowed, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument to %s: options table expected, got %s"):format(what, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then error(("bad argument to %s: unknown option %q"):format(what, tostring(k)), 3) end
    if type(v) ~= want then
      error(("bad argument to %s: option %s: %s expected, got %s"):format(what, k, want, type(v)), 3)
    end
  end
  return opts
end

return M
