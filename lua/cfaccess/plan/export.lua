--- `client:export([opts])` (API.md section 8): the live state as a state,
-- so that `plan(export())` has no changes.
-- @module cfaccess.plan.export
local core = require("cfaccess.core")
local common = require("cfaccess.plan.common")
local live_state = require("cfaccess.plan.live")

local M = {}

local request_body = core.request_body
local new_err, invalid, is_app_id, app_path = common.new_err, common.invalid, common.is_app_id, common.app_path
local check_opts, scope_of, has_method = common.check_opts, common.scope_of, common.has_method
local read_live, app_links = live_state.read, live_state.app_links
local DEFAULT_CONCURRENCY = common.DEFAULT_CONCURRENCY

--- The live state as a state: `plan(export())` has no changes.
-- @param client a cfaccess client
-- @tparam[opt] table opts `{ apps = { app_id, ... } }` (default: every app, where the client can list them)
-- @return a state, or `nil, err`
function M.export(client, opts)
  opts = check_opts(opts, { apps = "table", concurrency = "number" }, "export")
  local zone = scope_of(client) == "zones"
  local app_ids = opts.apps
  if not app_ids then
    app_ids = {}
    if has_method(client, "list_apps") then
      local apps, err = client:list_apps()
      if not apps then return nil, err end
      for _, a in ipairs(apps) do app_ids[#app_ids + 1] = a.id end
    end
  end
  local probe = { apps = {} }
  for i, id in ipairs(app_ids) do
    if not is_app_id(id) then
      return nil, invalid{ { path = ("opts.apps[%d]"):format(i), message = "is not an application id" } }
    end
    probe.apps[#probe.apps + 1] = { app_id = id, legacy = {} }   -- read every app's list
  end
  local live, err = read_live(client, probe, zone, opts.concurrency or DEFAULT_CONCURRENCY)
  if not live then return nil, err end
  local state = { policies = {}, apps = {} }
  local names = {}
  for _, lp in ipairs(live.reusable) do
    local body, berr = request_body(lp, "reusable")
    if not body then return nil, berr end
    if names[lp.name] then
      return nil, new_err("conflict", ("two live reusable policies are named %q (%s, %s)")
        :format(lp.name, names[lp.name], lp.id))
    end
    names[lp.name] = lp.id
    state.policies[#state.policies + 1] = body
  end
  -- by name: the same live state always exports the same text
  table.sort(state.policies, function(x, y) return x.name < y.name end)
  for _, a in ipairs(probe.apps) do
    local la = live.apps[a.app_id]
    local kind = zone and "zone" or "app"
    if la.app and la.app.type == "infrastructure" then kind = "infrastructure" end
    local legacy = {}
    for _, p in ipairs(la.items or {}) do
      if p.reusable ~= true and not live.byid[p.id] then legacy[#legacy + 1] = p end
    end
    local links = app_links(live, la)
    if #legacy > 0 and #links > 0 then
      return nil, new_err("conflict", ("%s: the app has both legacy policies and reusable links; a state gives "
        .. "one or the other")
        :format(app_path(a.app_id)), { app_id = a.app_id })
    end
    if #legacy > 0 then
      local list = {}
      for _, p in ipairs(legacy) do
        local body, berr = request_body(p, kind)
        if not body then return nil, berr end
        body.precedence = nil
        list[#list + 1] = body
      end
      state.apps[a.app_id] = { legacy = list, kind = kind ~= (zone and "zone" or "app") and kind or nil }
    else
      local list = {}
      for _, p in ipairs(links) do list[#list + 1] = (live.byid[p.id] and live.byid[p.id].name) or p.id end
      state.apps[a.app_id] = list
    end
  end
  if zone then state.policies = nil end
  return state
end

return M
