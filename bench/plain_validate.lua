--- bench/plain_validate.lua: what a user would write by hand instead of
-- cfaccess: a straightforward Lua validator of the same rules the
-- benchmark policy exercises (field names and types, decision enum, one
-- type per rule, email/domain/country/UUID/duration formats, approval
-- groups), collecting every problem, then cjson.encode. It is the
-- "plain Lua" column of `make bench`, not part of the library.
local cjson = require("cjson").new()

local M = {}

local DECISIONS = { allow = true, deny = true, non_identity = true, bypass = true }
local AUTH_METHODS = { mfa = true, pwd = true, otp = true, hwk = true, swk = true, sms = true }

local function is_email(s)
  return type(s) == "string" and s:match("^[^@%s]+@[%w%-]+%.[%w%.%-]+$") ~= nil
end

local function is_domain(s)
  return type(s) == "string" and s:match("^[%w%-]+%.[%w%.%-]+$") ~= nil
end

local function is_uuid(s)
  return type(s) == "string" and
    s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function is_duration(s)
  if type(s) ~= "string" or s == "" then return false end
  local rest = s
  while rest ~= "" do
    local num, unit, tail = rest:match("^(%d+%.?%d*)(%a+)(.*)$")
    if not num or not ({ ns = 1, us = 1, ms = 1, s = 1, m = 1, h = 1 })[unit] then return false end
    rest = tail
  end
  return true
end

local function is_ip(s)
  if type(s) ~= "string" then return false end
  local a, b, c, d, len = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)/?(%d*)$")
  if not a then return s:match("^[%x:]+/?%d*$") ~= nil end
  for _, o in ipairs{ a, b, c, d } do if tonumber(o) > 255 then return false end end
  return len == "" or tonumber(len) <= 32
end

-- rule type -> checker of its inner object (returns a message or nil)
local RULES = {
  email = function(v) if not is_email(v.email) then return "email.email: not an email" end end,
  email_domain = function(v) if not is_domain(v.domain) then return "email_domain.domain: not a domain" end end,
  everyone = function() end,
  ip = function(v) if not is_ip(v.ip) then return "ip.ip: not an IP or CIDR" end end,
  geo = function(v)
    if type(v.country_code) ~= "string" or not v.country_code:match("^%u%u$") then
      return "geo.country_code: not a country code"
    end
  end,
  auth_method = function(v)
    if not AUTH_METHODS[v.auth_method] then return "auth_method.auth_method: unknown method" end
  end,
  group = function(v) if not is_uuid(v.id) then return "group.id: not a UUID" end end,
  email_list = function(v) if not is_uuid(v.id) then return "email_list.id: not a UUID" end end,
}

local function check_rules(list, name, problems)
  if list == nil then return end
  if type(list) ~= "table" then
    problems[#problems + 1] = name .. ": expected a list"
    return
  end
  for i, rule in ipairs(list) do
    local path = name .. "[" .. i .. "]"
    if type(rule) ~= "table" then
      problems[#problems + 1] = path .. ": expected a table"
    else
      local kind, n = nil, 0
      for k in pairs(rule) do kind, n = k, n + 1 end
      if n ~= 1 then
        problems[#problems + 1] = path .. ": a rule has exactly one type"
      elseif not RULES[kind] then
        problems[#problems + 1] = path .. ": unknown rule type " .. tostring(kind)
      elseif type(rule[kind]) ~= "table" then
        problems[#problems + 1] = path .. "." .. kind .. ": expected a table"
      else
        local msg = RULES[kind](rule[kind])
        if msg then problems[#problems + 1] = path .. "." .. msg end
      end
    end
  end
end

local FIELDS = {
  name = true, decision = true, include = true, exclude = true, require = true,
  precedence = true, session_duration = true, approval_required = true,
  approval_groups = true, purpose_justification_required = true,
  purpose_justification_prompt = true, isolation_required = true,
}

--- Validate p; true, or nil and the list of problems.
function M.validate(p)
  local problems = {}
  for k in pairs(p) do
    if not FIELDS[k] then problems[#problems + 1] = tostring(k) .. ": unknown field" end
  end
  if type(p.name) ~= "string" or p.name == "" then problems[#problems + 1] = "name: expected a string" end
  if not DECISIONS[p.decision] then problems[#problems + 1] = "decision: not a decision" end
  if p.include == nil or #p.include == 0 then problems[#problems + 1] = "include: required" end
  check_rules(p.include, "include", problems)
  check_rules(p.exclude, "exclude", problems)
  check_rules(p.require, "require", problems)
  if p.precedence ~= nil and math.type(p.precedence) ~= "integer" then
    problems[#problems + 1] = "precedence: expected an integer"
  end
  if p.session_duration ~= nil and not is_duration(p.session_duration) then
    problems[#problems + 1] = "session_duration: not a duration"
  end
  for _, k in ipairs{ "approval_required", "purpose_justification_required", "isolation_required" } do
    if p[k] ~= nil and type(p[k]) ~= "boolean" then problems[#problems + 1] = k .. ": expected a boolean" end
  end
  if p.purpose_justification_prompt ~= nil and type(p.purpose_justification_prompt) ~= "string" then
    problems[#problems + 1] = "purpose_justification_prompt: expected a string"
  end
  if p.approval_groups ~= nil then
    for i, g in ipairs(p.approval_groups) do
      local path = "approval_groups[" .. i .. "]"
      if math.type(g.approvals_needed) ~= "integer" or g.approvals_needed < 0 then
        problems[#problems + 1] = path .. ".approvals_needed: expected an integer >= 0"
      end
      if g.email_addresses ~= nil then
        for j, e in ipairs(g.email_addresses) do
          if not is_email(e) then problems[#problems + 1] = path .. ".email_addresses[" .. j .. "]: not an email" end
        end
      end
      if g.email_list_uuid ~= nil and not is_uuid(g.email_list_uuid) then
        problems[#problems + 1] = path .. ".email_list_uuid: not a UUID"
      end
    end
  end
  if #problems > 0 then return nil, problems end
  return true
end

--- Validate, then encode with cjson: the JSON, or nil and the problems.
function M.encode(p)
  local ok, problems = M.validate(p)
  if not ok then return nil, problems end
  return cjson.encode(p)
end

return M
