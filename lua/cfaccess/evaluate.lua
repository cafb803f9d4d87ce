--- cfaccess.evaluate: would this request get in? Offline evaluation of an
-- application's Access policies (API.md section 10), with the model of
-- shared/reference/EVALUATION.md:
--
-- * policies are checked first (cfaccess.validate, then duplicate
--   precedence, unknown group or list ids, group cycles: `invalid`);
-- * phase 1: Service Auth (`non_identity`) and Bypass policies in
--   precedence order, the first match admits; phase 2: Allow and Block
--   (`deny`) in precedence order, the first match decides; no match:
--   blocked (deny by default); phase 2 needs a logged-in user;
-- * a policy matches when any include, every require and no exclude rule
--   matches; a rule whose input the request leaves out is "unknown", and
--   the result is indeterminate only when an unknown could change which
--   policy decides.
--
-- Rule values are F < U < L < T (matchers.lua): false, unknown (an input
-- is missing), "a login would tell" (phase 2 without a user: some user
-- could make it true), true. OR is max, AND is min, NOT swaps F and T and
-- keeps U and L. So a policy that only a login can settle is L, and one
-- that depends on a missing input is U.
-- @module cfaccess.evaluate
local core = require("cfaccess.core")
local mt = require("cfaccess.eval.matchers")
local compile = require("cfaccess.eval.compile")

local format, type, ipairs, tostring, error, select = string.format, type, ipairs, tostring, error,
  select
local concat, find = table.concat, string.find
local F, U, L, T = mt.F, mt.U, mt.L, mt.T
local NOT = { [F] = T, [U] = U, [L] = L, [T] = F }
local SHOW = { [F] = false, [U] = "unknown", [L] = "unknown", [T] = true }
local STATUS = { [F] = "no_match", [U] = "unknown", [L] = "unknown", [T] = "match" }

local M = {}

-- Errors share the core's metatable, so they print and compare as every
-- other cfaccess error (the core makes them; Lua has no constructor).
local ERR_MT = getmetatable(select(2, core.validate({})))

-- One line: %q writes a newline as a backslash and a newline; names and
-- ids from policies and requests may hold one.
local function oneline(s)
  if not find(s, "[\r\n]") then return s end   -- the usual case: nothing to replace
  return (s:gsub("\\\n", "\\n"):gsub("[\r\n]", function(c) return c == "\n" and "\\n" or "\\r" end))
end
M.oneline = oneline

local function invalid(problems)
  local first = problems[1]
  local msg = format("invalid evaluation input: %s%s%s", first.path,
    first.path ~= "" and ": " or "", first.message)
  if #problems > 1 then
    msg = msg .. format(" (and %d more problem%s)", #problems - 1, #problems == 2 and "" or "s")
  end
  return setmetatable({ kind = "invalid", message = oneline(msg), problems = problems }, ERR_MT)
end
M.invalid = invalid

-- ---------------------------------------------------------------------------
-- One body (a policy's or a group's): value, and for U/L what is missing
-- and where. Evaluation stops as soon as a section's value is settled (a
-- true include or exclude, a false require); the trace runs every rule
-- again when it is read (build_trace), so the decision costs no
-- allocation per rule.

local function test(r, q)
  if r.identity and q.user == nil then return q.nouser, "user" end   -- see run
  return r.test(q)
end

-- A section: OR (include, exclude: settle = T, start = F) or AND (require:
-- settle = F, start = T). The first rule of value `settle` decides; else
-- the start value, or from the unknown (U) and login-dependent (L) rules
-- the larger for OR and the smaller for AND, with the first rule of that
-- value and what it needs. (One loop for both, so OR and AND cannot drift.)
-- `from`: the rules before it are known to give `start`.
local function section_from(list, q, settle, start, from)
  local acc, un, up, ln, lp = start
  local larger = settle == T
  for i = from, #list do
    local r = list[i]
    local v, needs
    if r.identity and q.user == nil then v, needs = q.nouser, "user" else v, needs = r.test(q) end
    if v == settle then return settle end
    if v ~= start then
      if (v > acc) == larger then acc = v end
      if v == U then
        if not up then un, up = needs, r.path end
      elseif not lp then
        ln, lp = needs, r.path
      end
    end
  end
  if acc == start then return start end
  if acc == U then return U, un, up end
  return L, ln, lp
end

-- The same, first through the rules' tests as they are (compile.lua:
-- list.identity says whether one is an identity rule) while they give
-- `start`, the usual case; the first other value settles the section or
-- hands over to section_from at that rule, which runs it again (a rule is
-- a pure function of the request) to learn what it needs.
local function section(list, q, settle, start)
  if q.user == nil and list.identity then return section_from(list, q, settle, start, 1) end
  for i = 1, #list do
    local v = list[i].test(q)
    if v ~= start then
      if v == settle then return settle end
      return section_from(list, q, settle, start, i)
    end
  end
  return start
end

-- The body once its include is known to be `inc` (not F): require and
-- exclude, and for U/L the first section that gives the value.
local function body_rest(b, q, inc, ineeds, ipath)
  local req, rneeds, rpath = T, nil, nil   -- an empty require holds
  if b.require[1] then
    req, rneeds, rpath = section(b.require, q, F, T)
    if req == F then return F end
  end
  local exc, eneeds, epath = T, nil, nil   -- NOT of the exclude OR; empty: excludes nobody
  if b.exclude[1] then
    local x
    x, eneeds, epath = section(b.exclude, q, T, F)
    if x == T then return F end
    exc = NOT[x]
  end
  local v = inc
  if req < v then v = req end
  if exc < v then v = exc end
  if v == U or v == L then
    if inc == v then return v, ineeds, ipath end
    if req == v then return v, rneeds, rpath end
    return v, eneeds, epath
  end
  return v
end

-- Most bodies a request meets match nothing: their include rules are all
-- F, which the loop here finds without a call to section.
local function eval_body(b, q)
  local inc = b.include
  if q.user ~= nil or not inc.identity then
    for i = 1, #inc do
      local v = inc[i].test(q)
      if v ~= F then
        if v == T then return body_rest(b, q, T) end
        local x, needs, path = section_from(inc, q, T, F, i)
        if x == T then return body_rest(b, q, T) end
        return body_rest(b, q, x, needs, path)
      end
    end
    return F
  end
  local x, needs, path = section_from(inc, q, T, F, 1)
  if x == F then return F end
  return body_rest(b, q, x, needs, path)
end
M.eval_body = eval_body

-- ---------------------------------------------------------------------------
-- The request: checked, and read into the view the matchers use (eval/request.lua).

local view = require("cfaccess.eval.request").view

-- ---------------------------------------------------------------------------
-- Results

-- The trace, built the first time `result.trace` is read (most callers
-- never read it, and building it costs more than deciding): every rule of
-- every policy the decision looked at is run again, in full, on the same
-- request view, with the same "no login" answer per phase. RUNS maps a
-- result to its request view, which holds the compiled set (q.set) and
-- how many policies of each phase the decision looked at (q[1], q[2]).
local RUNS = setmetatable({}, { __mode = "k" })

local function build_trace(set, q)
  local trace = {}
  local n1 = #set.phase1
  for i, cp in ipairs(set.order) do
    local e = { index = cp.index, name = cp.name, id = cp.id, decision = cp.decision,
                precedence = cp.precedence, phase = cp.phase, status = "not_evaluated", rules = {} }
    if (i <= n1 and i <= q[1]) or (i > n1 and i - n1 <= q[2]) then
      q.nouser = cp.phase == 1 and F or L
      local vals = {}
      for _, sec in ipairs{ "include", "require", "exclude" } do
        local acc = sec == "require" and T or F
        for _, r in ipairs(cp.body[sec]) do
          local v, needs = test(r, q)
          if sec == "require" then
            if v < acc then acc = v end
          elseif v > acc then
            acc = v
          end
          e.rules[#e.rules + 1] = { path = r.path, type = r.key, result = SHOW[v],
                                    needs = (v == U or v == L) and needs or nil }
        end
        vals[sec] = acc
      end
      local v = vals.include
      if vals.require < v then v = vals.require end
      if NOT[vals.exclude] < v then v = NOT[vals.exclude] end
      e.status = STATUS[v]
    end
    trace[i] = e
  end
  return trace
end

local RESULT_MT = {
  __name = "cfaccess.evaluation",
  __tostring = function(r) return r.reason end,
  __index = function(r, k)
    if k ~= "trace" then return nil end
    local q = RUNS[r]
    if not q then return nil end
    local t = build_trace(q.set, q)
    rawset(r, "trace", t)
    RUNS[r] = nil
    return t
  end,
}

local function where(cp)
  if cp.precedence then return format("%s, precedence %d", cp.decision, cp.precedence) end
  return format("%s, list position %d", cp.decision, cp.index)
end

-- The reason a result decided by policy cp gives ("decided": approved or
-- blocked by it, "login": it needs a login), made the first time and
-- kept on cp: it depends on the compiled policy alone.
local REASON = {
  decided = function(cp)
    local allow = cp.decision == "allow"
    if cp.phase == 1 then return format("approved by %q (%s)", tostring(cp.name), where(cp)) end
    local reason = format("%s by %q (%s)", allow and "approved" or "blocked", tostring(cp.name), where(cp))
    if allow and #cp.steps > 0 then reason = reason .. "; steps: " .. concat(cp.steps, ", ") end
    return reason
  end,
  login = function(cp)
    return format("login_required: %q (%s) needs a logged-in user, and the request has none",
      tostring(cp.name), where(cp))
  end,
}
local function reason(cp, kind)
  local memo = cp.reasons
  if not memo then
    memo = {}
    cp.reasons = memo
  end
  local r = memo[kind]
  if not r then
    r = oneline(REASON[kind](cp))
    memo[kind] = r
  end
  return r
end

local function decided(cp)
  return { index = cp.index, name = cp.name, id = cp.id, decision = cp.decision,
           precedence = cp.precedence, phase = cp.phase }
end

-- Walk phase `ph` (1 or 2): returns the first policy that is T (or, with
-- `stop_l`, T or L), and the first undecided one before it:
-- { cp =, needs =, path = }. q[ph] counts the policies looked at.
--
-- With a user, or with no identity rule in any include of the phase
-- (list.identity), every include rule runs as it is, so the walk can go
-- through the include tests of the whole phase in one run (compile.lua: list.tests,
-- list.owner, list.first): a policy whose include rules are all F is F
-- and is passed over with no call of its own; the first include rule that
-- is not F has its policy evaluated in full (eval_body, which runs the
-- include again from its first rule), and the run goes on after it.
local function walk(list, q, ph, stop_l)
  local pending
  if q.user ~= nil or not list.identity then
    local tests, owner, first, fields, wants = list.tests, list.owner, list.first, list.fields, list.wants
    local j, n = 1, #tests
    while j <= n do
      local v = q[fields[j]]   -- (q[nil] is nil) a known value not the rule's: F, no call
      if (v ~= nil and v ~= wants[j]) or tests[j](q) == F then
        j = j + 1
      else
        local k = owner[j]
        local cp = list[k]
        local pv, needs, path = eval_body(cp.body, q)
        if pv == T or (stop_l and pv == L) then
          q[ph] = k
          return cp, pending
        end
        if pv ~= F and not pending then pending = { cp = cp, needs = needs, path = path } end
        j = first[k + 1]
      end
    end
    q[ph] = #list
    return nil, pending
  end
  for k = 1, #list do
    local cp = list[k]
    local v, needs, path = eval_body(cp.body, q)
    q[ph] = k
    if v == T or (stop_l and v == L) then return cp, pending end
    if v ~= F and not pending then pending = { cp = cp, needs = needs, path = path } end
  end
  return nil, pending
end

local function indeterminate(p)
  return { allowed = nil, status = "indeterminate",
           reason = oneline(format("indeterminate: %s of %q needs %s", p.path, tostring(p.cp.name), p.needs)) }
end

-- The phase-2 outcome (after no phase-1 match).
local function phase2(set, q)
  q.nouser = L
  if q.user == nil then
    local cp, pending = walk(set.phase2, q, 2, true)
    if cp then return { allowed = false, status = "login_required", reason = reason(cp, "login") } end
    if pending then return indeterminate(pending) end
  else
    local cp, pending = walk(set.phase2, q, 2, false)
    if pending then return indeterminate(pending) end
    if cp then
      local allow = cp.decision == "allow"
      local steps = {}
      if allow then
        local from = cp.steps
        for i = 1, #from do steps[i] = from[i] end
      end
      return { allowed = allow, status = allow and "approved" or "blocked", decided_by = decided(cp),
               steps = steps, reason = reason(cp, "decided") }
    end
  end
  return { allowed = false, status = "blocked", reason = "blocked: no policy matched" }
end

-- Every reason is one line already (oneline, or a constant).
local function run(set, request)
  local q, problems = view(request)
  if not q then return nil, invalid(problems) end
  local res
  q.nouser = F   -- phase 1 takes no login: identity rules without a user are false
  local cp, pending = walk(set.phase1, q, 1, false)
  if pending then
    res = indeterminate(pending)
  elseif cp then
    res = { allowed = true, status = "approved", decided_by = decided(cp), steps = {},
            reason = reason(cp, "decided") }
  elseif set.strict and q.service_token then
    res = { allowed = false, status = "blocked",
            reason = "blocked: strict service token authentication, and no Service Auth or "
              .. "Bypass policy matched the request's token" }
  else
    res = phase2(set, q)
    if set.strict and q.service_token == nil and res.status ~= "blocked" then
      -- a token would have been refused outright: the outcome hangs on it
      res = { allowed = nil, status = "indeterminate",
              reason = "indeterminate: strict service token authentication needs service_token" }
    end
  end
  res.steps = res.steps or {}
  setmetatable(res, RESULT_MT)
  q.set = set
  RUNS[res] = q
  return res
end

-- ---------------------------------------------------------------------------
-- Public functions

local function argcheck(cond, n, fname, what, v)
  if not cond then
    error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, what, type(v)), 3)
  end
end

local Evaluator = {}
Evaluator.__index = Evaluator
Evaluator.__name = "cfaccess.evaluator"

--- Evaluate one request against the compiled policies.
-- @tparam table request what Access would know (API.md section 10)
-- @treturn table the result (see `cfaccess.evaluate`), or `nil, err`
function Evaluator:evaluate(request)
  if type(request) ~= "table" then argcheck(false, 1, "evaluate", "table", request) end
  return run(self.set, request)
end

--- Check and compile `policies` once, for evaluating many requests.
-- @tparam table policies an application's policies, each a policy body
-- @tparam[opt] table opts as for `cfaccess.evaluate`
-- @return an evaluator with `:evaluate(request)`, or `nil, err` (`invalid`)
function M.evaluator(policies, opts)
  argcheck(type(policies) == "table", 1, "evaluator", "table", policies)
  argcheck(opts == nil or type(opts) == "table", 2, "evaluator", "table or nil", opts)
  local set, problems, err = compile.compile(policies, opts or {}, eval_body)
  if err then return nil, err end
  if not set then return nil, invalid(problems) end
  return setmetatable({ set = set }, Evaluator)
end

--- Would `request` get into the application whose policies are `policies`?
-- @tparam table policies legacy and reusable policy bodies, by `precedence` or list order
-- @tparam table request the request's attributes; anything left out is unknown
-- @tparam[opt] table opts `groups`, `lists`, `account_id`, `strict_service_tokens`,
-- and for validation `kind` (default "app"), `legacy`, `allow_unknown`
-- @treturn table `{ allowed =, status =, decided_by =, steps =, reason =, trace = }`
-- (`tostring` gives `reason`), or `nil, err`
function M.evaluate(policies, request, opts)
  argcheck(type(policies) == "table", 1, "evaluate", "table", policies)
  argcheck(type(request) == "table", 2, "evaluate", "table", request)
  argcheck(opts == nil or type(opts) == "table", 3, "evaluate", "table or nil", opts)
  local set, problems, err = compile.compile(policies, opts or {}, eval_body)
  if err then return nil, err end
  if not set then return nil, invalid(problems) end
  return run(set, request)
end

--- Export `evaluate` and `evaluator` on the `cfaccess` module and add
-- `client:evaluate(app_id, request [, opts])` (lua/cfaccess/eval/client.lua).
function M.install(cfaccess)
  cfaccess.evaluate, cfaccess.evaluator = M.evaluate, M.evaluator
  require("cfaccess.eval.client").install()
  return cfaccess
end

return M
