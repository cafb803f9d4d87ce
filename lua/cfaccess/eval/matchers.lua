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

-- Membership of `want` in the IdP's `field` list (groups, auth_contexts).
local function idp_member(idp, field, want, ci)
  return function(q)
    local d, needs = idp_data(q, idp)
    if type(d) ~= "table" then return d, needs end
    local list = d[field]
    if list == nil then return U, format("user.idp[%q].%s", idp, field) end
    if ci then return b(has_ci(list, want)) end
    return b(has(list, want))
  end
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

-- q.email is the user's email lowercased, q.domain what follows its last "@"
matchers.email = function(r)
  local want = lower(r.email)
  return function(q)
    local e = q.email
    if e == nil then return U, "user.email" end
    return b(e == want)
  end
end

matchers.email_list = function(r, cc)
  local set = cc:list(r.id, "email")
  return function(q)
    local e = q.email
    if e == nil then return U, "user.email" end
    return b(set[e])
  end
end

-- the exact domain after the last "@", case-insensitive, no subdomains
matchers.email_domain = function(r)
  local want = lower(r.domain)
  return function(q)
    if q.email == nil then return U, "user.email" end
    return b(q.domain == want)
  end
end

matchers.everyone = function() return function() return T end end

matchers.ip = function(r, cc)
  local range = cc:range(r.ip)
  local contains = cidr.contains
  return function(q)
    if q.ip_hi == nil then return U, "ip" end
    return b(contains(range, q.ip_hi, q.ip_lo, q.ip_bits))
  end
end

matchers.ip_list = function(r, cc)
  local ranges = cc:list(r.id, "ip")
  local contains = cidr.contains
  return function(q)
    if q.ip_hi == nil then return U, "ip" end
    for i = 1, #ranges do
      if contains(ranges[i], q.ip_hi, q.ip_lo, q.ip_bits) then return T end
    end
    return F
  end
end

-- a certificate the request presented is one that chains to the
-- hostname's CA: the request says so by giving it
matchers.certificate = function()
  return function(q)
    local c = q.certificate
    if c == nil then return U, "certificate" end
    return b(c ~= false)
  end
end

matchers.common_name = function(r)
  local want = r.common_name
  return function(q)
    local c = q.certificate
    if c == nil then return U, "certificate" end
    if c == false then return F end
    if type(c) ~= "table" or c.common_name == nil then return U, "certificate.common_name" end
    return b(c.common_name == want)
  end
end

matchers.group = function(r, cc) return cc:group(r.id) end

matchers.azureAD = function(r) return idp_member(idp_of(r), "groups", r.id) end

-- org and team names compare case-insensitively, as GitHub's do
matchers["github-organization"] = function(r)
  local idp, org, team = idp_of(r), lower(r.name), r.team and lower(r.team)
  return function(q)
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
  end
end

matchers.gsuite = function(r) return idp_member(idp_of(r), "groups", lower(r.email), true) end

matchers.okta = function(r) return idp_member(idp_of(r), "groups", r.name or r.email) end

matchers.saml = function(r)
  return idp_attr(r.identity_provider_id, "saml", r.attribute_name, r.attribute_value)
end

matchers.oidc = function(r)
  return idp_attr(r.identity_provider_id, "oidc", r.claim_name, r.claim_value)
end

-- the user passed the Entra conditional access bound to the context:
-- user.idp[idp].auth_contexts lists the contexts passed (ac_id or id)
matchers.auth_context = function(r)
  local idp, ac, id = r.identity_provider_id, r.ac_id, r.id
  local test = idp_member(idp, "auth_contexts", ac)
  return function(q)
    local v, needs = test(q)
    if v == F and q.user.login_method == idp and has(q.user.idp[idp].auth_contexts, id) then
      return T
    end
    return v, needs
  end
end

matchers.login_method = function(r)
  local want = r.id
  return function(q)
    local lm = q.user.login_method
    if lm == nil then return U, "user.login_method" end
    return b(lm == want)
  end
end

matchers.auth_method = function(r)
  local want = r.auth_method
  return function(q)
    local amr = q.user.amr
    if amr == nil then return U, "user.amr" end
    return b(has(amr, want))
  end
end

-- service tokens: a string names the valid token the request carries,
-- false says it carries none
matchers.service_token = function(r)
  local want = r.token_id
  return function(q)
    local t = q.service_token
    if t == nil then return U, "service_token" end
    return b(t == want)
  end
end

matchers.any_valid_service_token = function()
  return function(q)
    local t = q.service_token
    if t == nil then return U, "service_token" end
    return b(t ~= false)
  end
end

-- offline, the caller supplies the endpoint's verified answer
matchers.external_evaluation = function(r)
  local url = r.evaluate_url
  return function(q)
    local ext = q.external
    local v = ext and ext[url]
    if v == nil then return U, format("external[%q]", url) end
    return b(v)
  end
end

matchers.geo = function(r)
  local want = upper(r.country_code)
  return function(q)
    if q.country == nil then return U, "country" end
    return b(q.country == want)
  end
end

matchers.device_posture = function(r)
  local uid = r.integration_uid
  return function(q)
    local p = q.posture
    local v = p and p[uid]
    if v == nil then return U, format("posture[%q]", uid) end
    return b(v)
  end
end

matchers.linked_app_token = function(r)
  local want = r.app_uid
  return function(q)
    local t = q.linked_app
    if t == nil then return U, "linked_app" end
    return b(t == want)
  end
end

-- the user's level is one of the listed ones (the API's list), not a threshold
matchers.user_risk_score = function(r)
  local levels = r.user_risk_score
  return function(q)
    local risk = q.user.risk
    if risk == nil then return U, "user.risk" end
    return b(has(levels, risk))
  end
end

-- without account_id: the policy's own account (opts.account_id)
matchers.cloudflare_account_member = function(r, cc)
  local want = r.account_id or cc.account_id
  want = want and lower(want)
  return function(q)
    if want == nil then return U, "opts.account_id" end
    local accts = q.user.accounts
    if accts == nil then return U, "user.accounts" end
    return b(has_ci(accts, want))
  end
end

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
