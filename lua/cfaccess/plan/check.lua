--- The state given to `client:plan`, checked before anything is read:
-- every policy validated with its kind, names unique, app ids and list
-- entries well formed.
-- @module cfaccess.plan.check
local core = require("cfaccess.core")
local common = require("cfaccess.plan.common")

local M = {}

local validate, invalid, is_app_id, app_path = core.validate, common.invalid, common.is_app_id, common.app_path
local sorted_keys = common.sorted_keys

local function add_problem(problems, path, fmt, ...)
  problems[#problems + 1] = { path = path, message = fmt:format(...) }
end

-- Validate `p` as kind; its problems go to `problems` under `path`.
local function check_policy(problems, p, kind, path)
  if type(p) ~= "table" then
    add_problem(problems, path, "expected a policy (a table), got %s", type(p))
    return false
  end
  local ok, err = validate(p, { kind = kind })
  if ok then return true end
  for _, pr in ipairs(err.problems or { { path = "", message = err.message } }) do
    problems[#problems + 1] = { path = pr.path ~= "" and (path .. "." .. pr.path) or path, message = pr.message }
  end
  return false
end

-- The state's reusable policies into out.policies and out.byname.
local function check_reusable(problems, state, zone, out)
  local policies = state.policies or {}
  if type(policies) ~= "table" then
    add_problem(problems, "policies", "expected a list of policies, got %s", type(policies))
    policies = {}
  end
  for k in pairs(policies) do
    if math.type(k) ~= "integer" or k < 1 or k > #policies then
      add_problem(problems, "policies." .. tostring(k), "unexpected key (policies is a list; names go in each policy)")
    end
  end
  if zone and #policies > 0 then
    add_problem(problems, "policies", "a zone client has no reusable policies (give each app its legacy policies)")
  end
  for i, p in ipairs(policies) do
    local path = ("policies[%d]"):format(i)
    if check_policy(problems, p, "reusable", path) then
      if out.byname[p.name] then
        add_problem(problems, path .. ".name", "%q is used twice (also policies[%d])", p.name, out.byname[p.name].index)
      else
        out.byname[p.name] = { index = i, policy = p }
      end
    end
    out.policies[#out.policies + 1] = p
  end
end

-- An app given its legacy policies: { app_id =, legacy =, kind = }.
local function check_legacy_app(problems, app_id, entry, path, zone)
  local kind = entry.kind or (zone and "zone" or "app")
  for k in pairs(entry) do
    if k ~= "legacy" and k ~= "kind" then
      add_problem(problems, path .. "." .. tostring(k), "unknown field (an app takes a list, or legacy and kind)")
    end
  end
  if kind ~= "app" and kind ~= "zone" and kind ~= "infrastructure" then
    add_problem(problems, path .. ".kind", "expected app, zone or infrastructure, got %s", tostring(kind))
    kind = "app"
  end
  local seen, legacy = {}, {}
  if type(entry.legacy) ~= "table" then
    add_problem(problems, path .. ".legacy", "expected a list of policies, got %s", type(entry.legacy))
  else
    for i, p in ipairs(entry.legacy) do
      local pp = ("%s.legacy[%d]"):format(path, i)
      if check_policy(problems, p, kind, pp) then
        if p.precedence ~= nil then
          add_problem(problems, pp .. ".precedence", "is set by the list order (leave it out)")
        elseif seen[p.name] then
          add_problem(problems, pp .. ".name", "%q is used twice in this app (also legacy[%d])",
                      p.name, seen[p.name])
        else
          seen[p.name] = i
        end
      end
      legacy[#legacy + 1] = p
    end
  end
  return { app_id = app_id, legacy = legacy, kind = kind }
end

-- An app given its reusable list: { app_id =, list = { name or id } }.
local function check_list_app(problems, app_id, entry, path, zone)
  local list, seen = {}, {}
  if zone then
    add_problem(problems, path, "a zone client's apps take legacy policies only ({ legacy = {...} })")
  end
  for k in pairs(entry) do
    if math.type(k) ~= "integer" or k < 1 or k > #entry then
      add_problem(problems, path .. "." .. tostring(k),
                  "unknown field (a list of policy names or ids, or { legacy = {...} })")
    end
  end
  for i, ref in ipairs(entry) do
    local rp = ("%s[%d]"):format(path, i)
    if type(ref) ~= "string" or ref == "" then
      add_problem(problems, rp, "expected a policy name or id, got %s", type(ref))
    elseif seen[ref] then
      add_problem(problems, rp, "%q is listed twice (also [%d])", ref, seen[ref])
    else
      seen[ref] = i
      list[#list + 1] = ref
    end
  end
  return { app_id = app_id, list = list }
end

--- Check a state (API.md section 8): every policy validated with its kind,
-- names unique, app ids and list entries well formed. Returns a normalised
-- copy `{ policies = {...}, byname = {...}, apps = { { app_id =, list = | legacy =, kind = }, ... } }`
-- or `nil, err` (`invalid`, paths like `policies[3].name`).
function M.check_state(state, zone)
  local problems = {}
  if type(state) ~= "table" then
    return nil, invalid{ { path = "state", message = "expected a table, got " .. type(state) } }
  end
  for k in pairs(state) do
    if k ~= "policies" and k ~= "apps" then
      add_problem(problems, tostring(k), "unknown field (a state has policies and apps)")
    end
  end
  -- a state without `policies` does not manage the reusable ones: prune
  -- leaves them alone (`policies = {}` manages them: prune deletes them all)
  local out = { policies = {}, byname = {}, apps = {}, manages_reusable = state.policies ~= nil }
  check_reusable(problems, state, zone, out)
  local apps = state.apps or {}
  if type(apps) ~= "table" then
    add_problem(problems, "apps", "expected a table of app id = policies, got %s", type(apps))
    apps = {}
  end
  for _, app_id in ipairs(sorted_keys(apps)) do
    local entry, path = apps[app_id], app_path(tostring(app_id))
    if not is_app_id(app_id) then
      add_problem(problems, path, "is not an application id (a UUID or 32 hex characters)")
    elseif type(entry) ~= "table" then
      add_problem(problems, path, "expected a list of reusable policies or { legacy = {...} }, got %s", type(entry))
    elseif entry.legacy ~= nil then
      out.apps[#out.apps + 1] = check_legacy_app(problems, app_id, entry, path, zone)
    else
      out.apps[#out.apps + 1] = check_list_app(problems, app_id, entry, path, zone)
    end
  end
  if #problems > 0 then return nil, invalid(problems) end
  return out
end

return M
