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

return M
