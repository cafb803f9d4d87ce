-- cfaccess.evaluate against its own recorded answers: a fixed-seed
-- generator makes a few hundred policy sets (every rule type, nested
-- groups, lists, all four decisions, strict service tokens) and several
-- requests each (inputs left out, no user, IPv6, invalid fields), and
-- every result, in full (allowed, status, decided_by, steps, reason,
-- tostring and the whole trace), must hash to the line recorded in
-- tests/evaluate_golden.txt. The file was written by the evaluator before
-- its fast paths (issue 15), so a fast path that answers differently from
-- the general one, anywhere in the result, fails here with the case.
--
-- The same cases also check that the compiled evaluator, the one-call
-- function and a trace read late (after later requests) agree; and after
-- a caller changes its tables in place, a one-call evaluation answers as
-- a fresh compile while an evaluator built before goes on as before.
--
-- A deliberate change of behaviour rewrites the file:
--   CFACCESS_GOLDEN_WRITE=1 sh tests/run.sh tests/evaluate_golden_spec.lua
-- and the diff of tests/evaluate_golden.txt shows which cases moved.
local cfaccess = require("cfaccess")
local core = require("cfaccess.core")
local r = cfaccess.rules

local ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."
local GOLDEN = ROOT .. "/tests/evaluate_golden.txt"

-- A generator of our own with a fixed seed: the same cases on every run
-- and every Lua build (math.random's sequence is not promised).
local state = 20261201
local function rnd(n)
  state = (state * 1103515245 + 12345) % 2147483648
  return (state >> 8) % n + 1
end
local function pick(t) return t[rnd(#t)] end

local OKTA, AZURE, GH, SAML, OIDC, GOOGLE = "okta-1", "azure-1", "gh-1", "saml-1", "oidc-1", "google-1"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"

local POOL = {
  r.email("alice@example.com"), r.email("Bob@Example.com"), r.email_list("emails"),
  r.email_domain("example.com"), r.email_domain("example.org"), r.everyone(),
  r.ip("203.0.113.0/24"), r.ip("2001:db8::/32"), r.ip("198.51.100.7"), r.ip_list("ips"),
  r.certificate(), r.common_name("dev1.example.com"),
  r.group("staff"), r.group("eu"), r.group("eu_staff"), r.group("outer"),
  r.azure_ad("az-group-1", AZURE), r.github_org("acme", GH), r.github_org("acme", GH, "infra"),
  r.gsuite("ENG@example.com", GOOGLE), r.okta("sre", OKTA), r.okta("finance", OKTA),
  r.saml("department", "ops", SAML), r.oidc("groups", "admins", OIDC),
  r.auth_context("ctx-1", "c1", AZURE), r.login_method(OKTA), r.login_method(AZURE),
  r.auth_method("mfa"), r.auth_method("hwk"), r.service_token("tok-1"), r.any_valid_service_token(),
  r.external_evaluation("https://ext.example/eval", "https://ext.example/keys"),
  r.geo("DE"), r.geo("KP"), r.geo("US"), r.device_posture("warp"), r.device_posture("disk"),
  r.linked_app_token("app-1"), r.user_risk_score{ "high" }, r.user_risk_score{ "low", "medium" },
  r.cloudflare_account_member(), r.cloudflare_account_member("0123456789abcdef0123456789abcdef"),
}
-- by what each decision may hold (the schema says which rules are identity
-- rules; service-token rules belong to Service Auth only, linked-app
-- tokens to Service Auth and Bypass)
local NON_IDENTITY, SERVICE, IDENTITY_OK = {}, {}, {}
for _, rule in ipairs(POOL) do
  local key = next(rule)
  local token = key == "service_token" or key == "any_valid_service_token"
  local linked = key == "linked_app_token"   -- Service Auth or Bypass only
  if not core.schema.rules[key].identity then
    SERVICE[#SERVICE + 1] = rule
    if not token then NON_IDENTITY[#NON_IDENTITY + 1] = rule end
  end
  if not token and not linked then IDENTITY_OK[#IDENTITY_OK + 1] = rule end
end
local POOLS = { non_identity = SERVICE, bypass = NON_IDENTITY, allow = IDENTITY_OK, deny = IDENTITY_OK }
local DECISIONS = { "allow", "deny", "allow", "deny", "allow", "allow", "deny", "non_identity", "bypass" }

local OPTS = {
  groups = {
    staff = { name = "staff", include = { r.email_domain("example.com") } },
    eu = { name = "eu", include = { r.geo("DE"), r.geo("FR") } },
    eu_staff = { name = "eu staff", include = { r.group("staff") }, require = { r.group("eu"), r.auth_method("mfa") } },
    outer = { name = "outer", include = { r.group("eu_staff"), r.okta("sre", OKTA) },
              exclude = { r.email("mallory@example.com") } },
    loop_a = { name = "loop a", include = { r.group("loop_b") } },
    loop_b = { name = "loop b", include = { r.geo("DE") }, require = { r.group("loop_a") } },
  },
  lists = { emails = { "Carol@example.com", "mallory@example.com" },
            ips = { "198.51.100.0/24", "2001:db8:abcd::/48", "192.0.2.9" },
            badips = { "10.0.0.0/8", "10.0.0.300", 7, "::ffff:1.2.3.4/64" } },
  account_id = ACCT,
}

local function rules(pool, max)
  local t = {}
  for i = 1, rnd(max) do t[i] = pick(pool) end
  return t
end

local function policies(n)
  local list, used, with_prec = {}, {}, rnd(5) > 1
  for i = 1, n do
    local d = pick(DECISIONS)
    local pool = POOLS[d]
    local p = { name = "p" .. i, decision = d, include = rules(pool, 3) }
    if rnd(3) == 1 then p.require = rules(pool, 2) end
    if rnd(3) == 1 then p.exclude = rules(pool, 2) end
    if d == "allow" and rnd(4) == 1 then
      p.approval_required, p.purpose_justification_required = true, rnd(2) == 1
    end
    if with_prec then
      local prec = rnd(200)
      while used[prec] do prec = rnd(200) end
      used[prec], p.precedence = true, prec
    end
    list[i] = p
  end
  return list
end

-- Invalid sets: one policy spoilt in a way only the compile step sees
-- (the error, with every problem's path, is the answer).
local SPOIL = {
  function(p) p.include[#p.include + 1] = r.group("nosuch") end,
  function(p) p.include[#p.include + 1] = r.email_list("nolist") end,
  function(p) p.require = { r.ip_list("badips") } end,
  function(p) p.exclude = { r.group("loop_a") } end,
  function(p) p.decision, p.include = "bypass", { r.email("alice@example.com"), r.geo("DE") } end,
  function(p) p.decision, p.include = "allow", { r.any_valid_service_token() } end,
  function(p) p.precedence = nil end,
  function(p) p.include = { r.geo("de") } end,
}

local function spoil(list)
  local p = list[rnd(#list)]
  pick(SPOIL)(p)
  if rnd(3) == 1 then pick(SPOIL)(list[rnd(#list)]) end
  if rnd(6) == 1 and list[2] and list[1].precedence then list[2].precedence = list[1].precedence end
end

local function user()
  local u = { email = pick{ "alice@example.com", "bob@example.com", "carol@EXAMPLE.com", "eve@example.org",
                            "mallory@example.com" },
              login_method = pick{ OKTA, AZURE, GH, SAML, OIDC, GOOGLE },
              amr = pick{ { "pwd", "mfa" }, { "pwd" }, { "hwk" } }, risk = pick{ "low", "medium", "high" },
              accounts = pick{ { ACCT }, {} },
              idp = { [OKTA] = { groups = pick{ { "sre" }, { "finance", "ops" }, {} } },
                      [AZURE] = { groups = { "az-group-1" }, auth_contexts = pick{ { "c1" }, {} } },
                      [GH] = { github = { { org = "Acme", teams = pick{ { "infra" }, { "web" } } } } },
                      [SAML] = { saml = { department = pick{ { "devs", "ops" }, "ops", "sales" } } },
                      [OIDC] = { oidc = { groups = pick{ "admins", { "users" } } } },
                      [GOOGLE] = { groups = { "eng@example.com" } } } }
  -- leave some of it out: unknown inputs
  for _, k in ipairs{ "email", "login_method", "amr", "risk", "accounts", "idp" } do
    if rnd(8) == 1 then u[k] = nil end
  end
  if u.idp and rnd(4) == 1 then u.idp[u.login_method or OKTA] = nil end
  return u
end

local function request()
  local q = { ip = pick{ "203.0.113.7", "198.51.100.7", "2001:db8::9", "2001:db8:abcd::1", "192.0.2.9",
                         "::ffff:203.0.113.8", "2001:DB8:0:0:0:0:0:1", "::1", "::ffff:c000:209",
                         "2001:db8::203.0.113.1", "198.51.100.255", "0.0.0.0" },
              country = pick{ "DE", "FR", "KP", "US", "de" }, service_token = pick{ false, false, "tok-1", "tok-2" },
              certificate = pick{ false, true, { common_name = "dev1.example.com" }, { common_name = "x" } },
              linked_app = pick{ false, "app-1" }, posture = { warp = rnd(2) == 1 },
              external = { ["https://ext.example/eval"] = rnd(2) == 1 }, user = user() }
  for _, k in ipairs{ "ip", "country", "service_token", "certificate", "linked_app", "posture", "external" } do
    if rnd(9) == 1 then q[k] = nil end
  end
  local u = rnd(6)
  if u == 1 then q.user = nil elseif u == 2 then q.user = false end
  -- invalid requests: the error (its first problem and the count) is the answer
  local bad = rnd(80)
  if bad == 1 then q.ip = pick{ "300.1.2.3", "2001:db8:::1", "1.2.3.04", "::ffff:1.2.3", "1:2:3:4:5:6:7:8:9" }
  elseif bad == 2 then q.colour = "blue"
  elseif bad == 3 then q.posture = { warp = "yes", [2] = 1 }
  elseif bad == 4 and type(q.user) == "table" then
    q.user.idp = { [OKTA] = { groups = { "sre", 7 }, colour = 1 },
                   [GH] = { github = { { org = "acme", teams = { 1 } }, "x" } },
                   [SAML] = { saml = { department = { 1 }, team = "a" } }, [OIDC] = "no" }
  elseif bad == 5 and type(q.user) == "table" then
    q.user.risk, q.user.amr, q.user.shoe = "extreme", "mfa", 42
  end
  return q
end

-- The result in full, as text: every field, in a fixed order.
local function text(res, err)
  if not res then
    -- every problem; sorted, as the checks walk some tables with pairs,
    -- whose order (and so which problem is first) may differ between runs
    local probs = {}
    for i, p in ipairs(err.problems or {}) do probs[i] = tostring(p.path) .. ": " .. tostring(p.message) end
    table.sort(probs)
    local msg = #probs > 1 and tostring(err):match("%(and %d+ more problems?%)$") or tostring(err)
    return table.concat({ "error", tostring(err.kind), msg, table.concat(probs, " / ") }, " ")
  end
  local out = {}
  local function add(...) for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end end
  add(res.allowed, res.status, res.reason, tostring(res), table.concat(res.steps, ","))
  local d = res.decided_by
  if d then add(d.index, d.name, d.id, d.decision, d.precedence, d.phase) end
  for _, e in ipairs(res.trace) do
    add("|", e.index, e.name, e.id, e.decision, e.precedence, e.phase, e.status)
    for _, rl in ipairs(e.rules) do add(rl.path, rl.type, rl.result, rl.needs) end
  end
  return table.concat(out, " ")
end

-- FNV-1a, 64 bits (Lua integers wrap), as 16 hex digits.
local function digest(s)
  local h = -3750763034362895579   -- 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 1099511628211 end
  return ("%016x"):format(h)
end

local SETS, REQUESTS = 250, 6

-- Every case: { set, request index, text of the compiled evaluator's answer
-- (traces read after the set's last request), one-call text, early-trace text }.
local function run_all()
  local cases, statuses = {}, {}
  for s = 1, SETS do
    local pols = policies(rnd(12))
    if rnd(10) == 1 then spoil(pols) end
    local opts = OPTS
    if rnd(8) == 1 then
      opts = { strict_service_tokens = true }
      for k, v in pairs(OPTS) do opts[k] = v end
    end
    local ev, everr = cfaccess.evaluator(pols, opts)
    local reqs, results = {}, {}
    for k = 1, REQUESTS do
      reqs[k] = request()
      if ev then results[k] = { ev:evaluate(reqs[k]) } end
    end
    for k = 1, REQUESTS do
      local one = text(cfaccess.evaluate(pols, reqs[k], opts))
      local late = ev and text(results[k][1], results[k][2]) or text(nil, everr)
      local early = ev and text(ev:evaluate(reqs[k])) or one
      cases[#cases + 1] = { s, k, late, one, early }
      statuses[late:match("^(%S+ %S+)")] = true
    end
  end
  return cases, statuses
end

describe("cfaccess.evaluate against its recorded answers", function()
  local cases, statuses = run_all()

  it("reaches every outcome (or the comparison proves little)", function()
    for _, s in ipairs{ "true approved", "false blocked", "false login_required", "nil indeterminate" } do
      assert.is_true(statuses[s] == true, "no case ended " .. s)
    end
    assert.is_true(statuses["error invalid"] == true, "no case was invalid")
  end)

  it("the compiled evaluator, the one-call function and a trace read late agree", function()
    for _, c in ipairs(cases) do
      local where = ("set %d request %d"):format(c[1], c[2])
      assert.are.equal(c[4], c[3], where .. " (one call)")
      assert.are.equal(c[5], c[3], where .. " (trace read at once)")
    end
  end)

  it("every answer is the recorded one (" .. SETS * REQUESTS .. " cases)", function()
    if os.getenv("CFACCESS_GOLDEN_WRITE") == "1" then
      local f = assert(io.open(GOLDEN, "w"))
      for _, c in ipairs(cases) do f:write(("%d %d %s\n"):format(c[1], c[2], digest(c[3]))) end
      f:close()
    end
    local want = {}
    for line in io.lines(GOLDEN) do want[#want + 1] = line end
    assert.are.equal(#cases, #want, "tests/evaluate_golden.txt has another number of cases")
    for i, c in ipairs(cases) do
      local got = ("%d %d %s"):format(c[1], c[2], digest(c[3]))
      assert.are.equal(want[i], got, "the answer was: " .. c[3])
    end
  end)
end)

-- A caller that changes its tables in place between calls must get what
-- a fresh compile of the changed tables answers (nothing of an earlier
-- call may linger: a guard for any reuse of compiled sets), and an
-- evaluator built before the change must go on answering as before (it
-- keeps nothing of the caller's that the caller could change under it).
describe("cfaccess.evaluate after the caller changes its tables", function()
  local function deep(v)
    if type(v) ~= "table" then return v end
    local c = {}
    for k, x in pairs(v) do c[k] = deep(x) end
    return c
  end
  local CHANGES = {
    function(pols) local p = pick(pols); p.include[rnd(#p.include)] = pick(POOLS[p.decision]) end,
    function(pols) local p = pick(pols); p.require = rules(POOLS[p.decision], 2) end,
    function(pols) local p = pick(pols); p.exclude = nil; p.require = nil end,
    function(pols) local p = pick(pols); if p.precedence then p.precedence = p.precedence + 0.0 end end,
    function(pols) local p = pick(pols); if p.precedence then p.precedence = 1000 + rnd(100) end end,
    function(pols) local p = pick(pols); p.name = p.name .. "'" end,
    function(pols) local p = pick(pols); p.decision = p.decision == "allow" and "deny" or p.decision end,
    function(pols) pols[#pols + 1] = { name = "extra", decision = "allow", include = { r.everyone() },
                                       precedence = pols[1].precedence and 999 or nil } end,
    function(pols) if #pols > 1 then pols[#pols] = nil end end,
    function(_, opts) opts.groups.staff.include[1] = r.email_domain("example.org") end,
    function(_, opts) opts.groups.eu.include = { r.geo("KP") } end,
    function(_, opts) opts.lists.emails[#opts.lists.emails + 1] = "alice@example.com" end,
    function(_, opts) opts.lists.ips[1] = "203.0.113.0/24" end,
    function(_, opts) opts.strict_service_tokens = not opts.strict_service_tokens end,
    function(_, opts) opts.account_id = "0123456789abcdef0123456789abcdef" end,
    function(pols) local p = pick(pols); p.include[1] = r.user_risk_score{ "low" } end,
    function(pols)   -- a rule's own list, changed in place
      for _, p in ipairs(pols) do
        for _, rule in ipairs(p.include) do
          local levels = rule.user_risk_score and rule.user_risk_score.user_risk_score
          if levels then levels[1] = levels[1] == "high" and "low" or "high"; return end
        end
      end
    end,
  }

  it("answers as a fresh compile of the changed tables, every time", function()
    state = 4242   -- a sequence of its own: the recorded cases above stay as they are
    local changed = 0
    for round = 1, 200 do
      local pols, opts = deep(policies(1 + rnd(8))), deep(OPTS)   -- (the pool's rules stay as they are)
      local q = request()
      local before = text(cfaccess.evaluate(pols, q, opts))
      local old = cfaccess.evaluator(pols, opts)
      assert.are.equal(before, text(cfaccess.evaluate(pols, q, opts)), "round " .. round .. " (again)")
      local change = rnd(#CHANGES)
      CHANGES[change](pols, opts)
      local ev, everr = cfaccess.evaluator(pols, opts)
      local fresh = ev and text(ev:evaluate(q)) or text(nil, everr)
      local got = text(cfaccess.evaluate(pols, q, opts))
      assert.are.equal(fresh, got, ("round %d, change %d"):format(round, change))
      if got ~= before then changed = changed + 1 end
      if old then
        assert.are.equal(before, text(old:evaluate(q)), ("round %d, change %d (old evaluator)"):format(round, change))
      end
      -- the same content in new tables: the same answer
      assert.are.equal(got, text(cfaccess.evaluate(deep(pols), q, deep(opts))), "round " .. round .. " (copy)")
    end
    assert.is_true(changed > 40, "only " .. changed .. " changes changed the answer")
  end)

  it("an evaluator keeps nothing the caller can change under it (a rule's list of levels)", function()
    local pols = { { name = "risky", decision = "allow", include = { r.user_risk_score{ "high" } } } }
    local q = { user = { email = "a@example.com", risk = "low" } }
    local ev = assert(cfaccess.evaluator(pols, {}))
    assert.are.equal("blocked", ev:evaluate(q).status)
    pols[1].include[1].user_risk_score.user_risk_score[1] = "low"
    assert.are.equal("blocked", ev:evaluate(q).status)
    assert.are.equal("approved", assert(cfaccess.evaluate(pols, q)).status)
  end)
end)

