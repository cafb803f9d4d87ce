-- cfaccess section-6 chunks, 3: an application's policies list.
--
-- The ops set_app_policies, attach_policy, detach_policy and make_reusable
-- as specs for the batch rounds (rounds.lua):
--   check(ck, op, at)   their fields (ck: a check.checker; ids are asked of
--                       the core),
--   reads(op)           the core ops whose results they need (round 1),
--   write(client, op, got) -> { send = raw action } | { batch = core op } |
--                       { result = value } | { err = err }   (round 2).
-- `set_app_policies(app_id, refs [, opts])` GETs the application and PUTs
-- it whole (body.lua) with `policies` as refs; `[]` only with
-- `opts.allow_empty`; with `opts.expect` (the ids the caller last saw, in
-- order) a live list that differs is a `conflict` and nothing is sent.
-- attach_policy and detach_policy are set_app_policies over the live list.
local ctx = ...
local M = {}

local check = ctx.check
local err, app_body = check.err, ctx.body.app_body

-- ---- the live list ------------------------------------------------------------

-- The live policies list of application `app` (a GET result) in
-- precedence order: { { id =, precedence =, reusable = }, ... }, or nil, err.
local function live_list(client, app, app_id)
  local items = app.policies
  if items == nil then return {} end
  if type(items) ~= "table" then
    return nil, err("conflict", ("app %s: policies is not a list in the GET"):format(app_id), { field = "policies" })
  end
  local out, ck = {}, check.checker(client)
  for i, p in ipairs(items) do
    local id = type(p) == "table" and p.id or p
    ck:id(i, "", "policy_id", id)   -- the core says whether it is a policy id
    local item = { id = id, i = i }
    if type(p) == "table" then item.precedence, item.reusable = math.tointeger(p.precedence), p.reusable end
    out[#out + 1] = item
  end
  local bad = ck:problems()[1]
  if bad then
    local i = check.op_index(bad.path)
    return nil, err("conflict", ("app %s: policies[%d] has no policy id: the list cannot be sent back")
      :format(app_id, i), { field = ("policies[%d]"):format(i) })
  end
  table.sort(out, function(a, b)
    local pa, pb = a.precedence or math.maxinteger, b.precedence or math.maxinteger
    if pa ~= pb then return pa < pb end
    return a.i < b.i
  end)
  return out
end

local function ids_of(list)
  local out = {}
  for i, p in ipairs(list) do out[i] = p.id end
  return out
end

-- ---- refs ---------------------------------------------------------------------

-- The shape of refs[i] (r, at sub-path rp of ops[at]): its id and
-- precedence; problems added to ck (the id is asked of the core).
local function check_ref(ck, at, r, rp, seen, i)
  local id, prec = r, nil
  if type(r) == "table" then
    id, prec = r.id, r.precedence
    for k in pairs(r) do
      if k ~= "id" and k ~= "precedence" then
        ck:add(at, rp .. "." .. tostring(k), "unknown field (a link has id and precedence)")
      end
    end
  end
  ck:id(at, type(r) == "table" and rp .. ".id" or rp, "policy_id", id)
  if type(id) == "string" then
    if seen[id:lower()] then
      ck:add(at, rp, ("policy %s is listed twice (also [%d])"):format(id, seen[id:lower()]))
    else
      seen[id:lower()] = i
    end
  end
  if prec ~= nil then
    prec = math.tointeger(prec)
    if not prec or prec < 1 then ck:add(at, rp .. ".precedence", "expected an integer >= 1") end
  end
  return id, prec
end

-- refs (ids or { id =, precedence = }) at sub-path "sub" of ops[at]: a list
-- of { id =, precedence = } with every precedence set, problems added to ck.
local function check_refs(ck, at, refs, sub)
  if type(refs) ~= "table" then
    return nil, ck:add(at, sub, "expected a list of policy ids or { id =, precedence = } links, got " .. type(refs))
  end
  local n, out, seen, used = #refs, {}, {}, {}
  for k in pairs(refs) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return nil, ck:add(at, sub, "expected a list (keys 1..n), got key " .. tostring(k))
    end
  end
  for i = 1, n do
    local id, prec = check_ref(ck, at, refs[i], ("%s[%d]"):format(sub, i), seen, i)
    out[i] = { id = id, precedence = prec }
  end
  -- precedence left out: one more than the one before (the list is in
  -- precedence order)
  local last = 0
  for i, r in ipairs(out) do
    local given = type(refs[i]) == "table" and refs[i].precedence
    if not r.precedence then r.precedence = last + 1 end
    if r.precedence <= last and given then
      ck:add(at, ("%s[%d].precedence"):format(sub, i),
        ("%d is not above the one before (%d): refs are in precedence order"):format(r.precedence, last))
    end
    if used[r.precedence] then
      ck:add(at, ("%s[%d].precedence"):format(sub, i), ("%d is used twice (the API refuses it)"):format(r.precedence))
    end
    used[r.precedence] = true
    last = math.max(last, r.precedence)
  end
  return out
end

-- ---- the PUT -----------------------------------------------------------------

-- A set of the app's live list (after the GET): the checks of expect and
-- of an empty list, then the PUT.
local function put_list(app, app_id, links, opts, live)
  opts = opts or {}
  if opts.expect then
    local have = ids_of(live)
    local same = #have == #opts.expect
    for i = 1, #have do same = same and have[i]:lower() == tostring(opts.expect[i]):lower() end
    if not same then
      return { err = err("conflict", ("app %s: its policies are %s, not the expected %s: nothing was sent")
        :format(app_id, "[" .. table.concat(have, ", ") .. "]", "[" .. table.concat(opts.expect, ", ") .. "]"),
        { app_id = app_id, live = have, expect = opts.expect }) }
    end
  end
  if #links == 0 and not opts.allow_empty then
    return { err = err("conflict", ("app %s: the new list is empty: policies: [] detaches every policy and "
      .. "the API deletes the app's legacy ones; pass { allow_empty = true } to mean it"):format(app_id),
      { app_id = app_id }) }
  end
  local body, e = app_body(app, links)
  if not body then
    e.app_id = app_id
    e.message = ("app %s: %s"):format(app_id, e.message)
    return { err = e }
  end
  return { send = { action = "put_app", app_id = app_id, body = body } }
end

-- Links in order, each given a precedence above the one before where it
-- has none (or one not above); returns the highest.
local function fill_precedences(links)
  local maxp = 0
  for _, p in ipairs(links) do
    if not p.precedence or p.precedence <= maxp then p.precedence = maxp + 1 end
    maxp = p.precedence
  end
  return maxp
end

-- ---- the ops -----------------------------------------------------------------

local OPS = {}
M.OPS = OPS

-- The fields of ops[at] (op) other than "op" must be those of fields
-- (name -> check(ck, at, sub, value, op)).
local function check_fields(fields)
  return function(ck, op, at)
    for k in pairs(op) do
      if k ~= "op" and not fields[k] then ck:add(at, "." .. tostring(k), "unknown field for " .. op.op) end
    end
    for name, f in pairs(fields) do f(ck, at, "." .. name, op[name], op) end
  end
end

local function app_id(ck, at, sub, v) ck:id(at, sub, "app_id", v) end
local function policy_id(ck, at, sub, v) ck:id(at, sub, "policy_id", v) end
local function options(allowed)
  return function(ck, at, sub, v) ck:options(at, sub, allowed, v) end
end
local function read_app(op) return { { op = "get_app", app_id = op.app_id } } end

OPS.set_app_policies = {
  check = check_fields({
    app_id = app_id,
    refs = function(ck, at, sub, v, op)
      if v == nil then return ck:add(at, sub, "missing (expected a list of policy ids)") end
      local links = check_refs(ck, at, v, sub)
      if links and #links == 0 and not (type(op.opts) == "table" and op.opts.allow_empty) then
        ck:add(at, sub, "an empty list detaches every policy of the app (and the API deletes its legacy "
          .. "ones): pass opts.allow_empty = true to mean it")
      end
    end,
    opts = options({ expect = "ids", allow_empty = "boolean" }),
  }),
  reads = read_app,
  write = function(client, op, got)
    local live, e = live_list(client, got[1], op.app_id)
    if not live then return { err = e } end
    local links = check_refs(check.checker(client), 1, op.refs, "")   -- checked: the links
    return put_list(got[1], op.app_id, links, op.opts, live)
  end,
}

-- attach: policy_id put at opts.precedence (what stands at or after it
-- moves up by one) or after the last; already there: the app unchanged.
local function attach(client, op, got)
  local live, e = live_list(client, got[1], op.app_id)
  if not live then return { err = e } end
  local want = op.opts and math.tointeger(op.opts.precedence)
  local links = {}
  for _, p in ipairs(live) do
    if p.id:lower() == op.policy_id:lower() then
      if not want or want == p.precedence then return { result = got[1] } end   -- already there
    else
      links[#links + 1] = { id = p.id, precedence = p.precedence }
    end
  end
  local maxp = fill_precedences(links)
  if want then   -- make room
    local taken = false
    for _, p in ipairs(links) do taken = taken or p.precedence == want end
    if taken then
      for _, p in ipairs(links) do if p.precedence >= want then p.precedence = p.precedence + 1 end end
    end
  end
  links[#links + 1] = { id = op.policy_id, precedence = want or (maxp + 1) }
  table.sort(links, function(a, b) return a.precedence < b.precedence end)
  return put_list(got[1], op.app_id, links, { allow_empty = true }, live)
end

OPS.attach_policy = {
  check = check_fields({ app_id = app_id, policy_id = policy_id, opts = options({ precedence = "precedence" }) }),
  reads = read_app,
  write = attach,
}

local function detach(client, op, got)
  local live, e = live_list(client, got[1], op.app_id)
  if not live then return { err = e } end
  local links, found = {}, nil
  for _, p in ipairs(live) do
    if p.id:lower() == op.policy_id:lower() then found = p
    else links[#links + 1] = { id = p.id, precedence = p.precedence } end
  end
  if not found then
    return { err = err("conflict", ("app %s: policy %s is not attached to it: nothing was sent")
      :format(op.app_id, op.policy_id), { app_id = op.app_id }) }
  end
  if found.reusable == false then
    return { err = err("usage", ("app %s: policy %s is a legacy policy of the app: left out of its list "
      .. "the API deletes it; delete it with delete_app_policy if that is meant"):format(op.app_id, op.policy_id),
      { app_id = op.app_id }) }
  end
  fill_precedences(links)
  return put_list(got[1], op.app_id, links, { allow_empty = op.opts and op.opts.allow_empty }, live)
end

OPS.detach_policy = {
  check = check_fields({ app_id = app_id, policy_id = policy_id, opts = options({ allow_empty = "boolean" }) }),
  reads = read_app,
  write = detach,
}

OPS.make_reusable = {
  check = function(ck, op, at)
    check_fields({ app_id = app_id, policy_id = policy_id })(ck, op, at)
    local ok, msg = ctx.can_send(ck.client, "make_reusable")   -- its scopes: src/apps.c
    if not ok then ck:add(at, ".op", msg) end
  end,
  reads = function() return {} end,
  write = function(_, op)
    return { send = { action = "make_reusable", app_id = op.app_id, policy_id = op.policy_id } }
  end,
}

return M
