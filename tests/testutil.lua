--- Helpers shared by the specs.
local M = {}

--- Deep equality in which numbers compare by value (lua-cjson 2.1.0
-- decodes every number as a float, so 5 must equal 5.0).
-- Returns true, or false and the path of the first difference.
function M.deep_equal(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then
    if a == b then return true end
    return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  for k, v in pairs(a) do
    local ok, where = M.deep_equal(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. ": missing on the left" end
  end
  return true
end

--- A valid minimal policy with `extra` merged in (a false value removes
-- that field), for specs that vary one field at a time.
function M.policy(extra)
  local p = { name = "p", decision = "allow", include = { { everyone = {} } } }
  for k, v in pairs(extra or {}) do
    if v == false then p[k] = nil else p[k] = v end
  end
  return p
end

--- A valid policy named `name` (one email include), with `extra` fields
-- merged in: what the client specs create against the mock.
function M.named_policy(name, extra)
  local p = { name = name, decision = "allow",
              include = { { email = { email = "alice@example.com" } } } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

return M
