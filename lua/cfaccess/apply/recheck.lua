--- What `client:apply` reads again before its first write, and the changes
-- it refuses because the live state moved since the plan (another run, a
-- colleague in the dashboard while `cfaccess apply` waited for its `y`).
--
-- One listing per scope the plan writes, read-only, as plan reads them:
-- the reusable list (when the plan creates, updates or deletes reusable
-- policies, or sets a list that links live ones) and the policies of each
-- application with legacy changes. Refused, each as a `conflict` that names
-- the live id and says "plan again":
-- - a create whose name is taken now (it would make two live policies with
--   one name, which every later plan refuses);
-- - an update or delete of a policy whose `updated_at` is not the one the
--   plan read, and an update of one deleted since (a delete of one already
--   gone goes ahead: its 404 counts as done);
-- - an application's list that attaches a reusable policy changed or
--   deleted since (it would attach content nobody reviewed), or whose
--   migration would delete a legacy policy changed since, or one that could
--   not be read again (setting the list deletes them);
-- - every legacy change of an application whose legacy policies are not
--   the ones the plan read (one added, removed or moved to another
--   precedence since): its chain of precedence moves was worked out for
--   those.
-- A listing that cannot be read refuses its changes too: nothing is sent
-- blind. A change without `updated_at` (a server that sends none) is
-- checked by name and id only.
-- @module cfaccess.apply.recheck
local common = require("cfaccess.plan.common")

local M = {}

local new_err = common.new_err

local function conflict(msg, id)
  return new_err("conflict", msg .. "; plan again", { ids = id and { id } or nil })
end

local function what(c)
  return ("%s %q%s"):format(c.type == "reusable" and "reusable policy" or "policy", tostring(c.name),
    c.id and (" (" .. tostring(c.id) .. ")") or "")
end

local function verb(c)
  return c.action == "create" and "created" or c.action == "update" and "updated" or "deleted"
end

-- The groups to read: ops (batch ops) and whose[n] (the change indexes
-- checked against listing n); app_of[n] the app of an app listing.
local function groups(changes)
  local reusable, apps, app_order = {}, {}, {}
  for i, c in ipairs(changes) do
    if c.type == "reusable" then reusable[#reusable + 1] = i
    elseif c.type == "policy" then
      if not apps[c.app_id] then apps[c.app_id] = {}; app_order[#app_order + 1] = c.app_id end
      table.insert(apps[c.app_id], i)
    elseif c.action == "set" then
      for _, r in ipairs(c.refs or {}) do
        if r.id then reusable[#reusable + 1] = i; break end
      end
    end
  end
  local ops, whose, app_of = {}, {}, {}
  if #reusable > 0 then
    ops[1] = { op = "list_policies", per_page = 1000 }
    whose[1] = reusable
  end
  for _, app_id in ipairs(app_order) do
    ops[#ops + 1] = { op = "list_app_policies", app_id = app_id, per_page = 1000 }
    whose[#ops], app_of[#ops] = apps[app_id], app_id
  end
  return ops, whose, app_of
end

-- Why change c cannot go ahead against the listing (byname, byid), or nil.
local function check_change(c, byname, byid)
  local live = c.id and byid[c.id]
  if c.action == "create" then
    if byname[c.name] then
      return conflict(("not created: a policy named %q (%s) was created since the plan")
        :format(tostring(c.name), tostring(byname[c.name])), byname[c.name])
    end
  elseif c.action == "set" then
    -- what the write attaches (a policy the app links already is live on
    -- it whatever the write does)
    for _, r in ipairs(c.refs or {}) do
      local lp = r.attached and r.id and byid[r.id]
      if r.attached and r.id and not lp then
        return conflict(("not set: the list links reusable policy %s, deleted since the plan"):format(r.id), r.id)
      elseif lp and r.updated_at ~= nil and lp.updated_at ~= r.updated_at then
        return conflict(("not set: the list links reusable policy %q (%s), changed since the plan (updated_at %s, "
          .. "the plan read %s)"):format(tostring(lp.name), r.id, tostring(lp.updated_at), tostring(r.updated_at)),
          r.id)
      end
    end
  elseif c.action == "update" and not live then
    return conflict(("not updated: %s was deleted since the plan"):format(what(c)), c.id)
  elseif live and c.updated_at ~= nil and live.updated_at ~= c.updated_at then
    return conflict(("not %s: %s was changed since the plan (updated_at %s, the plan read %s)")
      :format(verb(c), what(c), tostring(live.updated_at), tostring(c.updated_at)), c.id)
  end
end

-- Do an app's legacy policies in `list` differ from what the plan read
-- (plan.apps[app_id].live: id -> precedence, and names)? Returns a reason
-- naming the first policy added, removed or moved, or nil.
local function legacy_moved(list, info, app_id)
  if not info or not info.live then return nil end
  local now = {}
  for _, p in ipairs(list) do
    if type(p) == "table" and p.reusable ~= true and p.id ~= nil then
      now[p.id] = p
      local had = info.live[p.id]
      if had == nil then
        return ("policy %q (%s) was added to app %s since the plan"):format(tostring(p.name), p.id, app_id)
      elseif had.precedence ~= p.precedence then
        return ("policy %q (%s) of app %s moved from precedence %s to %s since the plan")
          :format(tostring(p.name), p.id, app_id, tostring(had.precedence), tostring(p.precedence))
      end
    end
  end
  for id, had in pairs(info.live) do
    if not now[id] then
      return ("policy %q (%s) was removed from app %s since the plan"):format(tostring(had.name), id, app_id)
    end
  end
end

--- Read the live state again and refuse what moved since the plan.
-- @param client the client
-- @tparam table plan the plan
-- @tparam number concurrency requests at once
-- @treturn table refused[i] = the error of change i (nil: it may go ahead)
function M.refusals(client, plan, concurrency)
  local changes, refused = plan.changes, {}
  local ops, whose, app_of = groups(changes)
  if #ops == 0 then return refused end
  local set_of = {}
  for i, c in ipairs(changes) do
    if c.action == "set" then set_of[c.app_id] = i end
  end
  local rs, berr = client:batch(ops, { concurrency = concurrency })
  for n = 1, #ops do
    local r = rs and rs[n] or { ok = false, err = berr }
    local byname, byid = {}, {}
    if r.ok and type(r.result) == "table" then
      for _, p in ipairs(r.result) do
        if type(p) == "table" and p.name ~= nil then byname[p.name] = byname[p.name] or p.id end
        if type(p) == "table" and p.id ~= nil then byid[p.id] = p end
      end
    end
    local moved = r.ok and app_of[n] and legacy_moved(r.result, plan.apps and plan.apps[app_of[n]], app_of[n])
    for _, i in ipairs(whose[n]) do
      local c = changes[i]
      if not r.ok then
        refused[i] = new_err(type(r.err) == "table" and r.err.kind or "network",
          ("not %s: the live policies could not be read again before the %s: %s")
          :format(c.action == "set" and "set" or verb(c), c.action, tostring(r.err)))
      else
        refused[i] = check_change(c, byname, byid)
        if not refused[i] and moved and not c.after_set then
          refused[i] = conflict(("not %s: %s: %s"):format(verb(c), what(c), moved))
        end
      end
      -- the list's write is what deletes a migrated legacy policy: it is
      -- refused with the delete, whether that policy changed or could not
      -- be read again
      if refused[i] and c.after_set and set_of[c.app_id] then
        refused[set_of[c.app_id]] = refused[set_of[c.app_id]] or new_err(refused[i].kind, ("not set: setting the "
          .. "list would delete %s: %s"):format(what(c), tostring(refused[i].message)), { ids = refused[i].ids })
      end
    end
  end
  return refused
end

return M
