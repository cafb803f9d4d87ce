--- cfaccess.rules: builders for Cloudflare Access rule objects.
-- Every builder returns a plain table (no metatable) in the API's JSON
-- shape, so builder output and hand-written tables are interchangeable:
--
--     rules.email("alice@example.com") --> { email = { email = "alice@example.com" } }
--
-- The builders are generated from `cfaccess.rulespec` (one entry per
-- builder: name, JSON key, argument fields in order, optional ones), which
-- is checked against the core's schema (`cfaccess.core.schema`) when this
-- module loads. They are:
--
--     email(address)  email_list(id)  email_domain(domain)  everyone()
--     ip(ip)  ip_list(id)  certificate()  common_name(common_name)  group(id)
--     azure_ad(group_id, idp_id)  github_org(name, idp_id [, team])
--     gsuite(email, idp_id)  okta(name, idp_id)
--     saml(attr_name, attr_value, idp_id)  oidc(claim_name, claim_value, idp_id)
--     auth_context(id, ac_id, idp_id)  login_method(id)  auth_method(auth_method)
--     service_token(token_id)  any_valid_service_token()
--     external_evaluation(evaluate_url, keys_url)  geo(country_code)
--     device_posture(integration_uid)  linked_app_token(app_uid)
--     user_risk_score(levels)  cloudflare_account_member([account_id])
--
-- and the list helpers, one rule per element of a list of strings:
-- `emails{...}`, `email_domains{...}`, `ips{...}`, `groups{...}`,
-- `countries{...}` (of `geo`).
--
-- Builders check their own arguments: a missing argument, a wrong type, an
-- empty string or one argument too many raises a Lua error naming the
-- builder and the argument, positioned at the builder's caller. Formats
-- (is it an email, a CIDR, a country code?) are the core validator's job
-- (`cfaccess.validate`), which reports every problem with its path.
-- @module cfaccess.rules
local select, type, error, pairs, tostring = select, type, error, pairs, tostring
local format, concat = string.format, table.concat
local math_type = math.type
local getinfo = debug.getinfo

local spec = require("cfaccess.rulespec")
local core = require("cfaccess.core")

local M = {}

-- The generated builder functions; an argument error is raised at the
-- level of whoever called one of them.
local is_builder = {}

-- Raise msg at the builder's caller. Like luaL_argerror, the position comes
-- from the stack, not from a hand-counted level: walk up from here to the
-- first builder frame, then blame the frame above it. (Without a builder
-- on the stack, which cannot happen, blame raise's caller.)
local function raise(msg)
  local level = 2
  while true do
    local info = getinfo(level, "f")
    if not info then level = 1 break end
    if is_builder[info.func] then break end
    level = level + 1
  end
  -- `level` counts from raise (1); error's level counts from raise too.
  error(msg, level + 1)
end

local function argerror(builder, n, name, what, got)
  raise(format("cfaccess.rules.%s: argument #%d (%s) %s, got %s",
    builder, n, name, what, got))
end

-- How a bad value is described in an argument error.
local function describe(v)
  if v == "" then return "an empty string" end
  return type(v)
end

-- Check that argument n (named name) of builder is a non-empty string.
local function str(builder, n, name, v)
  if type(v) ~= "string" or v == "" then
    argerror(builder, n, name, "expected a non-empty string", describe(v))
  end
  return v
end

-- Check that v is a sequence (keys 1..n, nothing else) of non-empty
-- strings; `nonempty` also refuses an empty list. Returns a fresh copy so
-- later changes to the caller's table do not change the rule.
local function strlist(builder, n, name, v, nonempty)
  local what = "expected a list of strings"
  if type(v) ~= "table" then argerror(builder, n, name, what, describe(v)) end
  local len, count = #v, 0
  for k in pairs(v) do
    if math_type(k) ~= "integer" or k < 1 then
      argerror(builder, n, name, what, format("a table with key %s",
        type(k) == "string" and format("%q", k)
          or math_type(k) and tostring(k) or type(k)))
    end
    if k > len then argerror(builder, n, name, what, "a table with holes") end
    count = count + 1
  end
  if count ~= len then argerror(builder, n, name, what, "a table with holes") end
  if nonempty and len == 0 then
    argerror(builder, n, name, "expected a non-empty list of strings",
      "an empty table")
  end
  local copy = {}
  for i = 1, len do
    local e = v[i]
    if type(e) ~= "string" or e == "" then
      argerror(builder, n, name,
        format("element [%d] expected a non-empty string", i), describe(e))
    end
    copy[i] = e
  end
  return copy
end

-- Reject arguments beyond the builder's last one (a typo such as
-- rules.email("a@x.com", "b@x.com") is a mistake, not a second rule).
local function maxargs(builder, max, count)
  if count > max then
    raise(format("cfaccess.rules.%s: argument #%d unexpected (takes %s)",
      builder, max + 1, max == 0 and "no arguments"
        or max == 1 and "1 argument" or (max .. " arguments")))
  end
end

-- A builder from one rulespec entry: check each argument, then return
-- `{ [key] = { [args[i]] = argument i, ... } }` (an optional nil argument
-- leaves its field out).
local function builder_of(e)
  local name, key, args = e.builder, e.key, e.args
  local names, optional, list = e.names or args, e.optional or {}, e.list or {}
  local nargs = #args
  local function build(...)
    maxargs(name, nargs, select("#", ...))
    local inner = {}
    for i = 1, nargs do
      local field, v = args[i], (select(i, ...))
      if list[field] then
        inner[field] = strlist(name, i, names[i], v, true)
      elseif v ~= nil or not optional[field] then
        inner[field] = str(name, i, names[i], v)
      end
    end
    return { [key] = inner }
  end
  is_builder[build] = true
  return build
end

-- A list helper: check the list, then one rule of `single` per element.
local function lister_of(l, single)
  local name, argname = l.builder, l.name
  local function build(...)
    maxargs(name, 1, select("#", ...))
    local list = strlist(name, 1, argname, (...), false)
    local out = {}
    for i = 1, #list do out[i] = single(list[i]) end
    return out
  end
  is_builder[build] = true
  return build
end

-- The set of v's elements as a sorted, comma-separated string (for the
-- load-time check's message).
local function setstr(t)
  local s = {}
  for k in pairs(t) do s[#s + 1] = k end
  table.sort(s)
  return "{" .. concat(s, ", ") .. "}"
end

-- Check rulespec against the core's schema: every rule type has exactly one
-- builder, and every builder's arguments are its rule's current fields
-- (legacy ones, accepted only with `legacy = true`, have no argument); an
-- argument the builder may leave out is optional in the schema, and the
-- list arguments are its lists. (A builder may require a field the schema
-- lets the legacy shape omit: saml's identity_provider_id.)
-- A mismatch is a bug in this library: fail at require with what differs.
local function check_spec(schema)
  local function fail(fmt, ...)
    error("cfaccess.rules: rulespec does not match the core's schema: "
      .. format(fmt, ...), 0)
  end
  local by_key = {}
  for _, e in ipairs(spec) do
    if by_key[e.key] then fail("two builders for %q", e.key) end
    by_key[e.key] = e
    local rule = schema.rules[e.key]
    if not rule then fail("%s builds %q, not a rule type", e.builder, e.key) end
    local want, got = {}, {}
    for _, f in ipairs(rule.fields) do
      if not f.legacy then want[f.name] = f end
    end
    for _, a in ipairs(e.args) do got[a] = true end
    for n in pairs(want) do
      if not got[n] then
        fail("%s: args %s, rule %q has fields %s", e.builder, setstr(got),
          e.key, setstr(want))
      end
    end
    for n in pairs(got) do
      local f = want[n]
      if not f then
        fail("%s: args %s, rule %q has fields %s", e.builder, setstr(got),
          e.key, setstr(want))
      end
      if (e.optional or {})[n] and f.required then
        fail("%s: %s is optional here, required in the schema", e.builder, n)
      end
      local t = (e.list or {})[n] and "list" or "string"
      if t ~= f.type then
        fail("%s: %s takes a %s here, the schema's field is a %s", e.builder,
          n, t, tostring(f.type))
      end
    end
  end
  for _, key in ipairs(schema.rule_types) do
    if not by_key[key] then fail("no builder for rule type %q", key) end
  end
end

check_spec(core.schema)

for _, e in ipairs(spec) do M[e.builder] = builder_of(e) end
for _, l in ipairs(spec.lists) do
  M[l.builder] = lister_of(l, M[l.of])
end

return M
