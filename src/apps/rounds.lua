-- cfaccess section-6 chunks, 5: a batch with section-6 ops, in two rounds.
--
-- Every op is checked first (the section-6 ops by their specs, asking the
-- core what it knows; the others by the core; all problems listed, paths
-- "ops[i]...", nothing sent). Then round 1 runs the batch's other ops next
-- to the reads the section-6 ops need (one GET per application changed,
-- one policy list per application whose policies are updated or deleted,
-- one reusable list for deletes, each once), and round 2 their writes: the
-- guarded core ops as a core batch, the whole-application PUTs and
-- make_reusable through client:_send. Every request goes through the C
-- engine (retries, pacing, Retry-After, no duplicate create).
local ctx = ...
local M = {}

local check = ctx.check
local LISTS, GUARDS = ctx.lists.OPS, ctx.guards.OPS

--- The spec of each section-6 op name (lists.lua, guards.lua).
M.SPECS = {}
for name, spec in pairs(LISTS) do M.SPECS[name] = spec end
for name, spec in pairs(GUARDS) do M.SPECS[name] = spec end

local function key_of(read) return read.op .. "|" .. (read.app_id or "") end

-- Rewrite the "ops[k]..." paths of a core batch err with map[k] = the
-- original index (the message rewritten by the core).
local function remap(err, map)
  if not (err.problems and err.problems[1]) then return err end
  for _, p in ipairs(err.problems) do
    p.path = p.path:gsub("^ops%[(%d+)%]", function(k) return ("ops[%d]"):format(map[tonumber(k)] or 0) end)
  end
  err.message = check.invalid("batch", err.problems).message
  return err
end

-- ---- the checks ----------------------------------------------------------------

-- One list change per application and batch: ops changing the same app's
-- list (their app_id valid: no problem on it) added to ck.
local function one_change_per_app(ck, ops, special, problems)
  local bad, changed = {}, {}
  for _, p in ipairs(problems) do bad[p.path] = true end
  for i = 1, #ops do
    local op = ops[i]
    local at = ("ops[%d].app_id"):format(i)
    if special[i] and LISTS[op.op] and special[i].reads(op)[1] and type(op.app_id) == "string" and not bad[at] then
      local k = op.app_id:lower()
      if changed[k] then
        ck:add(i, ".app_id", ("ops[%d] changes this application's list too: one list change per application "
          .. "and batch"):format(changed[k]))
      end
      changed[k] = i
    end
  end
end

-- Check every op; true, or nil, the `invalid` err with every problem.
local function check_all(client, ops, special)
  local ck = check.checker(client)
  for i, spec in pairs(special) do spec.check(ck, ops[i], i) end
  one_change_per_app(ck, ops, special, ck:problems())
  if #ck.found == 0 then return true end
  for i = 1, #ops do   -- the other ops' problems are listed too
    if not special[i] then ck:core(i, ops[i]) end
  end
  return nil, check.invalid("batch", ck:problems())
end

-- ---- the rounds ------------------------------------------------------------------

-- Round 1: the other ops and (once each) the reads. Sets results of the
-- other ops; returns the reads' results by key, or nil, err.
local function round1(core_batch, client, ops, special, bopts, progress)
  local r1ops, map, readidx = {}, {}, {}
  for i = 1, #ops do
    if not special[i] then r1ops[#r1ops + 1] = ops[i]; map[#r1ops] = i end
  end
  local plain = #r1ops
  for i = 1, #ops do
    for _, rd in ipairs(special[i] and special[i].reads(ops[i]) or {}) do
      local k = key_of(rd)
      if not readidx[k] then r1ops[#r1ops + 1] = rd; map[#r1ops] = i; readidx[k] = #r1ops end
    end
  end
  local results = {}
  if #r1ops > 0 then
    local on = bopts.on_progress and function(d, t, info) progress(math.floor(d * plain / t), info) end
    local r1, err = core_batch(client, r1ops, { concurrency = bopts.concurrency, on_progress = on })
    if not r1 then return nil, remap(err, map) end
    for j = 1, plain do results[map[j]] = r1[j] end
    for k, j in pairs(readidx) do readidx[k] = r1[j] end
  end
  progress(plain)
  return results, readidx, plain
end

-- Round 2's plan: each section-6 op's write from what it read.
local function plan_writes(client, ops, special, reads, results)
  local core, cmap, sends, smap, finished = {}, {}, {}, {}, 0
  for i = 1, #ops do
    if special[i] then
      local got, failed = {}, nil
      for j, rd in ipairs(special[i].reads(ops[i])) do
        local r = reads[key_of(rd)]
        if r.ok then got[j] = r.result else failed = r.err end
      end
      local w = failed and { err = failed } or special[i].write(client, ops[i], got)
      if w.batch then core[#core + 1] = w.batch; cmap[#core] = i
      elseif w.send then sends[#sends + 1] = w.send; smap[#sends] = i
      else
        results[i] = w.err and { ok = false, err = w.err } or { ok = true, result = w.result }
        finished = finished + 1
      end
    end
  end
  return core, cmap, sends, smap, finished
end

-- Round 2: the writes (see plan_writes); results set.
local function round2(core_batch, client, ops, special, bopts, progress, reads, results, finished)
  local core, cmap, sends, smap, n = plan_writes(client, ops, special, reads, results)
  finished = finished + n
  progress(finished)
  if #core > 0 then
    local base = finished
    local on = bopts.on_progress and function(d, _, info) progress(base + d, info) end
    local r2, err = core_batch(client, core, { concurrency = bopts.concurrency, on_progress = on })
    if not r2 then err = remap(err, cmap) end   -- once: the same err for each
    for j = 1, #core do results[cmap[j]] = r2 and r2[j] or { ok = false, err = err } end
    finished = finished + #core
    progress(finished)
  end
  if #sends > 0 then
    local r3 = client:_send(sends, bopts.concurrency)
    for j = 1, #sends do results[smap[j]] = r3[j] end
    progress(finished + #sends)
  end
end

--- Does ops hold a section-6 op?
function M.has_special(ops)
  if type(ops) ~= "table" then return false end
  for i = 1, #ops do
    if type(ops[i]) == "table" and M.SPECS[ops[i].op] then return true end
  end
  return false
end

--- The batch of ops holding section-6 ops (core_batch: the core's batch).
function M.batch(core_batch, client, ops, bopts)
  local special = {}
  for i = 1, #ops do
    special[i] = type(ops[i]) == "table" and M.SPECS[ops[i].op] or nil
  end
  local ok, err = check_all(client, ops, special)
  if not ok then return nil, err end
  bopts = bopts or {}
  local total, done, on_progress = #ops, 0, bopts.on_progress
  local function progress(d, info)
    if on_progress and d > done then done = d; on_progress(d, total, info)
    elseif on_progress and info then on_progress(done, total, info) end
  end
  local results, reads, plain = round1(core_batch, client, ops, special, bopts, progress)
  if not results then return nil, reads end
  round2(core_batch, client, ops, special, bopts, progress, reads, results, plain)
  return results
end

return M
