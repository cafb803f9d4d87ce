--- Random Access policies for property tests (tests/property_spec.lua).
-- Deterministic for a given math.randomseed: the same seed gives the same
-- policies in any process, which is what the cross-process byte-identity
-- check relies on. Every field and every rule type of the core's schema
-- (`cfaccess.core.schema.rule_types`) are generated, per policy kind.
local M = {}

local random, floor, concat = math.random, math.floor, table.concat

local function pick(t) return t[random(#t)] end

local function hex(n)
  local t = {}
  for i = 1, n do t[i] = string.format("%x", random(0, 15)) end
  return concat(t)
end

function M.uuid()
  return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-" .. pick{ "8", "9", "a", "b" } ..
    hex(3) .. "-" .. hex(12)
end

local WORDS = { "alpha", "beta", "ops", "dev", "team", "x", "grüße", "日本", "a\"b", "back\\slash",
                "tab\tin", "new\nline", "ctl\1", "emoji😀", "" }

local function text(allow_empty)
  local t = {}
  for i = 1, random(1, 4) do t[i] = pick(WORDS) end
  local s = concat(t, " ")
  if s == "" and not allow_empty then s = "p" end
  return s
end

local function label() return pick{ "a", "b1", "ex-ample", "z9z" } .. hex(2) end
local function domain() return label() .. "." .. pick{ "com", "example.com", "co.uk", "io" } end
local function email() return pick{ "alice", "bob.smith", "ops+tag", "u_1" } .. "@" .. domain() end

local function ip()
  if random() < 0.6 then
    local bits = random(0, 32)
    local a = { random(0, 255), random(0, 255), random(0, 255), random(0, 255) }
    -- clear host bits so the value is a network address
    local v = ((a[1] * 256 + a[2]) * 256 + a[3]) * 256 + a[4]
    v = bits == 0 and 0 or floor(v / 2 ^ (32 - bits)) * floor(2 ^ (32 - bits))
    local s = string.format("%d.%d.%d.%d", floor(v / 16777216) % 256, floor(v / 65536) % 256,
                            floor(v / 256) % 256, v % 256)
    if bits == 32 and random() < 0.5 then return s end
    return s .. "/" .. bits
  end
  return pick{ "2400:cb00:21:10a::/64", "::1", "::/0", "2001:db8::/32", "fe80::/10",
               "2001:db8:0:0:0:0:0:1/128" }
end

local DURATION = { "24h", "30m", "300ms", "2h45m", "1.5h", "10s", "1h0m0s", "0s", "90m", "1µs", "15ns", "720h" }
local MFA_DURATION = { "5m", "24h", "0m", "720h", "90m", "1h" }
local COUNTRIES = { "US", "GB", "DE", "FR", "JP", "BR", "IN", "CA", "AU", "NL", "CH", "SG" }
local AMR = { "mfa", "pwd", "otp", "hwk", "swk", "sms", "face", "fpt" }

-- rule type -> function(decision) returning the inner object
M.RULES = {
  email = function() return { email = email() } end,
  email_list = function() return { id = M.uuid() } end,
  email_domain = function() return { domain = domain() } end,
  everyone = function() return {} end,
  ip = function() return { ip = ip() } end,
  ip_list = function() return { id = M.uuid() } end,
  certificate = function() return {} end,
  common_name = function() return { common_name = domain() } end,
  group = function() return { id = M.uuid() } end,
  azureAD = function() return { id = M.uuid(), identity_provider_id = M.uuid() } end,
  ["github-organization"] = function()
    local r = { name = label(), identity_provider_id = M.uuid() }
    if random() < 0.5 then r.team = label() end
    return r
  end,
  gsuite = function() return { email = email(), identity_provider_id = M.uuid() } end,
  okta = function() return { name = text(), identity_provider_id = M.uuid() } end,
  saml = function() return { attribute_name = label(), attribute_value = text(), identity_provider_id = M.uuid() } end,
  oidc = function() return { claim_name = label(), claim_value = text(), identity_provider_id = M.uuid() } end,
  auth_context = function() return { id = M.uuid(), ac_id = label(), identity_provider_id = M.uuid() } end,
  login_method = function() return { id = M.uuid() } end,
  auth_method = function() return { auth_method = pick(AMR) } end,
  service_token = function() return { token_id = M.uuid() } end,
  any_valid_service_token = function() return {} end,
  external_evaluation = function()
    return { evaluate_url = "https://" .. domain() .. "/eval", keys_url = "https://" .. domain() .. "/keys" }
  end,
  geo = function() return { country_code = pick(COUNTRIES) } end,
  device_posture = function() return { integration_uid = M.uuid() } end,
  linked_app_token = function() return { app_uid = M.uuid() } end,
  user_risk_score = function()
    local all, out = { "low", "medium", "high", "unscored" }, {}
    for _, v in ipairs(all) do if random() < 0.5 then out[#out + 1] = v end end
    if #out == 0 then out[1] = pick(all) end
    return { user_risk_score = out }
  end,
  cloudflare_account_member = function()
    if random() < 0.3 then return {} end
    return { account_id = hex(32) }
  end,
}
-- The rule types come from the core's schema (the one list of them), in
-- schema order; every one must have a generator above, and nothing else.
M.RULE_NAMES = {}
for i, k in ipairs(require("cfaccess.core").schema.rule_types) do
  M.RULE_NAMES[i] = assert(M.RULES[k] and k, "policygen: no generator for rule type " .. k)
end
for k in pairs(M.RULES) do
  assert(require("cfaccess.core").schema.rules[k], "policygen: " .. k .. " is not a rule type")
end

local function rule(decision)
  local name
  repeat name = pick(M.RULE_NAMES)
  until name ~= "linked_app_token" or decision == "non_identity" or decision == "bypass"
  return { [name] = M.RULES[name]() }
end

local function rules(decision, min)
  local t = {}
  for i = 1, random(min, 4) do t[i] = rule(decision) end
  return t
end

local function subset(all)
  local out = {}
  for _, v in ipairs(all) do if random() < 0.5 then out[#out + 1] = v end end
  if #out == 0 then out[1] = pick(all) end
  return out
end

--- A random valid policy for kind ("app", "zone", "reusable", "infrastructure").
function M.policy(kind)
  local infra = kind == "infrastructure"
  local decision = infra and "allow" or pick{ "allow", "deny", "non_identity", "bypass" }
  local p = { name = text(), decision = decision, include = rules(decision, 1) }
  local function maybe(f) return random() < 0.5 and f() or nil end
  p.exclude = maybe(function() return rules(decision, 1) end)
  p.require = maybe(function() return rules(decision, 1) end)
  if infra then
    p.mfa_config = maybe(function()
      return { allowed_authenticators = subset{ "piv_key", "ssh_fido2_key" } } end)
    p.connection_rules = maybe(function()
      return { ssh = { usernames = { "root", label() }, allow_email_alias = random() < 0.5 } } end)
    return p
  end
  if kind ~= "reusable" then p.precedence = maybe(function() return random(1, 10000) end) end
  p.approval_required = maybe(function() return random() < 0.5 end)
  p.isolation_required = maybe(function() return random() < 0.5 end)
  p.purpose_justification_required = maybe(function() return random() < 0.5 end)
  p.purpose_justification_prompt = maybe(function() return text(true) end)
  p.approval_groups = maybe(function()
    local g = {}
    for i = 1, random(1, 3) do
      g[i] = { approvals_needed = random(0, 5) }
      if random() < 0.5 then g[i].email_addresses = { email(), email() } end
      if random() < 0.5 then g[i].email_list_uuid = M.uuid() end
    end
    return g
  end)
  if kind ~= "zone" then
    p.session_duration = maybe(function() return pick(DURATION) end)
    p.mfa_config = maybe(function()
      local m = { allowed_authenticators = subset{ "totp", "biometrics", "security_key" } }
      if random() < 0.5 then m.mfa_disabled = random() < 0.5 end
      if random() < 0.5 then m.session_duration = pick(MFA_DURATION) end
      return m
    end)
    p.connection_rules = maybe(function()
      return { rdp = { allowed_clipboard_local_to_remote_formats = { "text" },
                       allowed_clipboard_remote_to_local_formats = subset{ "text", "file" } } }
    end)
  end
  return p
end

--- A copy of a value built by inserting keys in a random order (same
-- contents, different table internals).
function M.shuffled_copy(v)
  if type(v) ~= "table" then return v end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  for i = #keys, 2, -1 do
    local j = random(i)
    keys[i], keys[j] = keys[j], keys[i]
  end
  local out = {}
  for _, k in ipairs(keys) do out[k] = M.shuffled_copy(v[k]) end
  return out
end

return M
