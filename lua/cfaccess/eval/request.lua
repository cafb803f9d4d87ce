--- cfaccess.eval.request: checks the request `cfaccess.evaluate` is
-- given (API.md section 10: what Access would know) and reads it into the
-- view the matchers use (matchers.lua names its fields). This runs for
-- every evaluation, so the common case, a valid request, makes no path
-- text and calls as few functions as it can: a problem's path is built
-- only when there is a problem to report.
-- @module cfaccess.eval.request
local cidr = require("cfaccess.eval.cidr")

local format, type, pairs, ipairs, tostring = string.format, type, pairs, ipairs, tostring
local concat = table.concat

local M = {}

local REQUEST = { ip = true, country = true, service_token = true, certificate = true,
                  linked_app = true, posture = true, external = true, user = true }
local USER = { email = true, login_method = true, amr = true, risk = true, idp = true,
               accounts = true }
local RISK = { low = true, medium = true, high = true, unscored = true }

local sorted_keys = require("cfaccess.state.common").sorted_keys
local function known(set) return concat(sorted_keys(set), ", ") end
local REQUEST_KNOWN, USER_KNOWN = known(REQUEST), known(USER)

local function strings(problems, path, v)
  if type(v) ~= "table" then
    problems[#problems + 1] = { path = path, message = "expected a list of strings, got " .. type(v) }
    return
  end
  for i, s in ipairs(v) do
    if type(s) ~= "string" then
      problems[#problems + 1] = { path = path .. "[" .. i .. "]",
                                  message = "expected a string, got " .. type(s) }
    end
  end
end

local function bools(problems, path, v)
  if type(v) ~= "table" then
    problems[#problems + 1] = { path = path, message = "expected a table of booleans, got " .. type(v) }
    return
  end
  for k, b in pairs(v) do
    if type(b) ~= "boolean" then
      problems[#problems + 1] = { path = format("%s[%q]", path, tostring(k)),
                                  message = "expected true or false, got " .. type(b) }
    end
  end
end

-- What one IdP told about the user (see the table in README.md).
local IDP = { groups = true, auth_contexts = true, github = true, saml = true, oidc = true }
local IDP_KNOWN = known(IDP)

-- Is v a list of strings (as `strings` reads it)? The checks below ask
-- this first and build a path only for a problem to report.
local function all_strings(v)
  if type(v) ~= "table" then return false end
  local i = 1
  while true do   -- ipairs' walk (to the first nil), without its iterator calls
    local s = v[i]
    if s == nil then return true end
    if type(s) ~= "string" then return false end
    i = i + 1
  end
end

local function idp_path(id, k) return format("request.user.idp[%q].%s", tostring(id), tostring(k)) end

local function check_idp(problems, id, d)
  for k, v in pairs(d) do
    if not IDP[k] then
      problems[#problems + 1] = { path = idp_path(id, k), message = "unknown field (known: " .. IDP_KNOWN .. ")" }
    elseif k == "groups" or k == "auth_contexts" then
      if not all_strings(v) then strings(problems, idp_path(id, k), v) end
    elseif k == "github" then
      if type(v) ~= "table" then
        problems[#problems + 1] = { path = idp_path(id, k),
                                    message = "expected a list of { org =, teams = }, got " .. type(v) }
      else
        for i, m in ipairs(v) do
          if type(m) ~= "table" or type(m.org) ~= "string" then
            problems[#problems + 1] = { path = idp_path(id, k) .. "[" .. i .. "]",
                                        message = "expected { org = string, teams = { ... } }" }
          elseif m.teams ~= nil and not all_strings(m.teams) then
            strings(problems, idp_path(id, k) .. "[" .. i .. "]" .. ".teams", m.teams)
          end
        end
      end
    elseif type(v) ~= "table" then   -- saml attributes, oidc claims
      problems[#problems + 1] = { path = idp_path(id, k),
                                  message = "expected a table of names to values, got " .. type(v) }
    else
      for name, val in pairs(v) do
        if type(val) ~= "string" and not all_strings(val) then
          strings(problems, format("%s[%q]", idp_path(id, k), tostring(name)), val)
        end
      end
    end
  end
end

local function not_string(problems, u, f)
  problems[#problems + 1] = { path = "request.user." .. f, message = "expected a string, got " .. type(u[f]) }
end

local function check_user(problems, u)
  for k in pairs(u) do
    if not USER[k] then
      problems[#problems + 1] = { path = "request.user." .. tostring(k),
                                  message = "unknown field (known: " .. USER_KNOWN .. ")" }
    end
  end
  -- email, then login_method (two calls, not a loop: this runs per request)
  if u.email ~= nil and type(u.email) ~= "string" then not_string(problems, u, "email") end
  if u.login_method ~= nil and type(u.login_method) ~= "string" then not_string(problems, u, "login_method") end
  if u.amr ~= nil and not all_strings(u.amr) then strings(problems, "request.user.amr", u.amr) end
  if u.accounts ~= nil and not all_strings(u.accounts) then
    strings(problems, "request.user.accounts", u.accounts)
  end
  if u.risk ~= nil and not RISK[u.risk] then
    problems[#problems + 1] = { path = "request.user.risk",
                                message = format("%q is not one of low, medium, high, unscored", tostring(u.risk)) }
  end
  if u.idp ~= nil then
    if type(u.idp) ~= "table" then
      problems[#problems + 1] = { path = "request.user.idp", message = "expected a table, got " .. type(u.idp) }
    else
      for id, d in pairs(u.idp) do
        if type(d) ~= "table" then
          problems[#problems + 1] = { path = format("request.user.idp[%q]", tostring(id)),
                                      message = "expected a table, got " .. type(d) }
        else
          check_idp(problems, id, d)
        end
      end
    end
  end
end

local function not_token(problems, f, v)
  problems[#problems + 1] = { path = "request." .. f, message = "expected a string or false, got " .. tostring(v) }
end

--- The view of request `r` (a table): q, or nil and the list of problems
-- (each `{ path =, message = }`).
function M.view(r)
  local problems = {}
  for k in pairs(r) do
    if not REQUEST[k] then
      problems[#problems + 1] = { path = "request." .. tostring(k),
                                  message = "unknown field (known: " .. REQUEST_KNOWN .. ")" }
    end
  end
  -- every field the view can get, named here so that the table is made
  -- at its full size once (nil ones take no room but are counted)
  local q = { 0, 0, service_token = r.service_token, certificate = r.certificate,
              linked_app = r.linked_app, posture = r.posture, external = r.external,
              ip_hi = nil, ip_lo = nil, ip_bits = nil, country = nil, user = nil, login_method = nil,
              amr = nil, risk = nil, login_idp = nil, email = nil, domain = nil, nouser = nil, set = nil }
  if r.ip ~= nil then
    local hi, lo, bits = cidr.parse_addr(r.ip)
    if hi then q.ip_hi, q.ip_lo, q.ip_bits = hi, lo, bits
    else problems[#problems + 1] = { path = "request.ip", message = format("%q is not an IP address",
      tostring(r.ip)) } end
  end
  if r.country ~= nil then
    if type(r.country) == "string" and r.country:match("^%a%a$") then q.country = r.country:upper()
    else problems[#problems + 1] = { path = "request.country",
                                     message = format("%q is not a two-letter country code", tostring(r.country)) } end
  end
  -- service_token, then linked_app (not a loop: this runs per request)
  local st, la = r.service_token, r.linked_app
  if st ~= nil and st ~= false and type(st) ~= "string" then not_token(problems, "service_token", st) end
  if la ~= nil and la ~= false and type(la) ~= "string" then not_token(problems, "linked_app", la) end
  local c = r.certificate
  if c ~= nil and type(c) ~= "boolean" and (type(c) ~= "table" or
      (c.common_name ~= nil and type(c.common_name) ~= "string")) then
    problems[#problems + 1] = { path = "request.certificate",
                                message = "expected false, true or { common_name = string }" }
  end
  if r.posture ~= nil then bools(problems, "request.posture", r.posture) end
  if r.external ~= nil then bools(problems, "request.external", r.external) end
  local u = r.user
  if u ~= nil and u ~= false then
    if type(u) ~= "table" then
      problems[#problems + 1] = { path = "request.user", message = "expected a table or false, got " .. type(u) }
    else
      check_user(problems, u)
      q.user = u
      -- for the matchers: the user's fields they read, and what the IdP of
      -- the login told (nil for a login_method that is not a string: a
      -- problem above)
      q.login_method, q.amr, q.risk = u.login_method, u.amr, u.risk
      if type(u.idp) == "table" and type(u.login_method) == "string" then q.login_idp = u.idp[u.login_method] end
      if type(u.email) == "string" then
        q.email = u.email:lower()
        q.domain = q.email:match("@([^@]*)$") or ""
      end
    end
  end
  if #problems > 0 then return nil, problems end
  return q
end

return M
