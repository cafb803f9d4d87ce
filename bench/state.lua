--- bench/state.lua: `make bench-state`, the desired-state layer at scale
-- (issue 12's Scale bullet), against the project's mock (tests/mock/cfmock.py
-- started through tests/mockctl.lua).
--
-- 1. plan: ST_POLICIES (500) live reusable policies and ST_APPS (50) apps, a
--    state equal to the live one (so the plan must come out empty), planned
--    three ways:
--      links   every app lists ST_LINKS (10) reusable policies
--      legacy  every app has ST_LEGACY (3) legacy (app-scoped) policies
--      paged   as links, with the mock's per_page capped at ST_CAP (100),
--              so the reusable list takes several pages
--    Printed: the requests the mock logged during the plan, split into
--    reusable list pages, application GETs and app policy lists, against
--    the target (list pages + apps, + one list per legacy app), and the wall
--    and CPU time of `client:plan`. Every answer of the mock takes
--    ST_LATENCY s (0.08).
-- 2. apply: a state of ST_N (500) new reusable policies against the mock's
--    lockout model, Cloudflare's 1200 per 300 s scaled to ST_BUDGET (60) per
--    ST_WINDOW s (15), the same 4 requests per second. One run per entry of
--    ST_CONFIGS:
--      explicit  rate_limit = { requests = ST_BUDGET, per = ST_WINDOW }
--      default   no rate options: 1200 per 300 s and the Ratelimit header
--      off       rate_limit = false (429 + Retry-After only; information)
--    Each run starts afresh: mock reset, the plan made by a client without
--    pacing, then the lockout armed (a fresh budget) and the plan applied by
--    a new client with the run's options, at apply's default concurrency
--    (ST_CONCURRENCY to change it). Printed: wall time of `client:apply`
--    against the physical floor, the 429s and the requests the mock logged
--    during the apply, failed and skipped changes, and what the mock holds
--    afterwards (reusable policies, duplicate names).
--    ST_APPLY_APPS (0) apps, registered empty, may list ST_LINKS of the new
--    policies each: then the apply also sets their lists (GET + PUT each).
--    The floor counts the first window's burst: full windows x ST_WINDOW
--    (full = floor((N-1)/budget)) + the last window's creates at the
--    latency, `concurrency` at a time (and never less than N/concurrency
--    round trips). With the defaults each run takes ~121 s: the whole
--    target takes about 4.5 minutes. ST_TIMEOUT (default 3x the floor + 60
--    s) bounds each apply through the client's `deadline` (where the core
--    has that option).
-- Knobs (environment): ST_POLICIES, ST_APPS, ST_LINKS, ST_LEGACY, ST_CAP,
-- ST_PLANS ("links legacy paged"), ST_N, ST_APPLY_APPS, ST_BUDGET, ST_WINDOW, ST_LATENCY,
-- ST_CONFIGS ("explicit default"), ST_CONCURRENCY, ST_TIMEOUT; ST_PLANS=""
-- or ST_CONFIGS="" leaves that part out.
-- Exit status: 0 when every target is met, 1 otherwise.
local socket = require("socket")
local mockctl = require("mockctl")
local cfaccess = require("cfaccess")
local r = cfaccess.rules

local function env_num(name, dflt)
  local v = os.getenv(name)
  if v == nil or v == "" then return dflt end
  local n = tonumber(v)
  if not n then error(name .. ": a number expected, got " .. v) end
  return n
end
local function env_words(name, dflt)
  local v = os.getenv(name)
  if v == nil then v = dflt end
  local out = {}
  for w in v:gmatch("%S+") do out[#out + 1] = w end
  return out
end

local NPOL = env_num("ST_POLICIES", 500)
local NAPPS = env_num("ST_APPS", 50)
local NLINKS = env_num("ST_LINKS", 10)
local NLEGACY = env_num("ST_LEGACY", 3)
local CAP = env_num("ST_CAP", 100)
local PLANS = env_words("ST_PLANS", "links legacy paged")
local N = env_num("ST_N", 500)
local BUDGET = env_num("ST_BUDGET", 60)
local WINDOW = env_num("ST_WINDOW", 15)
local LATENCY = env_num("ST_LATENCY", 0.08)
local CONFIGS = env_words("ST_CONFIGS", "explicit default")
local CONC = env_num("ST_CONCURRENCY", nil)
local APPLY_APPS = env_num("ST_APPLY_APPS", 0)
local APPLY_CONC = CONC or 4   -- apply's default concurrency (API.md section 8)
local READ_PER_PAGE = 1000     -- the largest page the API allows

local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local TOKEN = "bench-state-token"
local misses = 0

local function app_id(i) return ("5c0a1e00-0000-4000-8000-%012d"):format(i) end

local function policy(prefix, i)
  return { name = ("%s-%04d"):format(prefix, i), decision = "allow",
           include = { r.email("user" .. i .. "@example.com"), r.email_domain("d" .. i .. ".example.com") },
           require = (i % 3 == 0) and { r.auth_method("mfa") } or nil }
end

local function legacy_policy(a, j)
  return { name = ("app%02d-legacy-%d"):format(a, j), decision = j == 1 and "deny" or "allow",
           include = { r.ip("10." .. a .. "." .. j .. ".0/24"), r.email("l" .. j .. "@example.com") } }
end

-- A client of the mock; `pacing`: "off" (rate_limit = false, the default
-- here), "default" (no rate_limit option at all) or a rate_limit table.
local function client(m, opts, pacing)
  local o = { account_id = ACCT, api_token = TOKEN, base_url = m.base_url }
  for k, v in pairs(opts or {}) do o[k] = v end
  if pacing == nil or pacing == "off" then o.rate_limit = false
  elseif pacing == "default" then o.rate_limit = nil
  else o.rate_limit = pacing end
  local c, err = cfaccess.client(o)
  if not c and o.deadline and tostring(err):find('unknown option "deadline"', 1, true) then
    -- a core without the deadline option (API.md section 3): unbounded
    o.deadline = nil
    c, err = cfaccess.client(o)
  end
  return assert(c, err)
end

local function ceil_div(a, b) return (a + b - 1) // b end

-- The least wall time any client can take for n requests at concurrency c
-- (see the header comment).
local function floor_s(n, c)
  local full = (n - 1) // BUDGET
  local m = n - full * BUDGET
  local f = full * WINDOW + ceil_div(m, c) * LATENCY
  local g = ceil_div(n, c) * LATENCY
  return math.max(f, g)
end

-- The requests the mock logged after the first `from` of this generation.
local function log_since(m, from)
  local log, out = m:log(), {}
  for i = from + 1, #log do out[#out + 1] = log[i] end
  return out, #log
end

-- ---- 1. plan -------------------------------------------------------------------

-- Seed: NPOL reusable policies through the API (the control API has no
-- route for them), then NAPPS apps through the control API, each linking
-- NLINKS of them (links) or holding NLEGACY legacy policies (legacy).
-- Returns the state that equals the live one.
local function seed(m, mode)
  m:reset()
  local c = client(m)
  local ops, state = {}, { policies = {}, apps = {} }
  for i = 1, NPOL do
    local p = policy("pol", i)
    ops[i] = { op = "create_policy", policy = p }
    state.policies[i] = p
  end
  local rs = assert(c:batch(ops, { concurrency = 8 }))
  local ids = {}
  for i, res in ipairs(rs) do
    if not res.ok then error("seeding policy " .. i .. ": " .. tostring(res.err)) end
    ids[i] = res.result.id
  end
  for a = 1, NAPPS do
    local id = app_id(a)
    local links, names, legacy = {}, {}, {}
    if mode == "legacy" then
      for j = 1, NLEGACY do
        local p = legacy_policy(a, j)
        legacy[j] = p
        local body = {}
        for k, v in pairs(p) do body[k] = v end
        body.precedence = j
        links[j] = body
      end
      state.apps[id] = { legacy = legacy }
    else
      for j = 1, NLINKS do
        local k = ((a - 1) * NLINKS + j - 1) % NPOL + 1
        links[j] = { id = ids[k], precedence = j }
        names[j] = state.policies[k].name
      end
      state.apps[id] = names
    end
    m:app("accounts", ACCT, id, "self_hosted", { name = "bench app " .. a, policies = links })
  end
  c:close()
  return state
end

local function classify(reqs)
  local pages, gets, lists, other = 0, 0, 0, 0
  for _, q in ipairs(reqs) do
    local p = q.path
    if q.method == "GET" and p:match("/access/policies/?$") then pages = pages + 1
    elseif q.method == "GET" and p:match("/access/apps/[^/]+/policies/?$") then lists = lists + 1
    elseif q.method == "GET" and p:match("/access/apps/[^/]+/?$") then gets = gets + 1
    else other = other + 1 end
  end
  return pages, gets, lists, other
end

local function plan_row(m, mode)
  local state = seed(m, mode)
  local cap = mode == "paged" and CAP or nil
  if cap then m:config{ per_page_cap = cap } end
  m:config{ latency = LATENCY }
  local c = client(m)
  local _, n0 = log_since(m, 0)
  local cpu0, t0 = os.clock(), socket.gettime()
  local plan, err = c:plan(state)
  local t1, cpu1 = socket.gettime(), os.clock()
  local reqs = log_since(m, n0)
  c:close()
  m:config{ latency = 0, per_page_cap = 0 }
  local pages, gets, lists, other = classify(reqs)
  local want_pages = ceil_div(NPOL, math.min(cap or READ_PER_PAGE, READ_PER_PAGE))
  local has_get = plan ~= nil and c.get_app ~= nil
  local want = want_pages + NAPPS + (mode == "legacy" and NAPPS or 0)
  local nchanges = plan and #plan.changes or -1
  local ok = plan ~= nil and #reqs == want and nchanges == 0
  if not ok then misses = misses + 1 end
  print(("| %-8s | %5d | %5d | %4d | %5d | %5d | %5d | %-20s | %7.3f | %6.3f | %7s |"):format(
    mode, #reqs, pages, gets, lists, other, want,
    ("%d [=%d] %s"):format(#reqs, want, ok and "ok" or "MISS"),
    t1 - t0, cpu1 - cpu0, plan and tostring(nchanges) or "error"))
  if not plan then print("  plan error: " .. tostring(err)) end
  if plan and nchanges > 0 then
    local sm = plan.summary
    print(("  %s: the plan wants %d creates, %d updates, %d deletes, %d attaches, %d detaches of a state "
      .. "equal to the live one"):format(mode, sm.create, sm.update, sm.delete, sm.attach, sm.detach))
  end
  if not has_get and plan then
    print("  (no client:get_app: apps' links read from their policy lists)")
  end
end

-- ---- 2. apply -------------------------------------------------------------------

local function apply_row(m, cfg)
  m:reset()
  m:config{ latency = LATENCY }
  local state = { policies = {}, apps = {} }
  for i = 1, N do state.policies[i] = policy("new-" .. cfg, i) end
  -- ST_APPLY_APPS apps (registered without policies) each list ST_LINKS
  -- of the new policies: one set_app_policies (GET + PUT) per app more
  for a = 1, APPLY_APPS do
    local id, names = app_id(a), {}
    for j = 1, NLINKS do names[j] = state.policies[((a - 1) * NLINKS + j - 1) % N + 1].name end
    state.apps[id] = names
    m:app("accounts", ACCT, id, "self_hosted", { name = "bench app " .. a })
  end
  local planner = client(m)
  local plan = assert(planner:plan(state))
  planner:close()
  assert(#plan.changes == N + APPLY_APPS, ("the plan should hold %d creates and %d app lists, has %d changes")
    :format(N, APPLY_APPS, #plan.changes))
  m:lockout(BUDGET, WINDOW)   -- a fresh budget (the counters are cleared)
  local nreq = N + 2 * APPLY_APPS
  local fl = floor_s(nreq, APPLY_CONC)
  local opts = { deadline = env_num("ST_TIMEOUT", 3 * fl + 60) }
  local pacing
  if cfg == "explicit" then pacing = { requests = BUDGET, per = WINDOW }
  elseif cfg == "default" or cfg == "off" then pacing = cfg
  else error("ST_CONFIGS: explicit, default or off, got " .. cfg) end
  -- the client's own account of its waits (on_log): pacing waits and retries
  local logs = { paced = 0, retries = 0, other = 0 }
  opts.on_log = function(_, msg)
    if msg:find("^pacing: waiting") then logs.paced = logs.paced + 1
    elseif msg:find("; retry %d+ of %d+ in") then
      logs.retries = logs.retries + 1
      logs.first_retry = logs.first_retry or msg
    else
      logs.other = logs.other + 1
      logs.first_other = logs.first_other or msg
    end
  end
  local c = client(m, opts, pacing)
  local _, n0 = log_since(m, 0)
  local t0 = socket.gettime()
  local report, err = c:apply(plan, CONC and { concurrency = CONC } or nil)
  local t1 = socket.gettime()
  c:close()
  local reqs = log_since(m, n0)
  local r429 = 0
  for _, q in ipairs(reqs) do
    if q.status == 429 then r429 = r429 + 1 end
  end
  local live = m:state()
  local count, names, dups = 0, {}, 0
  for _, p in ipairs(live) do
    if p._kind == "reusable" then
      count = count + 1
      if names[p.name] then dups = dups + 1 end
      names[p.name] = true
    end
  end
  local linked = 0
  for _, a in ipairs(APPLY_APPS > 0 and m:apps() or {}) do
    if #(a.links or {}) == NLINKS then linked = linked + 1 end
  end
  m:lockout(false)
  local failed = report and report.failed or N
  local skipped = report and report.skipped or 0
  local wall = t1 - t0
  local ratio = wall / fl
  local stored_ok = count == N and dups == 0 and linked == APPLY_APPS
  local met = ratio <= 1.05 and r429 == 0 and failed == 0 and skipped == 0 and stored_ok
  if cfg == "off" then met = failed == 0 and skipped == 0 and stored_ok end
  if not met then misses = misses + 1 end
  local label = ({ explicit = "explicit rate_limit", default = "default pacing + header",
                   off = "rate_limit = false" })[cfg]
  print(("| %-24s | %8.3f | %8.3f | %-22s | %4d | %6d | %7d | %8d | %6d | %4d |"):format(
    label, wall, fl, ("%.3fx %s"):format(ratio, cfg == "off" and "[info]" or (met and "ok" or "MISS")),
    r429, failed, skipped, #reqs, count, dups))
  if err then print("  apply error: " .. tostring(err)) end
  if APPLY_APPS > 0 then
    print(("  %s: %d of %d apps hold their %d links afterwards"):format(cfg, linked, APPLY_APPS, NLINKS))
  end
  return { cfg = cfg, reqs = reqs, t0 = t0, wall = wall, logs = logs }
end

-- Where an apply's time went: the requests per window of the mock's
-- budget (windows counted from the first request, as the mock does), and
-- the longest gaps between consecutive requests.
local function timeline(run)
  local reqs = run.reqs
  if #reqs == 0 then return end
  local rows, ws, used, w429 = {}, nil, 0, 0
  local function flush(last)
    rows[#rows + 1] = ("[%.1f s: %d counted, %d x 429, last at +%.2f s]")
      :format(ws - reqs[1].time, used, w429, last - ws)
  end
  local prev
  for _, q in ipairs(reqs) do
    if ws == nil or q.time - ws >= WINDOW then
      if ws then flush(prev) end
      ws, used, w429 = q.time, 0, 0
    end
    if q.status == 429 then w429 = w429 + 1 else used = used + 1 end
    prev = q.time
  end
  flush(prev)
  print("  " .. run.cfg .. " windows (from each window's first request): " .. table.concat(rows, " "))
  local gaps = {}
  for i = 2, #reqs do
    gaps[#gaps + 1] = { d = reqs[i].time - reqs[i - 1].time, at = reqs[i - 1].time - reqs[1].time }
  end
  table.sort(gaps, function(a, b) return a.d > b.d end)
  local g = {}
  for i = 1, math.min(#gaps, 10) do g[i] = ("%.2f s at +%.1f"):format(gaps[i].d, gaps[i].at) end
  print("  " .. run.cfg .. " longest gaps between requests: " .. table.concat(g, ", "))
  print(("  %s: first request %.3f s after apply began, last %.3f s before it returned"):format(
    run.cfg, reqs[1].time - run.t0, run.t0 + run.wall - reqs[#reqs].time))
  -- around the first 429s: the requests just before each (arrival times
  -- relative to the window's first request, and their status)
  local shown, ws2 = 0, nil
  for i, q in ipairs(reqs) do
    if ws2 == nil or q.time - ws2 >= WINDOW then ws2 = q.time end
    if q.status == 429 and (i == 1 or reqs[i - 1].status ~= 429) and shown < 2 then
      shown = shown + 1
      local parts = {}
      for j = math.max(1, i - 6), math.min(#reqs, i + 3) do
        parts[#parts + 1] = ("+%.2f %d"):format(reqs[j].time - ws2, reqs[j].status or 0)
      end
      print(("  %s: requests around a 429 (arrival after the window's first request, status): %s")
        :format(run.cfg, table.concat(parts, ", ")))
    end
  end
  local l = run.logs
  print(("  %s: the client logged %d pacing waits (one line per stretch of waiting), %d retries%s%s"):format(
    run.cfg, l.paced, l.retries, l.first_retry and ("; first: " .. l.first_retry) or "",
    l.other > 0 and ("; %d other lines, first: %s"):format(l.other, l.first_other) or ""))
end

-- ---- main ------------------------------------------------------------------------

local m = mockctl.start{ token = TOKEN }
local ok, perr = pcall(function()
  if #PLANS > 0 then
    print(("bench-state plan: %d reusable policies, %d apps (%d links or %d legacy policies each), "
      .. "mock latency %.3f s per answer, per_page %d (paged: capped at %d)"):format(
      NPOL, NAPPS, NLINKS, NLEGACY, LATENCY, READ_PER_PAGE, CAP))
    print("| state    |  reqs | pages | GETs | lists | other |  want | requests [target]    |  wall s |  cpu s "
      .. "| changes |")
    print("|----------|-------|-------|------|-------|-------|-------|----------------------|---------|--------"
      .. "|---------|")
    for _, mode in ipairs(PLANS) do plan_row(m, mode) end
    print("target: requests = list pages + apps (+ one policy list per legacy app); the plan of a state equal "
      .. "to the live one has 0 changes.")
  end
  if #CONFIGS > 0 then
    print(("bench-state apply: %d creates of reusable policies%s; mock lockout %d requests per %g s "
      .. "(Cloudflare's 1200 per 300 s, scaled), %.3f s per answer; apply concurrency %d"):format(
      N, APPLY_APPS > 0 and (" and %d apps' lists (%d of them each)"):format(APPLY_APPS, NLINKS) or "",
      BUDGET, WINDOW, LATENCY, APPLY_CONC))
    print("| run                      |   wall s |  floor s | ratio [<=1.05x]        | 429s | failed | skipped "
      .. "| requests | stored | dups |")
    print("|--------------------------|----------|----------|------------------------|------|--------|---------"
      .. "|----------|--------|------|")
    local runs = {}
    for _, cfg in ipairs(CONFIGS) do runs[#runs + 1] = apply_row(m, cfg) end
    local nreq = N + 2 * APPLY_APPS
    print(("floor for %d requests: %d full windows x %g s + the last window's %d requests at %.3f s, %d at a time.")
      :format(nreq, (nreq - 1) // BUDGET, WINDOW, nreq - ((nreq - 1) // BUDGET) * BUDGET, LATENCY, APPLY_CONC))
    print("targets (issue 12): apply <= 1.05x the floor, 0 429s, 0 failures (failed, skipped, missing or "
      .. "duplicated policies).")
    for _, run in ipairs(runs) do timeline(run) end
  end
end)
m:stop()
if not ok then
  io.stderr:write("bench-state: ", tostring(perr), "\n")
  os.exit(2)
end
print(("bench-state: %d target%s missed."):format(misses, misses == 1 and "" or "s"))
os.exit(misses == 0 and 0 or 1)
