--- cfaccess.eval.compile: checks what `cfaccess.evaluate` is given
-- (policies, groups, lists, options) and turns each policy into closures
-- over its rules, once, so that evaluating a request is only running them.
--
-- Every policy is checked with `cfaccess.validate` (the same schema as
-- every other call), then for what the API refuses but the per-policy
-- schema cannot see: a duplicate precedence, an unknown group or list id,
-- a group cycle, identity rules in a Bypass policy, service-token rules
-- outside Service Auth (shared/reference/EVALUATION.md 1.8). Every problem
-- is collected, each with its path: `[2].include[1].group.id`,
-- `groups["g1"].require[1]...`, `lists["l1"][3]`, `opts.account_id`.
-- @module cfaccess.eval.compile
local core = require("cfaccess.core")
local cidr = require("cfaccess.eval.cidr")
local mt = require("cfaccess.eval.matchers")

local format, type, pairs, ipairs, next, tostring = string.format, type, pairs, ipairs, next, tostring
local tointeger, sort, concat = math.tointeger, table.sort, table.concat
local matchers, service_auth_only = mt.matchers, mt.service_auth_only
local F = mt.F

local M = {}

-- The schema's identity flag per rule type (matchers.identity), read once.
local IDENTITY = {}
for _, k in ipairs(core.schema.rule_types) do IDENTITY[k] = mt.identity(k) end

-- Fields a server response carries that no request body takes; they are
-- dropped before validation (id is kept for the trace). The same list as
-- API.md section 7's read-only fields.
local READ_ONLY = { "id", "uid", "created_at", "updated_at", "reusable", "app_count", "account_id" }

local PHASE = { non_identity = 1, bypass = 1, allow = 2, deny = 2 }

local OPTS = { groups = "table", lists = "table", account_id = "string",
               strict_service_tokens = "boolean", kind = "string", legacy = "boolean",
               allow_unknown = "boolean" }

-- The body without read-only fields (a shallow copy only when needed).
local function body_of(p)
  -- the usual case, a body with none of them, in one expression (checked
  -- against READ_ONLY below)
  if p.id == nil and p.uid == nil and p.created_at == nil and p.updated_at == nil and p.reusable == nil
     and p.app_count == nil and p.account_id == nil then
    return p
  end
  local copy
  for i = 1, #READ_ONLY do
    local k = READ_ONLY[i]
    if p[k] ~= nil then
      if not copy then
        copy = {}
        for k2, v in pairs(p) do copy[k2] = v end
      end
      copy[k] = nil
    end
  end
  return copy or p
end
for _, k in ipairs(READ_ONLY) do
  assert(body_of({ [k] = 1 })[k] == nil, "body_of's first check misses the read-only field " .. k)
end

-- Lua-index key text for a table key: groups["abc"].
local function key(s) return format("[%q]", tostring(s)) end

-- Where a body is, for problems: policy i ("[2]") or the group of id s
-- ('groups["g"]'). Bodies are named by i or id and the text is made only
-- for a problem (a one-call evaluate compiles every time).
local function prefix_of(at)
  if type(at) == "number" then return "[" .. at .. "]" end
  return "groups" .. key(at)
end

-- A rule's path within its body, "include[1]" (the trace shows it, and
-- a rule that needs an input names it): made once per section and place.
local RULE_PATHS = { include = {}, require = {}, exclude = {} }
local function rule_path(rel, j)
  local known = RULE_PATHS[rel]
  local p = known[j]
  if not p then
    p = rel .. "[" .. j .. "]"
    if j <= 64 then known[j] = p end
  end
  return p
end

-- Lists with no rules share one (nothing writes to a compiled list).
local NO_RULES = {}

-- A compile run: the problems found so far and the caches.
local Run = {}
Run.__index = Run

function Run:problem(path, fmt, ...)
  self.problems[#self.problems + 1] = { path = path, message = format(fmt, ...) }
end

-- Validate `body` as `kind`, adding its problems under prefix_of(at).
function Run:validate(body, vopts, at)
  local ok, err = core.validate(body, vopts)
  if ok then return true end
  local prefix = prefix_of(at)
  if type(err) ~= "table" or type(err.problems) ~= "table" then
    -- not a problem with the body (e.g. opts.kind unknown): pass it on
    self.fatal = self.fatal or err
    return false
  end
  for _, pr in ipairs(err.problems) do
    local path = pr.path or ""
    if prefix ~= "" and path ~= "" and path:sub(1, 1) ~= "[" then path = "." .. path end
    self.problems[#self.problems + 1] = { path = prefix .. path, message = pr.message }
  end
  return false
end

-- A group body (API.md section 6: kind "group").
function Run:validate_group(g, id)
  local gopts = self.group_vopts
  if not gopts then
    gopts = { kind = "group", legacy = self.opts.legacy, allow_unknown = self.opts.allow_unknown }
    self.group_vopts = gopts
  end
  return self:validate(g, gopts, id)
end

-- The path of the rule being compiled, for its problems:
-- [2].include[1].email (made only for a problem).
function Run:at()
  return prefix_of(self.at_body) .. "." .. self.at_rule .. "." .. self.at_key
end

-- cc.range: a CIDR from a validated ip rule.
function Run:range(s)
  local r, why = cidr.parse_range(s)
  if r then return r end
  self:problem(self:at() .. ".ip", "%q is %s", s, why)
  return { bits = 0, hi = 0, lo = 0, mhi = 0, mlo = 0 }   -- matches nothing
end

-- cc.list: list `id` as a set of lowercased emails or an array of ranges.
function Run:list(id, kind)
  local ck = kind .. "\0" .. id
  local c = self.list_cache[ck]
  if c then return c end
  local lists = self.opts.lists
  local entries = lists and lists[id]
  c = {}
  self.list_cache[ck] = c
  if type(entries) ~= "table" then
    if entries == nil then
      self:problem(self:at() .. ".id", "unknown list %q (not in opts.lists)", id)
    else
      self:problem("lists" .. key(id), "expected a list of entries, got %s", type(entries))
    end
    return c
  end
  for i, e in ipairs(entries) do
    if type(e) ~= "string" then
      self:problem("lists" .. key(id) .. "[" .. i .. "]", "expected a string, got %s", type(e))
    elseif kind == "email" then
      c[e:lower()] = true
    else
      local r, why = cidr.parse_range(e)
      if r then c[#c + 1] = r
      else self:problem("lists" .. key(id) .. "[" .. i .. "]", "%q is %s", e, why) end
    end
  end
  return c
end

-- Compile one rule list (include, require or exclude) into
-- { { path =, key =, test =, identity =, qf =, qw = }, ..., identity =
-- any rule's }, checking decision compatibility. `identity` on the list
-- lets evaluate.lua run the tests as they are when no rule needs a user;
-- qf (or nil: q[nil] is nil) and qw say that the test gives F whenever
-- q[qf] is not nil and not qw (matchers.lua). (No per-list arrays: a one-call
-- evaluate compiles every time, and each table costs.)
function Run:rules(list, at, rel, decision)
  if list == nil or list[1] == nil then return NO_RULES end
  local out, any = {}, nil
  for j = 1, #list do
    local rule = list[j]
    local rkey, inner = next(rule)
    local path = rule_path(rel, j)            -- in the trace: relative to its body
    local ident = IDENTITY[rkey]
    if (decision == "bypass" and ident) or
       (service_auth_only[rkey] and decision and decision ~= "non_identity") then
      local where = prefix_of(at) .. "." .. path   -- in problems: from the top
      if decision == "bypass" and ident then
        self:problem(where, "a bypass policy takes no identity-based rule (rule type %s)", rkey)
      else
        self:problem(where, "rule type %s needs decision \"non_identity\" (Service Auth), got %q",
          rkey, decision)
      end
    end
    -- where the matcher's problems are (Run:at); a group's own rules set
    -- these again, and nothing reads them once a matcher has returned
    self.at_body, self.at_rule, self.at_key = at, path, rkey
    local test, qf, qw = matchers[rkey](inner, self)
    -- identity rules other than group (whose own rules decide) are not
    -- run without a user: the engine answers for them
    local id = ident and rkey ~= "group" or nil
    out[j] = { path = path, key = rkey, test = test, identity = id, qf = qf, qw = qw }
    any = any or id
  end
  out.identity = any
  return out
end

-- The three lists of a validated body; `at` (prefix_of) says where it
-- is, for problem paths.
function Run:body(b, at, decision)
  return { include = self:rules(b.include, at, "include", decision),
           require = self:rules(b.require, at, "require", decision),
           exclude = self:rules(b.exclude, at, "exclude", decision) }
end

-- cc.group: the test of Access group `id` (compiled once; cycles refused),
-- and for a group of one include rule, that rule's field and want
-- (matchers.lua): when that rule is F without a call, so is the group.
-- (Without a user a rule on the user's fields never is: the view has
-- none of them.)
function Run:group(id)
  local done = self.group_tests[id]
  if done then return done, self.group_qf[id], self.group_qw[id] end
  local stack = self.stack
  for i = 1, #stack do   -- (not ipairs: this runs per group rule, and the stack is a plain list)
    if stack[i] == id then
      local cycle = {}
      for k = i, #self.stack do cycle[#cycle + 1] = format("%q", self.stack[k]) end
      cycle[#cycle + 1] = format("%q", id)
      self:problem(self:at() .. ".id", "group cycle: %s", concat(cycle, " -> "))
      return function() return F end
    end
  end
  local groups = self.opts.groups
  local g = groups and groups[id]
  if g == nil then
    self:problem(self:at() .. ".id", "unknown group %q (not in opts.groups)", id)
    return function() return F end
  end
  if type(g) ~= "table" then
    self:problem(prefix_of(id), "expected a group table, got %s", type(g))
    return function() return F end
  end
  local gb = body_of(g)
  local test, qf, qw = function() return F end, nil, nil
  self.stack[#self.stack + 1] = id
  if self:validate_group(gb, id) then
    local cb = self:body(gb, id, nil)
    local name, eval_body = g.name, self.eval_body
    local inc = cb.include
    local n, ident = #inc, inc.identity
    test = function(q)
      -- eval_body's first loop, here (a group rule runs for every policy
      -- that names the group): include rules all F make the group F
      if q.user ~= nil or not ident then
        local i = 1
        while i <= n do
          local r = inc[i]
          local known = q[r.qf]   -- q[nil] is nil
          if not (known ~= nil and known ~= r.qw) and r.test(q) ~= F then break end
          i = i + 1
        end
        if i > n then return F end
      end
      local v, needs, where = eval_body(cb, q)
      if needs then needs = format("%s (in group %q, %s)", needs, name, where) end
      return v, needs
    end
    if n == 1 and inc[1].qf then qf, qw = inc[1].qf, inc[1].qw end
  end
  self.stack[#self.stack] = nil
  self.group_tests[id], self.group_qf[id], self.group_qw[id] = test, qf, qw
  return test, qf, qw
end

-- The steps an allow policy adds (API.md section 10; EVALUATION.md 4).
local function steps_of(p)
  local s = {}
  local mfa = p.mfa_config
  if type(mfa) == "table" and not mfa.mfa_disabled and not mfa.mfa_bypass then s[#s + 1] = "mfa" end
  if p.approval_required then s[#s + 1] = "approval" end
  if p.purpose_justification_required then s[#s + 1] = "purpose_justification" end
  if p.isolation_required then s[#s + 1] = "isolation" end
  return s
end

-- Check the options; problems under opts.*.
local function check_opts(run, opts)
  for k, v in pairs(opts) do
    local want = OPTS[k]
    if not want then
      run:problem("opts." .. tostring(k), "unknown option (known: account_id, allow_unknown, "
        .. "groups, kind, legacy, lists, strict_service_tokens)")
    elseif type(v) ~= want then
      run:problem("opts." .. k, "expected a %s, got %s", want, type(v))
    end
  end
  local a = opts.account_id
  if type(a) == "string" and not a:match("^" .. ("%x"):rep(32) .. "$") then
    run:problem("opts.account_id", "%q is not 32 hex characters", a)
  end
end

-- The compiled set of valid policies `compiled`: in evaluation order,
-- phase 1 then 2, each by precedence, or by list position where none is
-- given (compile has refused a mix and a duplicate precedence, so the
-- keys are unique and the order is the comparator's: phase, then
-- precedence or index), split by phase, with each phase's include tests
-- in one run for evaluate.lua's walk: tests[j] is a rule of the include
-- of policy list[owner[j]], and the include of list[k] starts at
-- first[k] (first[#list + 1]: past the end).
local function ordered(compiled, strict)
  local set = { order = {}, phase1 = {}, phase2 = {}, strict = strict }
  for ph = 1, 2 do
    -- sort the keys (numbers, no comparator function), then their policies
    local keys, by = {}, {}
    for i = 1, #compiled do
      local cp = compiled[i]
      if cp.phase == ph then
        local k = cp.precedence or cp.index
        keys[#keys + 1], by[k] = k, cp
      end
    end
    sort(keys)
    local list = ph == 1 and set.phase1 or set.phase2
    for k = 1, #keys do
      local cp = by[keys[k]]
      list[k] = cp
      set.order[#set.order + 1] = cp
      cp.pos = #set.order   -- its place in evaluation order (and in the trace)
    end
    local tests, owner, first, fields, wants, ident = {}, {}, {}, {}, {}, nil
    for k = 1, #list do
      first[k] = #tests + 1
      local inc = list[k].body.include
      ident = ident or inc.identity
      for r = 1, #inc do
        local j, rule = #tests + 1, inc[r]
        tests[j], owner[j], fields[j], wants[j] = rule.test, k, rule.qf, rule.qw
      end
    end
    first[#list + 1] = #tests + 1
    list.tests, list.owner, list.first, list.fields, list.wants = tests, owner, first, fields, wants
    list.identity = ident   -- an include rule needs a user: without one, no single run
  end
  return set
end

--- Compile `policies` with `opts`: returns the compiled set
-- `{ order = {cp...}, phase1 = {...}, phase2 = {...}, strict = bool }`,
-- or nil and the list of problems (or nil, nil, err for a non-problem
-- error from the core).
-- @param eval_body the body evaluator (evaluate.lua), used by group tests
function M.compile(policies, opts, eval_body)
  local run = setmetatable({ problems = {}, opts = opts, list_cache = {}, group_tests = {},
                             group_qf = {}, group_qw = {},
                             stack = {}, eval_body = eval_body }, Run)
  check_opts(run, opts)
  -- a wrong-typed groups or lists option is a problem already; read it as absent
  run.opts = { groups = type(opts.groups) == "table" and opts.groups or nil,
               lists = type(opts.lists) == "table" and opts.lists or nil,
               legacy = opts.legacy == true or nil, allow_unknown = opts.allow_unknown == true or nil }
  run.account_id = type(opts.account_id) == "string" and opts.account_id or nil
  local vopts = { kind = type(opts.kind) == "string" and opts.kind or "app",
                  legacy = opts.legacy == true or nil, allow_unknown = opts.allow_unknown == true or nil }
  local compiled, with_prec, without_prec = {}, nil, nil
  local n = #policies
  -- a single policy given where the list belongs would read as no policies
  -- at all ("blocked: no policy matched"): a silently wrong answer
  local stray = {}
  for k in next, policies do
    if math.type(k) ~= "integer" or k < 1 or k > n then stray[#stray + 1] = format("%q", tostring(k)) end
  end
  if #stray > 0 then
    table.sort(stray)
    run:problem("", "expected a list of policies, found the key %s (one policy? give { policy })", stray[1])
  end
  for i = 1, n do
    local p = policies[i]
    if type(p) ~= "table" then
      run:problem(prefix_of(i), "expected a policy table, got %s", type(p))
    else
      local b = body_of(p)
      if run:validate(b, vopts, i) then
        local prec = p.precedence ~= nil and tointeger(p.precedence) or nil
        if prec then with_prec = with_prec or i else without_prec = without_prec or i end
        compiled[#compiled + 1] = {
          index = i, name = p.name, id = p.id, decision = p.decision, precedence = prec,
          phase = PHASE[p.decision], body = run:body(b, i, p.decision),
          steps = p.decision == "allow" and steps_of(p) or {},
        }
      end
    end
  end
  if run.fatal then return nil, nil, run.fatal end
  if with_prec and without_prec then
    run:problem("[" .. without_prec .. "].precedence", "missing, while [%d] has one "
      .. "(give every policy a precedence, or none for list order)", with_prec)
  end
  -- one precedence space per app (the API refuses a duplicate: 11018)
  local by_prec = {}
  for i = 1, #compiled do
    local cp = compiled[i]
    if cp.precedence then
      local other = by_prec[cp.precedence]
      if other then
        run:problem("[" .. cp.index .. "].precedence", "%d is also the precedence of [%d] (%q)",
          cp.precedence, other.index, tostring(other.name))
      else
        by_prec[cp.precedence] = cp
      end
    end
  end
  if #run.problems > 0 then return nil, run.problems end
  return ordered(compiled, opts.strict_service_tokens == true)
end

return M
