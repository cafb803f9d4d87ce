--- The state given to `client:plan`, checked before anything is read, by
-- the same checker as `cfaccess validate` (cfaccess.state.check) with the
-- client's scope, then normalised for the diff.
-- @module cfaccess.plan.check
local state_check = require("cfaccess.state.check")
local common = require("cfaccess.plan.common")

local M = {}

local invalid, sorted_keys = common.invalid, common.sorted_keys

--- Check a state (API.md section 8): every policy validated with its kind,
-- names unique, app ids and list entries well formed (an app's list names
-- policies of the state, or ids; in a state without `policies`, live
-- names). Returns a normalised copy
-- `{ policies = {...}, byname = { [name] = { index =, policy = } },
-- apps = { { app_id =, list = | legacy =, kind = }, ... }, manages_reusable = bool }`
-- (apps in id order) or `nil, err` (`invalid`, paths like `policies[3].name`).
function M.check_state(state, zone)
  if type(state) ~= "table" then
    return nil, invalid{ { path = "state", message = "expected a table, got " .. type(state) } }
  end
  local problems = state_check.state_problems(state, { zone = zone })
  if #problems > 0 then return nil, invalid(problems) end
  -- a state without `policies` does not manage the reusable ones: prune
  -- leaves them alone (`policies = {}` manages them: prune deletes them all)
  local out = { policies = {}, byname = {}, apps = {}, manages_reusable = state.policies ~= nil }
  for i, p in ipairs(state.policies or {}) do
    out.policies[i] = p
    out.byname[p.name] = { index = i, policy = p }
  end
  local apps = state.apps or {}
  for _, app_id in ipairs(sorted_keys(apps)) do
    local entry = apps[app_id]
    if entry.legacy ~= nil then
      local legacy = {}
      for i, p in ipairs(entry.legacy) do legacy[i] = p end
      out.apps[#out.apps + 1] = { app_id = app_id, legacy = legacy, kind = entry.kind or (zone and "zone" or "app") }
    else
      local list = {}
      for i, ref in ipairs(entry) do list[i] = ref end
      out.apps[#out.apps + 1] = { app_id = app_id, list = list }
    end
  end
  return out
end

return M
