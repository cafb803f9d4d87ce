--- Desired state: `client:plan(state [, opts])` and `client:export([opts])`
-- (API.md section 8), over the core's public methods.
--
-- A state names the account's reusable policies (matched to live ones by
-- name) and, for each application it lists, either its reusable policies
-- (names or ids, in precedence order) or its legacy app-scoped policies (in
-- precedence order). `plan` checks the whole state first, reads the live
-- state with the fewest requests (the reusable list at per_page 1000, one
-- GET per state app, one policy list per state app with legacy policies),
-- and diffs with `cfaccess.same`. The plan is plain data plus a
-- `__tostring`; `client:apply(plan)` (apply.lua) carries it out.
--
-- Change records (`plan.changes[i]`), all plain data:
--   { action = "create" | "update" | "delete", type = "reusable", name =, id =, body =, fields = }
--   { action = "set", type = "app", app_id =, name =, order = { names }, refs = { { id = } | { name = } },
--     expect = { ids }, attach = { names }, detach = { names }, allow_empty = bool }
--   { action = "create" | "update" | "delete", type = "policy", app_id =, name =, id =, kind =,
--     body =, from = live precedence, to = target precedence, fields = }
-- `fields` of an update: { { field = "require", old = <live value>, new = <state value> }, ... }.
-- @module cfaccess.plan
local core = require("cfaccess.core")

local M = {}

local same, request_body, validate = core.same, core.request_body, core.validate
local READ_PER_PAGE = 1000
local DEFAULT_CONCURRENCY = 4
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local HEX32 = "^" .. ("%x"):rep(32) .. "$"
-- Fields of a live policy that plan never reports as differing.
local READ_ONLY = { id = true, uid = true, created_at = true, updated_at = true, reusable = true,
                    app_count = true, account_id = true, precedence = true }

-- The error metatable of the core (tostring(err) == err.message).
local ERR_MT = getmetatable(select(2, validate({})))

local function new_err(kind, message, extra)
  local e = { kind = kind, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, ERR_MT)
end
M._new_err = new_err

local function invalid(problems)
  local first = problems[1]
  local msg = ("invalid state: %s: %s"):format(first.path, first.message)
  if #problems > 1 then
    msg = msg .. (" (and %d more problem%s)"):format(#problems - 1, #problems > 2 and "s" or "")
  end
  return new_err("invalid", msg, { problems = problems })
end

local function is_app_id(s)
  return type(s) == "string" and (s:match(UUID) ~= nil or s:match(HEX32) ~= nil)
end

local function app_path(app_id) return ("apps[%q]"):format(app_id) end

-- "accounts" or "zones": the client's scope (from its tostring, which the
-- core writes as "cfaccess.client (<scope>/<id>, <base>)").
local function scope_of(client)
  local s = tostring(client):match("^cfaccess%.client %((%a+)/")
  return s or "accounts"
end

-- Does the client have method `name` (section-6 methods may be missing)?
local function has_method(client, name)
  local mt = getmetatable(client)
  local index = mt and mt.__index
  return type(index) == "table" and type(index[name]) == "function"
end
M._has_method = has_method

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return c
end

local function num(v)
  return type(v) == "number" and (math.tointeger(v) or v) or nil
end

-- ---- options ---------------------------------------------------------------

local function check_opts(opts, allowed, what)
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
M._check_opts = check_opts

-- ---- the state, checked before anything is read -----------------------------

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
      out.apps[#out.apps + 1] = { app_id = app_id, legacy = legacy, kind = kind }
    else
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
      out.apps[#out.apps + 1] = { app_id = app_id, list = list }
    end
  end
  if #problems > 0 then return nil, invalid(problems) end
  return out
end

-- ---- reading the live state ---------------------------------------------------

-- Run read ops through one batch; results in op order, or nil, err (the
-- first failure, its message prefixed with what was read).
local function read_all(client, ops, concurrency)
  if #ops == 0 then return {} end
  local results, err = client:batch(ops, { concurrency = concurrency })
  if not results then return nil, err end
  local out = {}
  for i, r in ipairs(results) do
    if not r.ok then
      local e = r.err
      local where = ops[i].op .. (ops[i].app_id and (" " .. ops[i].app_id) or "")
      if type(e) == "table" and type(e.message) == "string" and not e.message:find(where, 1, true) then
        e.message = where .. ": " .. e.message
      end
      return nil, e
    end
    out[i] = r.result
  end
  return out
end

local function by_precedence(items)
  local sorted = {}
  for i, p in ipairs(items) do sorted[i] = { p = p, i = i } end
  table.sort(sorted, function(a, b)
    local pa, pb = num(a.p.precedence) or math.huge, num(b.p.precedence) or math.huge
    if pa ~= pb then return pa < pb end
    return a.i < b.i
  end)
  for i, s in ipairs(sorted) do sorted[i] = s.p end
  return sorted
end

-- The live reusable policies, the state apps' applications and legacy
-- lists: { reusable = list, byid =, byname = { name = { policies } },
-- apps = { [app_id] = { app = application or nil, items = policy list or nil } } }.
local function read_live(client, st, zone, concurrency)
  local live = { reusable = {}, byid = {}, byname = {}, apps = {} }
  local ops, where = {}, {}
  if not zone then
    ops[#ops + 1] = { op = "list_policies", per_page = READ_PER_PAGE }
    where[#ops] = { what = "reusable" }
  end
  local get_app = has_method(client, "get_app")
  for _, a in ipairs(st.apps) do
    live.apps[a.app_id] = {}
    if get_app then
      ops[#ops + 1] = { op = "get_app", app_id = a.app_id }
      where[#ops] = { what = "app", app_id = a.app_id }
    end
    -- legacy policies are read from the app's policy list; without the
    -- section-6 GET the list is also where an app's links are seen
    if a.legacy or not get_app then
      ops[#ops + 1] = { op = "list_app_policies", app_id = a.app_id, per_page = READ_PER_PAGE }
      where[#ops] = { what = "items", app_id = a.app_id }
    end
  end
  local results, err = read_all(client, ops, concurrency)
  if not results then return nil, err end
  for i, r in ipairs(results) do
    local w = where[i]
    if w.what == "reusable" then live.reusable = r
    elseif w.what == "app" then live.apps[w.app_id].app = r
    else live.apps[w.app_id].items = by_precedence(r) end
  end
  for _, p in ipairs(live.reusable) do
    if type(p.id) == "string" then live.byid[p.id] = p end
    if type(p.name) == "string" then
      local l = live.byname[p.name] or {}
      l[#l + 1] = p
      live.byname[p.name] = l
    end
  end
  return live
end

-- ---- diffs ----------------------------------------------------------------------

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

-- A live app's policies list split into reusable links and legacy ones,
-- in precedence order.
local function app_links(live, la)
  local links, legacy = {}, {}
  local items = (la.app and la.app.policies) or la.items or {}
  if type(items) ~= "table" then items = {} end
  for _, p in ipairs(by_precedence(items)) do
    if type(p) == "table" then
      local id = p.id
      if p.reusable == true or (p.reusable == nil and live.byid[id]) then links[#links + 1] = p
      else legacy[#legacy + 1] = p end
    end
  end
  return links, legacy
end

local function name_of(live, id, st)
  local p = live.byid[id]
  if p then return p.name end
  for name, s in pairs(st.byname) do
    if s.id == id then return name end
  end
  return id
end

-- The changes of one app whose state gives its reusable list.
local function diff_app_list(plan, st, live, a, opts, detached_by)
  local path = app_path(a.app_id)
  local la = live.apps[a.app_id]
  local links, legacy = app_links(live, la)
  local refs, order = {}, {}
  for i, ref in ipairs(a.list) do
    local rp = ("%s[%d]"):format(path, i)
    if st.byname[ref] then
      local lp, err = unique_live(live, ref, "policies[" .. st.byname[ref].index .. "]")
      if err then return nil, err end
      refs[i] = lp and { id = lp.id } or { name = ref }
    elseif live.byname[ref] then
      local lp, err = unique_live(live, ref, rp)
      if err then return nil, err end
      refs[i] = { id = lp.id }
    elseif ref:match(UUID) and live.byid[ref] then
      refs[i] = { id = ref }
    else
      return nil, invalid{ { path = rp, message =
        ("no reusable policy named %q (in the state or live), and no live one with that id"):format(ref) } }
    end
    order[i] = refs[i].name or name_of(live, refs[i].id, st)
  end
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
    if not had[id] then attach[#attach + 1] = order[i] end
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
      name = p.name, id = p.id, from = num(p.precedence), after_set = true }
  end
  return true
end

-- The changes of one app whose state gives its legacy policies: creates,
-- updates (content and/or precedence) and, with prune, deletes. Listed
-- policies go to 1..n in state order, kept extras after them.
local function diff_app_legacy(plan, live, a, opts)
  local path = app_path(a.app_id)
  local la = live.apps[a.app_id]
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
    if not lp then
      changes[#changes + 1] = { action = "create", type = "policy", app_id = a.app_id, name = sp.name,
        kind = a.kind, body = copy(sp), to = i }
    else
      matched[lp.id] = true
      local from = num(lp.precedence)
      local fields = field_diffs(sp, lp, a.kind)
      if from ~= i then table.insert(fields, 1, { field = "precedence", old = from, new = i }) end
      if #fields > 0 then
        changes[#changes + 1] = { action = "update", type = "policy", app_id = a.app_id, name = sp.name,
          id = lp.id, kind = a.kind, body = copy(sp), from = from, to = i, fields = fields }
      end
    end
  end
  local next_to = #a.legacy
  for _, lp in ipairs(legacy) do
    if not matched[lp.id] then
      local from = num(lp.precedence)
      if opts.prune then
        plan.deletes[#plan.deletes + 1] = { action = "delete", type = "policy", app_id = a.app_id,
          name = lp.name, id = lp.id, from = from, kind = a.kind }
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
            fields = { { field = "precedence", old = from, new = next_to } } }
        end
      end
    end
  end
  for _, c in ipairs(changes) do plan.changes[#plan.changes + 1] = c end
  plan.apps[a.app_id] = { max_precedence = math.max(maxp, next_to) }
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
          body = copy(sp), fields = field_diffs(sp, lp, "reusable") }
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
          after_apps = detached_by[lp.id] }
      end
    end
  end
end

local function render(plan)
  local ok, r = pcall(require, "cfaccess.render")
  if ok and type(r) == "table" and type(r.plan) == "function" then return r.plan(plan) end
  return M.text(plan)
end

-- ---- the plan as text ----------------------------------------------------------
-- The fallback for when cfaccess.render (the command's renderer) is not
-- installed; it writes the same lines.

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

local PLAN_MT = { __tostring = render }

--- Plan the changes that bring the live state to `state`.
-- @param client a cfaccess client
-- @tparam table state `{ policies = {...}, apps = { [app_id] = { names/ids } | { legacy = {...} } } }`
-- @tparam[opt] table opts `{ prune = false, allow_empty = false, concurrency = 4 }`
-- @return the plan (`changes`, `summary`, `warnings`; `tostring(plan)` prints it), or `nil, err`
function M.plan(client, state, opts)
  opts = check_opts(opts, { prune = "boolean", allow_empty = "boolean", concurrency = "number" }, "plan")
  local zone = scope_of(client) == "zones"
  local st, err = M.check_state(state, zone)
  if not st then return nil, err end
  local live
  live, err = read_live(client, st, zone, opts.concurrency or DEFAULT_CONCURRENCY)
  if not live then return nil, err end
  local plan = { changes = {}, deletes = {}, warnings = {}, apps = {},
                 summary = { create = 0, update = 0, delete = 0, attach = 0, detach = 0 },
                 opts = { prune = opts.prune == true, allow_empty = opts.allow_empty == true },
                 scope = zone and "zones" or "accounts" }
  local referenced
  referenced, err = diff_reusable(plan, st, live)
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
  return setmetatable(plan, PLAN_MT)
end

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

--- Install `plan`, `apply` and `export` as methods of every client (the
-- core's client metatable, found in the registry under its name).
function M.install()
  local mt = debug.getregistry()["cfaccess.client"]
  if type(mt) ~= "table" or type(mt.__index) ~= "table" then return false end
  local apply = require("cfaccess.apply")
  mt.__index.plan = M.plan
  mt.__index.export = M.export
  mt.__index.apply = apply.apply
  return true
end

return M
