--- cfaccess.eval.matchers: one matcher per rule type, keyed by the rule's
-- JSON key exactly as the C core's schema names it
-- (`require("cfaccess.core").schema.rule_types`). At load this module
-- checks that every schema rule type has a matcher and that no matcher
-- lacks a rule type, so a rule type added to the schema without a matcher
-- (or a misspelt key here) fails loudly instead of never matching.
--
-- A matcher is `compile(inner, cc) -> test` where `inner` is the rule's
-- validated inner object and `test(q) -> value [, needs]` runs per
-- request. Values are the small integers below (three-valued logic plus
-- "needs a login"); `needs` names the request input a missing value would
-- have come from, e.g. `country` or `user.idp["okta"].groups`.
-- Identity rules (schema `identity = true`, except `group`, whose own
-- rules decide) are never called without a user (q.user): the engine
-- answers for them (evaluate.lua).
--
-- A matcher may return two more values, `field, want`, saying that its
-- test gives F whenever q[field] is not nil and is not `want` (the "eq"
-- rules below, and a group of one such rule). The engine then knows such
-- a rule is false without calling it, which is what most rules of most
-- policies are; the test still decides every other case.
-- @module cfaccess.eval.matchers
local core = require("cfaccess.core")
local cidr = require("cfaccess.eval.cidr")

local format, lower, upper = string.format, string.lower, string.upper
local type, pairs, ipairs, error = type, pairs, ipairs, error

local M = {}

-- Values, ordered so that OR is max and AND is min (see evaluate.lua).
local F, U, L, T = 0, 1, 2, 3
M.F, M.U, M.L, M.T = F, U, L, T

local function b(x) if x then return T end return F end

local function has(list, want)
  for i = 1, #list do if list[i] == want then return true end end
  return false
end

local function has_ci(list, want)
  for i = 1, #list do
    local v = list[i]
    if type(v) == "string" and lower(v) == want then return true end
  end
  return false
end

-- The user's data from the IdP `idp` (the rule's identity_provider_id):
-- the table, or F when the user logged in with another method, or U and
-- what is missing.
local function idp_data(q, idp)
  local u = q.user
  local lm = u.login_method
  if lm == nil then return U, "user.login_method" end
  if lm ~= idp then return F end
  local d = u.idp and u.idp[idp]
  if d == nil then return U, format("user.idp[%q]", idp) end
  return d
end

-- Membership of `want` in the IdP's `field` list (groups, auth_contexts):
-- idp_data's reading, written out (it runs for every IdP group rule a
-- request meets); q.login_idp is user.idp[user.login_method].
local function idp_member(idp, field, want, ci)
  return (function(q)
    local lm = q.login_method
    if lm == nil then return U, "user.login_method" end
    if lm ~= idp then return F end
    local d = q.login_idp
    if d == nil then return U, format("user.idp[%q]", idp) end
    local list = d[field]
    if list == nil then return U, format("user.idp[%q].%s", idp, field) end
    if ci then return b(has_ci(list, want)) end
    for i = 1, #list do if list[i] == want then return T end end
    return F
  end), "login_method", idp   -- F for a login with another IdP
end

-- saml attributes and oidc claims: user.idp[idp][section][name] is a
-- value or a list of values (a multi-valued attribute, already split);
-- whole values only, exact.
local function idp_attr(idp, section, name, want)
  return function(q)
    local d, needs
    if idp then
      d, needs = idp_data(q, idp)
    else
      -- legacy saml without identity_provider_id: the login's own IdP
      local lm = q.user.login_method
      if lm == nil then return U, "user.login_method" end
      d = q.user.idp and q.user.idp[lm]
      if d == nil then return U, format("user.idp[%q]", lm) end
    end
    if type(d) ~= "table" then return d, needs end
    local sec = d[section]
    local v = sec and sec[name]
    if v == nil then
      return U, format("user.idp[%q].%s[%q]", idp or q.user.login_method, section, name)
    end
    if type(v) == "table" then return b(has(v, want)) end
    return b(v == want)
  end
end

-- The identity provider a rule names (connection_id: the 2024 shape).
local function idp_of(r) return r.identity_provider_id or r.connection_id end

-- ---------------------------------------------------------------------------
-- The matchers. Readings where no source decides are those of
-- shared/reference/EVALUATION.md ("the library's readings").

local matchers = {}

-- Each rule type is defined once: a second definition is an error at load,
-- so a table-driven matcher and a hand-written one cannot both claim a key.
local function define(key, compile)
  if matchers[key] ~= nil then
    error(format("cfaccess.eval.matchers: rule type %q has two matchers", key), 0)
  end
  matchers[key] = compile
end

-- The rules that read one request input, the field `f` of the request
-- view q (evaluate.lua's view: q.email lowercased, q.domain, q.country
-- uppercased, q.service_token, q.certificate, q.linked_app, and the user's
-- q.login_method, q.amr, q.risk, q.login_idp). A nil value is unknown and needs `needs`.
-- Each kind makes the test for one rule from what the rule asks for, `w`,
-- read once at compile time; each is one function per request, with no
-- calls of its own (this runs for every rule a request meets).
local KIND = {
  eq = function(f, w, needs)
    return function(q)
      local v = q[f]
      if v == nil then return U, needs end
      if v == w then return T end
      return F
    end
  end,
  -- w is a set (email_list: the list's lowercased addresses)
  member = function(f, w, needs)
    return function(q)
      local v = q[f]
      if v == nil then return U, needs end
      if w[v] then return T end
      return F
    end
  end,
  -- the value is a list that holds w (amr)
  holds = function(f, w, needs)
    return function(q)
      local v = q[f]
      if v == nil then return U, needs end
      for i = 1, #v do if v[i] == w then return T end end
      return F
    end
  end,
  -- w is a list that holds the value (risk levels)
  among = function(f, w, needs)
    return function(q)
      local v = q[f]
      if v == nil then return U, needs end
      for i = 1, #w do if w[i] == v then return T end end
      return F
    end
  end,
  -- anything but false (a certificate, a service token)
  given = function(f, _, needs)
    return function(q)
      local v = q[f]
      if v == nil then return U, needs end
      if v ~= false then return T end
      return F
    end
  end,
  -- the exact domain after the last "@" (q.domain), when q.email is known
  domain = function(_, w, needs)
    return function(q)
      if q.email == nil then return U, needs end
      if q.domain == w then return T end
      return F
    end
  end,
}

-- { rule type, field of q, what the rule asks for (from the rule's inner
-- object and the compile run), kind, needs (default: the field) }.
-- A certificate the request presented is one that chains to the
-- hostname's CA: the request says so by giving it; service tokens: a
-- string names the valid token the request carries, false says it carries
-- none; the user's risk level is one of the listed ones (the API's list),
-- not a threshold; email and domain compare case-insensitively, the
-- domain with no subdomains.
local SIMPLE = {
  { "email", "email", function(r) return lower(r.email) end, "eq", "user.email" },
  { "email_list", "email", function(r, cc) return cc:list(r.id, "email") end, "member", "user.email" },
  { "email_domain", "email", function(r) return lower(r.domain) end, "domain", "user.email" },
  { "certificate", "certificate", nil, "given" },
  { "login_method", "login_method", function(r) return r.id end, "eq", "user.login_method" },
  { "auth_method", "amr", function(r) return r.auth_method end, "holds", "user.amr" },
  { "service_token", "service_token", function(r) return r.token_id end, "eq" },
  { "any_valid_service_token", "service_token", nil, "given" },
  { "geo", "country", function(r) return upper(r.country_code) end, "eq" },
  { "linked_app_token", "linked_app", function(r) return r.app_uid end, "eq" },
  -- a copy: a compiled evaluator keeps nothing of the caller's that the
  -- caller could change under it
  { "user_risk_score", "risk", function(r) return { table.unpack(r.user_risk_score) } end, "among", "user.risk" },
}
local function simple(f, want, kind, needs)
  local make = assert(KIND[kind], kind)
  needs = needs or f
  return function(r, cc)
    local w = want and want(r, cc)
    local test = make(f, w, needs)
    -- eq: F when q[f] is known and not w; domain: q.domain is nil
    -- exactly when q.email is (evaluate.lua's view sets both)
    if kind == "eq" then return test, f, w end
    if kind == "domain" then return test, "domain", w end
    return test
  end
end
for _, s in ipairs(SIMPLE) do define(s[1], simple(s[2], s[3], s[4], s[5])) end

-- The rules that look up a caller-supplied answer: q[input][key], where
-- `key(r)` is the rule's field; nil needs `input[key]`, else truthiness.
local function answer(input, key)
  return function(r)
    local k = key(r)
    local needs = format("%s[%q]", input, k)
    return function(q)
      local t = q[input]
      local v = t and t[k]
      if v == nil then return U, needs end
      if v then return T end
      return F
    end
  end
end

-- offline, the caller supplies the endpoint's verified answer
define("external_evaluation", answer("external", function(r) return r.evaluate_url end))
define("device_posture", answer("posture", function(r) return r.integration_uid end))

define("everyone", function() return function() return T end end)

-- cidr.contains, written out over the range's parts
define("ip", function(r, cc)
  local range = cc:range(r.ip)
  local bits, hi, lo, mhi, mlo = range.bits, range.hi, range.lo, range.mhi, range.mlo
  return function(q)
    local h = q.ip_hi
    if h == nil then return U, "ip" end
    if q.ip_bits == bits and (h & mhi) == hi and (q.ip_lo & mlo) == lo then return T end
    return F
  end
end)

define("ip_list", function(r, cc)
  local ranges = cc:list(r.id, "ip")
  local contains = cidr.contains
  return function(q)
    if q.ip_hi == nil then return U, "ip" end
    for i = 1, #ranges do
      if contains(ranges[i], q.ip_hi, q.ip_lo, q.ip_bits) then return T end
    end
    return F
  end
end)

define("common_name", function(r)
  local want = r.common_name
  return function(q)
    local c = q.certificate
    if c == nil then return U, "certificate" end
    if c == false then return F end
    if type(c) ~= "table" or c.common_name == nil then return U, "certificate.common_name" end
    return b(c.common_name == want)
  end
end)

define("group", function(r, cc) return cc:group(r.id) end)

-- IdP groups: membership of the rule's group in user.idp[idp].groups
define("azureAD", function(r) return idp_member(idp_of(r), "groups", r.id) end)
define("gsuite", function(r) return idp_member(idp_of(r), "groups", lower(r.email), true) end)
define("okta", function(r) return idp_member(idp_of(r), "groups", r.name or r.email) end)

-- org and team names compare case-insensitively, as GitHub's do
define("github-organization", function(r)
  local idp, org, team = idp_of(r), lower(r.name), r.team and lower(r.team)
  return (function(q)
    local d, needs = idp_data(q, idp)
    if type(d) ~= "table" then return d, needs end
    local gh = d.github
    if gh == nil then return U, format("user.idp[%q].github", idp) end
    for _, m in ipairs(gh) do
      if type(m.org) == "string" and lower(m.org) == org then
        if team == nil then return T end
        if m.teams == nil then return U, format("user.idp[%q].github[...].teams", idp) end
        if has_ci(m.teams, team) then return T end
      end
    end
    return F
  end), "login_method", idp
end)

-- with an IdP named, F for a login with another one (without, the
-- login's own IdP is the one)
local function attr_rule(section, name_field, value_field)
  return function(r)
    local idp = r.identity_provider_id
    local test = idp_attr(idp, section, r[name_field], r[value_field])
    if idp then return test, "login_method", idp end
    return test
  end
end
define("saml", attr_rule("saml", "attribute_name", "attribute_value"))
define("oidc", attr_rule("oidc", "claim_name", "claim_value"))

-- the user passed the Entra conditional access bound to the context:
-- user.idp[idp].auth_contexts lists the contexts passed (ac_id or id)
define("auth_context", function(r)
  local idp, ac, id = r.identity_provider_id, r.ac_id, r.id
  local test = idp_member(idp, "auth_contexts", ac)
  return (function(q)
    local v, needs = test(q)
    if v == F and q.user.login_method == idp and has(q.user.idp[idp].auth_contexts, id) then
      return T
    end
    return v, needs
  end), "login_method", idp
end)

-- without account_id: the policy's own account (opts.account_id)
define("cloudflare_account_member", function(r, cc)
  local want = r.account_id or cc.account_id
  want = want and lower(want)
  return function(q)
    if want == nil then return U, "opts.account_id" end
    local accts = q.user.accounts
    if accts == nil then return U, "user.accounts" end
    return b(has_ci(accts, want))
  end
end)

-- Rules that only a Service Auth policy may hold (EVALUATION.md 1.8).
M.service_auth_only = { service_token = true, any_valid_service_token = true }

-- ---------------------------------------------------------------------------
-- One list of rule types: the schema's. Check both directions at load.

local schema = core.schema
if type(schema) ~= "table" or schema.rule_types == nil then
  error("cfaccess.eval.matchers: cfaccess.core has no schema table (core too old?)", 0)
end
local seen = {}
for _, key in ipairs(schema.rule_types) do
  if matchers[key] == nil then
    error(format("cfaccess.eval.matchers: schema rule type %q has no matcher", key), 0)
  end
  seen[key] = true
end
for key in pairs(matchers) do
  if not seen[key] then
    error(format("cfaccess.eval.matchers: matcher %q is not a schema rule type", key), 0)
  end
end
for key in pairs(M.service_auth_only) do
  if not seen[key] then
    error(format("cfaccess.eval.matchers: %q is not a schema rule type", key), 0)
  end
end

--- The matchers, keyed by rule type (read-only use).
M.matchers = matchers

--- Does rule type `key` test the user's identity (schema `identity`)?
function M.identity(key) return schema.rules[key].identity == true end

return M
