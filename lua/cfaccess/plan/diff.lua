--- The diff of a checked state against the live state: the changes of a
-- plan (see cfaccess.plan for their records), compared with `cfaccess.same`.
-- @module cfaccess.plan.diff
local core = require("cfaccess.core")
local common = require("cfaccess.plan.common")
local live_state = require("cfaccess.plan.live")

local M = {}

local same, request_body = core.same, core.request_body
local new_err, invalid, copy, num = common.new_err, common.invalid, common.copy, common.num
local sorted_keys, app_path, UUID = common.sorted_keys, common.app_path, common.UUID
local by_precedence, app_links = live_state.by_precedence, live_state.app_links
-- Fields of a live policy that plan never reports as differing.
local READ_ONLY = { id = true, uid = true, created_at = true, updated_at = true, reusable = true,
                    app_count = true, account_id = true, precedence = true }


-- The fields in which live differs from want (by `same`, field by field).
local function field_diffs(want, live, kind)
  local fields, keys = {}, {}
  for k in pairs(want) do keys[k] = true end
  for k in pairs(live) do keys[k] = true end
  for _, k in ipairs(sorted_keys(keys)) do
    if type(k) == "string" and not READ_ONLY[k] and not same({ [k] = want[k] }, { [k] = live[k] }, kind) then
      fields[#fields + 1] = { field = k, old = copy(live[k]), new = copy(want[k]) }
    end
  end
  return fields
end

-- The live name of a single live reusable policy by name; conflict when
-- there are several.
local function unique_live(live, name, path)
  local l = live.byname[name]
  if not l then return nil end
  if #l > 1 then
    local ids = {}
    for i, p in ipairs(l) do ids[i] = p.id end
    return nil, new_err("conflict", ("%s: %d live reusable policies are named %q (%s): rename or delete all but one")
      :format(path, #l, name, table.concat(ids, ", ")), { ids = ids })
  end
  return l[1]
end

local function name_of(live, id, st)
  local p = live.byid[id]
  if p then return p.name end
  for name, s in pairs(st.byname) do
    if s.id == id then return name end
  end
  return id
end

-- The state list of app `a` resolved: refs[i] = { id =, updated_at = } (a
-- live policy, as the plan read it) or { name = } (one this plan creates),
-- order[i] its name; or nil, err. diff_app_list marks the refs the list's
-- write attaches (`attached = true`).
local function resolve_refs(st, live, a, path)
  local refs, order = {}, {}
  for i, ref in ipairs(a.list) do
    local rp = ("%s[%d]"):format(path, i)
    if st.byname[ref] then
      local lp, err = unique_live(live, ref, "policies[" .. st.byname[ref].index .. "]")
      if err then return nil, err end
      refs[i] = lp and { id = lp.id, updated_at = lp.updated_at } or { name = ref }
    elseif live.byname[ref] then
      local lp, err = unique_live(live, ref, rp)
      if err then return nil, err end
      refs[i] = { id = lp.id, updated_at = lp.updated_at }
    elseif ref:match(UUID) and live.byid[ref] then
      refs[i] = { id = ref, updated_at = live.byid[ref].updated_at }
    else
      return nil, invalid{ { path = rp, message =
        ("no reusable policy named %q (in the state or live), and no live one with that id"):format(ref) } }
    end
    order[i] = refs[i].name or name_of(live, refs[i].id, st)
  end
  return refs, order
end

-- The changes of one app whose state gives its reusable list.
local function diff_app_list(plan, st, live, a, opts, detached_by)
  local path = app_path(a.app_id)
  local la = live.apps[a.app_id]
  local links, legacy = app_links(live, la)
  local refs, order = resolve_refs(st, live, a, path)
  if not refs then return nil, order end
  if #legacy > 0 and not opts.prune then
    local names = {}
    for i, p in ipairs(legacy) do names[i] = ("%q (%s)"):format(tostring(p.name), tostring(p.id)) end
    return nil, new_err("conflict", ("%s: the app still has legacy policies %s; setting its reusable list "
      .. "would make the API delete them: plan with prune = true to migrate")
      :format(path, table.concat(names, ", ")), { app_id = a.app_id })
  end
  local live_ids, expect, want_ids = {}, {}, {}
  for i, p in ipairs(links) do live_ids[i] = p.id end
  local all = by_precedence((la.app and la.app.policies) or la.items or {})
  for i, p in ipairs(all) do expect[i] = p.id end
  for i, r in ipairs(refs) do want_ids[i] = r.id or ("new:" .. r.name) end
  local changed = #legacy > 0 or #want_ids ~= #live_ids
  for i = 1, #want_ids do changed = changed or want_ids[i] ~= live_ids[i] end
  if not changed then return true end
  if #refs == 0 and not opts.allow_empty then
    return nil, invalid{ { path = path, message = "an empty list detaches every policy of the app (and the API "
      .. "deletes its legacy ones): plan with allow_empty = true to mean it" } }
  end
  local wanted, had = {}, {}
  for _, id in ipairs(want_ids) do wanted[id] = true end
  for _, id in ipairs(live_ids) do had[id] = true end
  local attach, detach = {}, {}
  for i, id in ipairs(want_ids) do
    if not had[id] then attach[#attach + 1] = order[i]; refs[i].attached = true end
  end
  for _, p in ipairs(links) do
    if not wanted[p.id] then
      detach[#detach + 1] = name_of(live, p.id, st)
      detached_by[p.id] = detached_by[p.id] or {}
      table.insert(detached_by[p.id], a.app_id)
    end
  end
  plan.changes[#plan.changes + 1] = {
    action = "set", type = "app", app_id = a.app_id, name = la.app and la.app.name or nil,
    order = order, refs = refs, expect = expect, attach = attach, detach = detach,
    allow_empty = #refs == 0 or nil,
  }
  plan.summary.attach = plan.summary.attach + #attach
  plan.summary.detach = plan.summary.detach + #detach
  -- migration: the legacy policies go (the API deletes them when the list
  -- is set; the delete afterwards makes sure, and a 404 counts as done)
  for _, p in ipairs(legacy) do
    plan.deletes[#plan.deletes + 1] = { action = "delete", type = "policy", app_id = a.app_id,
      name = p.name, id = p.id, from = num(p.precedence), after_set = true, updated_at = p.updated_at }
  end
  return true
end

-- The live legacy policies of app `a` the state does not list (those not
-- in `matched`): with prune, deletes; else kept, after the listed ones
-- (moved there when they stand elsewhere; an infrastructure app's have no
-- precedence). Adds to plan.deletes, plan.warnings and `changes`; returns
-- the highest precedence used, or nil, err.
local function extras(plan, a, legacy, matched, changes, opts)
  local path, infra = app_path(a.app_id), a.kind == "infrastructure"
  local next_to = #a.legacy
  for _, lp in ipairs(legacy) do
    if not matched[lp.id] then
      local from = num(lp.precedence)
      if opts.prune then
        plan.deletes[#plan.deletes + 1] = { action = "delete", type = "policy", app_id = a.app_id,
          name = lp.name, id = lp.id, from = from, kind = a.kind, updated_at = lp.updated_at }
      elseif infra then
        plan.warnings[#plan.warnings + 1] = ("%s: policy %q (%s) is not in the state; kept (prune deletes it)")
          :format(path, tostring(lp.name), tostring(lp.id))
      else
        next_to = next_to + 1
        plan.warnings[#plan.warnings + 1] = ("%s: legacy policy %q (%s) is not in the state; kept after the "
          .. "listed ones (prune deletes it)")
          :format(path, tostring(lp.name), tostring(lp.id))
        if from ~= next_to then
          local body, err = request_body(lp, a.kind)
          if not body then
            return nil, new_err("conflict", ("%s: legacy policy %q must move to precedence %d, but its body "
              .. "cannot be sent back: %s")
              :format(path, tostring(lp.name), next_to, tostring(err)), { app_id = a.app_id })
          end
          body.precedence = nil
          changes[#changes + 1] = { action = "update", type = "policy", app_id = a.app_id, name = lp.name,
            id = lp.id, kind = a.kind, body = body, from = from, to = next_to,
            fields = { { field = "precedence", old = from, new = next_to } }, updated_at = lp.updated_at }
        end
      end
    end
  end
  return next_to
end

-- The changes of one app whose state gives its legacy policies: creates,
-- updates (content and/or precedence) and, with prune, deletes. Listed
-- policies go to 1..n in state order, kept extras after them.
local function diff_app_legacy(plan, live, a, opts)
  local path = app_path(a.app_id)
  local la = live.apps[a.app_id]
  local live_type = la.app and la.app.type
  if live_type ~= nil and (live_type == "infrastructure") ~= (a.kind == "infrastructure") then
    return nil, invalid{ { path = path .. ".kind", message = live_type == "infrastructure"
      and 'the app is an infrastructure application: give its entry kind = "infrastructure"'
      or ('kind = "infrastructure", but the app is of type %q'):format(tostring(live_type)) } }
  end
  local links = app_links(live, la)
  if #links > 0 then
    local p = links[1]
    return nil, new_err("conflict", ("%s: the app links reusable policy %q (%s), but its state lists legacy "
      .. "policies only: give the app a reusable list, or detach it")
      :format(path, tostring(p.name or live.byid[p.id] and live.byid[p.id].name), tostring(p.id)),
      { app_id = a.app_id })
  end
  local legacy, byname, maxp = {}, {}, 0
  for _, p in ipairs(la.items or {}) do
    if type(p) == "table" and p.reusable ~= true and not live.byid[p.id] then
      legacy[#legacy + 1] = p
      local n = tostring(p.name)
      byname[n] = byname[n] or {}
      table.insert(byname[n], p)
      maxp = math.max(maxp, num(p.precedence) or 0)
    end
  end
  local changes, matched = {}, {}
  local infra = a.kind == "infrastructure"
  for i, sp in ipairs(a.legacy) do
    local l = byname[sp.name]
    if l and #l > 1 then
      local ids = {}
      for j, p in ipairs(l) do ids[j] = p.id end
      return nil, new_err("conflict", ("%s.legacy[%d]: %d live policies of the app are named %q (%s): "
        .. "rename or delete all but one")
        :format(path, i, #l, sp.name, table.concat(ids, ", ")), { ids = ids })
    end
    local lp = l and l[1]
    -- an infrastructure app's policies have no precedence (the API takes none)
    local to = not infra and i or nil
    if not lp then
      changes[#changes + 1] = { action = "create", type = "policy", app_id = a.app_id, name = sp.name,
        kind = a.kind, body = copy(sp), to = to }
    else
      matched[lp.id] = true
      local from = num(lp.precedence)
      local fields = field_diffs(sp, lp, a.kind)
      if not infra and from ~= to then table.insert(fields, 1, { field = "precedence", old = from, new = to }) end
      if #fields > 0 then
        changes[#changes + 1] = { action = "update", type = "policy", app_id = a.app_id, name = sp.name,
          id = lp.id, kind = a.kind, body = copy(sp), from = from, to = to, fields = fields,
          updated_at = lp.updated_at }
      end
    end
  end
  local next_to, err = extras(plan, a, legacy, matched, changes, opts)
  if not next_to then return nil, err end
  for _, c in ipairs(changes) do plan.changes[#plan.changes + 1] = c end
  -- what apply checks again before its first write (cfaccess.apply.recheck)
  local seen = {}
  for _, p in ipairs(legacy) do seen[p.id] = { name = p.name, precedence = p.precedence } end
  plan.apps[a.app_id] = { max_precedence = math.max(maxp, next_to), live = seen }
  return true
end

-- The reusable policies: creates, updates, and (prune) deletes.
local function diff_reusable(plan, st, live)
  local referenced = {}
  for _, a in ipairs(st.apps) do
    for _, ref in ipairs(a.list or {}) do referenced[ref] = true end
  end
  for i, sp in ipairs(st.policies) do
    local lp, err = unique_live(live, sp.name, ("policies[%d]"):format(i))
    if err then return nil, err end
    if not lp then
      plan.changes[#plan.changes + 1] = { action = "create", type = "reusable", name = sp.name, body = copy(sp) }
    else
      st.byname[sp.name].id = lp.id
      if not same(sp, lp, "reusable") then
        plan.changes[#plan.changes + 1] = { action = "update", type = "reusable", name = sp.name, id = lp.id,
          body = copy(sp), fields = field_diffs(sp, lp, "reusable"), updated_at = lp.updated_at }
      end
    end
  end
  return referenced
end

local function prune_reusable(plan, st, live, referenced, detached_by)
  for _, lp in ipairs(live.reusable) do
    if not st.byname[lp.name] and not referenced[lp.name] and not referenced[lp.id] then
      local count = num(lp.app_count)
      local in_state = detached_by[lp.id] and #detached_by[lp.id] or 0
      if count == nil then
        plan.warnings[#plan.warnings + 1] = ("reusable policy %q (%s) is not in the state, but the API does not "
          .. "say how many apps use it: kept")
          :format(tostring(lp.name), tostring(lp.id))
      elseif count > in_state then
        plan.warnings[#plan.warnings + 1] = ("reusable policy %q (%s) is not in the state, but %d app%s outside "
          .. "the state use%s it: kept")
          :format(tostring(lp.name), tostring(lp.id), count - in_state, count - in_state == 1 and "" or "s",
                  count - in_state == 1 and "s" or "")
      else
        plan.deletes[#plan.deletes + 1] = { action = "delete", type = "reusable", name = lp.name, id = lp.id,
          after_apps = detached_by[lp.id], updated_at = lp.updated_at }
      end
    end
  end
end

--- The plan's data for checked state `st` against `live` (from
-- cfaccess.plan.live): `{ changes =, warnings =, apps =, summary =, opts =,
-- scope = }`, or `nil, err` (`conflict`, `invalid`).
-- @tparam table st from cfaccess.plan.check
-- @tparam table live from cfaccess.plan.live
-- @tparam table opts plan's options (`prune`, `allow_empty`)
-- @tparam boolean zone a zone client
function M.diff(st, live, opts, zone)
  local plan = { changes = {}, deletes = {}, warnings = {}, apps = {},
                 summary = { create = 0, update = 0, delete = 0, attach = 0, detach = 0 },
                 opts = { prune = opts.prune == true, allow_empty = opts.allow_empty == true },
                 scope = zone and "zones" or "accounts" }
  local referenced, err = diff_reusable(plan, st, live)
  if not referenced then return nil, err end
  -- detached_by[id]: the state apps whose new list drops reusable policy
  -- id (a pruned policy is deleted only after them, and only if no app
  -- outside the state uses it)
  local detached_by = {}
  for _, a in ipairs(st.apps) do
    local ok
    if a.list then ok, err = diff_app_list(plan, st, live, a, opts, detached_by)
    else ok, err = diff_app_legacy(plan, live, a, opts) end
    if not ok then return nil, err end
  end
  if opts.prune and not zone and st.manages_reusable then prune_reusable(plan, st, live, referenced, detached_by) end
  for _, d in ipairs(plan.deletes) do plan.changes[#plan.changes + 1] = d end
  plan.deletes = nil
  for _, c in ipairs(plan.changes) do
    if c.action ~= "set" then plan.summary[c.action] = plan.summary[c.action] + 1 end
  end
  return plan
end

return M
