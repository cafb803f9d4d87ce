--- Desired state: `client:apply(plan [, opts])` (API.md section 8).
--
-- Runs a plan of cfaccess.plan in four phases, each through `client:batch`
-- (so the client's pacing, retries and no-duplicate create hold, and
-- independent changes run concurrently):
--   1. create and update reusable policies;
--   2. set the apps' lists (with `expect`; a policy created in phase 1 is
--      referred to by its new id);
--   3. legacy app policies, one chain of requests per app (the chains of
--      different apps run side by side, one step of each per round);
--   4. deletes (only in a plan made with prune): after the lists that
--      detach them, a 404 counting as done.
-- A change that fails skips the changes that depend on it; the rest go on.
-- Before phase 1, what the plan writes is read again (cfaccess.apply.recheck):
-- a change the live state moved under since the plan is a `conflict`, and
-- what depends on it is skipped: an app's list when the update or create of
-- a policy it attaches did not succeed, and the whole chain of an app one of
-- whose legacy changes was refused (a chain half run could leave a policy
-- parked).
--
-- Legacy precedences: the API refuses two policies of an app at one
-- precedence, so each app's chain moves a policy only into a free slot.
-- When every wanted slot is taken (a cycle, e.g. a reversed order), one
-- policy of the cycle is parked at a precedence above every used one, which
-- frees a slot; it then moves again to its place, so a finished chain leaves
-- nothing parked. A legacy policy that prune deletes and that stands where
-- another must go is deleted at that point rather than parked first (no
-- extra write, and nothing can be left parked if its delete fails).
-- @module cfaccess.apply
local common = require("cfaccess.plan.common")
local recheck = require("cfaccess.apply.recheck")

local M = {}

local copy, new_err = common.copy, common.new_err
local DEFAULT_CONCURRENCY = common.DEFAULT_CONCURRENCY

local function describe_change(c)
  if c.action == "set" then return ("set the list of app %s"):format(c.app_id) end
  return ("%s %s %q%s"):format(c.action, c.type == "reusable" and "reusable policy" or "app policy",
    tostring(c.name), c.app_id and (" of app " .. c.app_id) or "")
end

-- The request of one step: a batch op.
local function step_op(c, step, created)
  if c.type == "reusable" then
    if c.action == "create" then return { op = "create_policy", policy = c.body } end
    if c.action == "update" then return { op = "update_policy", policy_id = c.id, policy = c.body } end
    return { op = "delete_policy", policy_id = c.id }
  end
  if c.type == "app" then
    local refs = {}
    for i, r in ipairs(c.refs) do
      refs[i] = r.id or created[r.name]
      if not refs[i] then return nil end
    end
    return { op = "set_app_policies", app_id = c.app_id, refs = refs,
             opts = { expect = c.expect, allow_empty = c.allow_empty or nil } }
  end
  if step.kind == "delete" then return { op = "delete_app_policy", app_id = c.app_id, policy_id = c.id } end
  local body = copy(c.body)
  body.precedence = step.precedence
  local op = { app_id = c.app_id, policy = body,
               kind = c.kind == "infrastructure" and "infrastructure" or nil }
  if c.action == "create" then op.op = "create_app_policy" else op.op, op.policy_id = "update_app_policy", c.id end
  return op
end

-- The chain of steps that brings one app's legacy policies to their
-- precedences (see the module comment). items: { { i =, c = } } of the
-- app's legacy creates and updates; deletes: its prune deletes (candidates
-- for an early delete); maxp: the highest precedence the app uses.
local function legacy_chain(items, deletes, maxp)
  local occ, nodes, steps = {}, {}, {}
  local temp = maxp or 0
  for _, it in ipairs(items) do
    if it.c.to == nil then
      -- no precedence to reach (an infrastructure app's policy): one write
      steps[#steps + 1] = { i = it.i, kind = "write", final = true }
    else
      temp = math.max(temp, it.c.to, it.c.from or 0)
      local n = { i = it.i, c = it.c, cur = it.c.from, to = it.c.to }
      if n.cur then occ[n.cur] = n end
      nodes[#nodes + 1] = n
    end
  end
  for _, it in ipairs(deletes) do
    temp = math.max(temp, it.c.from or 0)
    if it.c.from and not occ[it.c.from] then occ[it.c.from] = { i = it.i, c = it.c, delete = true } end
  end
  temp = temp + 1
  local left = #nodes
  while left > 0 do
    local progress = false
    for _, n in ipairs(nodes) do
      if not n.done and (n.cur == n.to or occ[n.to] == nil) then
        steps[#steps + 1] = { i = n.i, kind = "write", precedence = n.to, final = true }
        if n.cur then occ[n.cur] = nil end
        occ[n.to], n.cur, n.done = n, n.to, true
        left = left - 1
        progress = true
      end
    end
    if not progress and left > 0 then
      local blocker
      for _, n in ipairs(nodes) do
        if not n.done then blocker = occ[n.to]; break end
      end
      if blocker.delete then
        steps[#steps + 1] = { i = blocker.i, kind = "delete", final = true }
        occ[blocker.c.from] = nil
      else
        steps[#steps + 1] = { i = blocker.i, kind = "write", precedence = temp }
        occ[blocker.cur] = nil
        blocker.cur = temp
        occ[temp] = blocker
        temp = temp + 1
      end
    end
  end
  return steps
end

-- The steps of a plan, by phase: phase1 (reusable creates and updates),
-- phase2 (the apps' lists), chains[app_id] (legacy_chain's steps, apps in
-- app_order), phase4 (deletes; early[i]: a delete a chain already runs);
-- set_of[app_id]: the index of the app's list change; total: the steps.
local function phases(plan)
  local ph = { phase1 = {}, phase2 = {}, phase4 = {}, chains = {}, app_order = {}, set_of = {}, early = {} }
  local legacy_items, legacy_deletes = {}, {}
  for i, c in ipairs(plan.changes) do
    if c.type == "reusable" and c.action ~= "delete" then ph.phase1[#ph.phase1 + 1] = { i = i, final = true }
    elseif c.type == "app" then ph.phase2[#ph.phase2 + 1] = { i = i, final = true }; ph.set_of[c.app_id] = i
    elseif c.type == "policy" and c.action ~= "delete" then
      if not legacy_items[c.app_id] then ph.app_order[#ph.app_order + 1] = c.app_id; legacy_items[c.app_id] = {} end
      table.insert(legacy_items[c.app_id], { i = i, c = c })
    elseif c.action == "delete" then
      ph.phase4[#ph.phase4 + 1] = { i = i, kind = "delete", final = true }
      if c.type == "policy" and not c.after_set then
        legacy_deletes[c.app_id] = legacy_deletes[c.app_id] or {}
        table.insert(legacy_deletes[c.app_id], { i = i, c = c })
      end
    end
  end
  ph.total = #ph.phase1 + #ph.phase2
  for _, app_id in ipairs(ph.app_order) do
    local info = plan.apps and plan.apps[app_id] or {}
    ph.chains[app_id] = legacy_chain(legacy_items[app_id], legacy_deletes[app_id] or {}, info.max_precedence)
    for _, s in ipairs(ph.chains[app_id]) do
      if s.kind == "delete" then ph.early[s.i] = true end
    end
    ph.total = ph.total + #ph.chains[app_id]
  end
  for _, s in ipairs(ph.phase4) do
    if not ph.early[s.i] then ph.total = ph.total + 1 end
  end
  return ph
end

-- One apply's progress: run = { client =, changes =, concurrency =,
-- on_progress =, total =, done = steps done, status[i] = "ok" | "failed" |
-- "skipped", results[i], created[name] = the id of a policy created }.
local function progress(run, d, info)
  if run.on_progress then run.on_progress(run.done + d, run.total, info) end
end

local function finish(run, i, ok, r, err)
  local res = run.results[i]
  if ok then
    run.status[i] = "ok"
    res.ok = true
    res.id = (type(r) == "table" and r.id) or run.changes[i].id
  else
    run.status[i] = "failed"
    res.ok = false
    res.err = err
  end
end

local function skip(run, i, why)
  if run.status[i] then return end
  run.status[i] = "skipped"
  run.results[i].ok = false
  run.results[i].skipped = true
  run.results[i].err = new_err("conflict", "skipped: " .. why)
end

-- Why an app's list change c must not be written: a reusable policy it
-- attaches was to be created or updated first, and that did not succeed
-- (the list would attach content the state does not give). A policy the
-- app links already is live on it whatever the list does: its failed
-- update holds nothing back. nil when it may go.
local function blocked(run, c)
  if c.action ~= "set" then return nil end
  for _, r in ipairs(c.refs or {}) do
    local dep = r.attached and ((r.id and run.dep_by_id[r.id]) or (r.name and run.dep_by_name[r.name]))
    if dep and run.status[dep] ~= "ok" then return describe_change(run.changes[dep]) .. " did not succeed" end
  end
end

-- Run steps { i =, kind =, precedence =, final = } as one batch; a step
-- whose op cannot be built (a reference to a policy not created) or that
-- is blocked is skipped. Returns the per-step outcome: true ok, false
-- failed, nil skipped.
local function run_steps(run, steps)
  local changes = run.changes
  local ops, idx, outcome = {}, {}, {}
  for k, s in ipairs(steps) do
    local op = step_op(changes[s.i], s, run.created)
    local why = not run.refused[s.i] and blocked(run, changes[s.i])
    if run.refused[s.i] then
      finish(run, s.i, false, nil, run.refused[s.i])
      outcome[k] = false
      run.done = run.done + 1
    elseif why then skip(run, s.i, why); run.done = run.done + 1
    elseif op then ops[#ops + 1] = op; idx[#ops] = k
    else skip(run, s.i, "a policy it refers to was not created"); run.done = run.done + 1 end
  end
  if #ops == 0 then return outcome end
  local rs, berr = run.client:batch(ops, { concurrency = run.concurrency,
                                           on_progress = function(d, _, info) progress(run, d, info) end })
  for n = 1, #ops do
    local s = steps[idx[n]]
    local r = rs and rs[n] or { ok = false, err = berr }
    local c = changes[s.i]
    local ok = r.ok
    if not ok and c.action == "delete" and type(r.err) == "table" and r.err.status == 404 then ok = true end
    outcome[idx[n]] = ok
    if not ok then finish(run, s.i, false, nil, r.err)
    elseif s.final then
      finish(run, s.i, true, r.result)
      if c.type == "reusable" and c.action == "create" then run.created[c.name] = r.result and r.result.id end
    end
  end
  run.done = run.done + #ops
  progress(run, 0)
  return outcome
end

-- Phase 3: the legacy chains, one step of each app per round; a failed
-- step skips the rest of its app's chain, and the chain of an app with a
-- refused change does not start (its refused changes fail, the rest are
-- skipped). Returns broken[app_id] = why.
local function run_chains(run, ph)
  local chains, pos, broken = ph.chains, {}, {}
  for _, app_id in ipairs(ph.app_order) do
    for _, s in ipairs(chains[app_id]) do
      if run.refused[s.i] then
        broken[app_id] = broken[app_id] or describe_change(run.changes[s.i]) .. " was refused"
      end
    end
    if broken[app_id] then
      for _, s in ipairs(chains[app_id]) do
        if run.refused[s.i] then finish(run, s.i, false, nil, run.refused[s.i])
        else skip(run, s.i, broken[app_id]) end
        run.done = run.done + 1
      end
      pos[app_id] = #chains[app_id]
    end
  end
  while true do
    local round, owners = {}, {}
    for _, app_id in ipairs(ph.app_order) do
      local k = (pos[app_id] or 0) + 1
      local s = chains[app_id][k]
      if s and not broken[app_id] then
        round[#round + 1] = s
        owners[#round] = app_id
        pos[app_id] = k
      end
    end
    if #round == 0 then break end
    local outcome = run_steps(run, round)
    for n, s in ipairs(round) do
      if outcome[n] ~= true then
        local app_id = owners[n]
        broken[app_id] = describe_change(run.changes[s.i]) .. " failed"
        -- the rest of this app's chain does not run
        for k = pos[app_id] + 1, #chains[app_id] do
          skip(run, chains[app_id][k].i, broken[app_id])
          run.done = run.done + 1
        end
        pos[app_id] = #chains[app_id]
      end
    end
  end
  return broken
end

-- Phase 4: the deletes not run early, each after what it depends on (the
-- lists that detach it, its app's chain); skipped when that did not succeed.
local function run_deletes(run, ph, broken)
  local changes, status, set_of = run.changes, run.status, ph.set_of
  local ready = {}
  for _, s in ipairs(ph.phase4) do
    local c = changes[s.i]
    if not ph.early[s.i] then
      local why
      if c.type == "reusable" then
        for _, app_id in ipairs(c.after_apps or {}) do
          local si = set_of[app_id]
          if si and status[si] ~= "ok" then why = describe_change(changes[si]) .. " did not succeed" end
        end
      elseif c.after_set then
        local si = set_of[c.app_id]
        if si and status[si] ~= "ok" then why = describe_change(changes[si]) .. " did not succeed" end
      elseif broken[c.app_id] then
        why = broken[c.app_id]
      end
      if why and not run.refused[s.i] then skip(run, s.i, why); run.done = run.done + 1
      else ready[#ready + 1] = s end
    end
  end
  run_steps(run, ready)
end

-- The report of a finished run, and an error when a change failed or was skipped.
local function report_of(run)
  local changes, results = run.changes, run.results
  local report = { applied = 0, failed = 0, skipped = 0, results = results }
  local first
  for i in ipairs(changes) do
    local st = run.status[i]
    if st == "ok" then report.applied = report.applied + 1
    elseif st == "failed" then
      report.failed = report.failed + 1
      first = first or i
    else report.skipped = report.skipped + 1 end
  end
  if report.failed == 0 and report.skipped == 0 then return report end
  local e = first and results[first].err
  local msg = ("%d of %d changes failed, %d skipped"):format(report.failed, #changes, report.skipped)
  if first then msg = msg .. ("; first: %s: %s"):format(describe_change(changes[first]), tostring(e)) end
  return report, new_err(type(e) == "table" and e.kind or "conflict", msg, { report = report })
end

--- Apply a plan made by `client:plan`.
-- @param client the client the plan was made with
-- @tparam table plan the plan
-- @tparam[opt] table opts `{ concurrency = 4, on_progress = function(done, total, info) end }`
-- @return the report `{ applied =, failed =, skipped =, results = { { change =, ok =, id =, err = }, ... } }`,
-- and an error as second value when any change failed (or `nil, err` for a bad plan)
function M.apply(client, plan, opts)
  opts = common.check_opts(opts, { concurrency = "number", on_progress = "function" }, "apply")
  if type(plan) ~= "table" or type(plan.changes) ~= "table" then
    error("bad argument #1 to apply: a plan (from client:plan) expected", 2)
  end
  local ph = phases(plan)
  local run = { client = client, changes = plan.changes, concurrency = opts.concurrency or DEFAULT_CONCURRENCY,
                on_progress = opts.on_progress, total = ph.total, done = 0,
                status = {}, results = {}, created = {}, refused = {} }
  run.dep_by_id, run.dep_by_name = {}, {}
  for i, c in ipairs(plan.changes) do
    run.results[i] = { change = c }
    if c.type == "reusable" and (c.action == "create" or c.action == "update") then
      run.dep_by_name[c.name] = i
      if c.id then run.dep_by_id[c.id] = i end
    end
  end
  run.refused = recheck.refusals(client, plan, run.concurrency)

  progress(run, 0)
  -- 1. reusable creates and updates
  run_steps(run, ph.phase1)
  -- 2. the apps' lists (skipped when a policy they refer to was not created)
  run_steps(run, ph.phase2)
  -- 3. legacy chains, one step of each app per round
  local broken = run_chains(run, ph)
  -- 4. deletes, after what they depend on
  run_deletes(run, ph, broken)
  -- changes left without an outcome (their chain was cut) are skipped
  for i in ipairs(plan.changes) do
    if not run.status[i] then skip(run, i, "an earlier step of its app failed") end
  end
  progress(run, 0)
  return report_of(run)
end

return M
