--- The plan as text, for when cfaccess.render (the command's renderer) is
-- not installed: it writes the same lines. `cfaccess.plan.text` is this
-- module's `text`.
-- @module cfaccess.plan.text
local M = {}

local MAX_VALUE = 60
local MARK = { create = "+", update = "~", delete = "-" }

local function short(v)
  local s
  if v == nil or type(v) == "userdata" then
    s = "(none)"
  elseif type(v) == "string" then
    s = ("%q"):format(v):gsub("\\\n", "\\n")
  elseif type(v) == "table" then
    local okj, cjson = pcall(require, "cjson")
    local ok, j = false, nil
    if okj then ok, j = pcall(cjson.encode, v) end
    s = ok and j:gsub("\\/", "/") or tostring(v)
  else
    s = tostring(v)
  end
  if #s > MAX_VALUE then
    local cut = MAX_VALUE - 3
    while cut > 0 and (s:byte(cut + 1) or 0) >= 0x80 and (s:byte(cut + 1) or 0) < 0xC0 do cut = cut - 1 end
    s = s:sub(1, cut) .. "..."
  end
  return s
end

local function subject(c)
  local parts = { tostring(c.type) }
  if c.name ~= nil then parts[#parts + 1] = ("%q"):format(tostring(c.name)) end
  if c.id ~= nil then parts[#parts + 1] = "(" .. tostring(c.id) .. ")" end
  if c.app_id ~= nil and c.type ~= "app" then parts[#parts + 1] = "of app " .. tostring(c.app_id) end
  return table.concat(parts, " ")
end

--- The plan as text: one line per change, "+ " create, "~ " update (its
-- differing fields on indented lines, `old -> new`, values shortened),
-- "- " delete, "> " an app's list (its new order, +name attached, -name
-- detached); then the warnings and a summary line.
function M.text(plan)
  local lines = {}
  for _, c in ipairs(plan.changes) do
    if MARK[c.action] then
      lines[#lines + 1] = MARK[c.action] .. " " .. subject(c)
      if c.action == "update" then
        for _, f in ipairs(c.fields or {}) do
          lines[#lines + 1] = "    " .. tostring(f.field) .. ": " .. short(f.old) .. " -> " .. short(f.new)
        end
      end
    else
      local attached, items = {}, {}
      for _, n in ipairs(c.attach or {}) do attached[n] = true end
      for _, n in ipairs(c.order or {}) do items[#items + 1] = attached[n] and ("+" .. n) or n end
      for _, n in ipairs(c.detach or {}) do items[#items + 1] = "-" .. n end
      local label = "app " .. tostring(c.app_id)
      if c.name ~= nil and c.name ~= c.app_id then label = label .. " " .. ("%q"):format(tostring(c.name)) end
      lines[#lines + 1] = "> " .. label .. ": " .. (#items > 0 and table.concat(items, ", ") or "(no policies)")
    end
  end
  for _, w in ipairs(plan.warnings) do lines[#lines + 1] = "warning: " .. tostring(w) end
  local s = plan.summary
  if s.create + s.update + s.delete + s.attach + s.detach == 0 and #plan.changes == 0 then
    lines[#lines + 1] = "No changes."
  else
    lines[#lines + 1] = ("Plan: %d to create, %d to update, %d to delete, %d link%s to attach, %d to detach.")
      :format(s.create, s.update, s.delete, s.attach, s.attach == 1 and "" or "s", s.detach)
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
