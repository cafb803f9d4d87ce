--- Benchmark: cfaccess.core.encode (validate + canonical JSON) against a
-- bare cjson.encode of the same table, side by side in one run.
-- Run: lua5.4 bench/encode.lua [rounds] [iterations]
-- (LUA_PATH/LUA_CPATH set as tests/run.sh does). Target: ratio <= 1.5.
local core = require("cfaccess.core")
local cjson = require("cjson").new()

local clock = os.clock
local rounds = tonumber(arg and arg[1]) or 7
local iters = tonumber(arg and arg[2]) or 20000

local UUID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

-- A realistic policy: 3 emails, an email domain, an exclude, geo and
-- auth_method requires, approval groups, session_duration.
local policy = {
  name = "Engineering staff with MFA",
  decision = "allow",
  include = {
    { email = { email = "alice@example.com" } },
    { email = { email = "bob@example.com" } },
    { email = { email = "carol.smith@example.com" } },
    { email_domain = { domain = "eng.example.com" } },
  },
  exclude = { { email = { email = "mallory@example.com" } } },
  require = {
    { geo = { country_code = "US" } },
    { auth_method = { auth_method = "mfa" } },
  },
  precedence = 1,
  session_duration = "12h",
  approval_required = true,
  approval_groups = {
    { approvals_needed = 1, email_addresses = { "lead@example.com", "cto@example.com" } },
    { approvals_needed = 2, email_list_uuid = UUID },
  },
  purpose_justification_required = true,
  purpose_justification_prompt = "Which ticket is this for?",
}

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local function time(fn)
  local t0 = clock()
  for _ = 1, iters do fn(policy) end
  return (clock() - t0) / iters * 1e6   -- microseconds per call
end

local ours = assert(core.encode(policy))
local theirs = cjson.encode(policy)
print(("policy JSON: %d bytes (cfaccess), %d bytes (cjson)"):format(#ours, #theirs))
print(("%d rounds x %d iterations"):format(rounds, iters))

-- warm up both
time(core.encode)
time(cjson.encode)

local a, b = {}, {}
for r = 1, rounds do
  a[r] = time(core.encode)
  b[r] = time(cjson.encode)
end
local amin, bmin = math.min(table.unpack(a)), math.min(table.unpack(b))
local amed, bmed = median(a), median(b)
print(("%-28s min %7.3f us  median %7.3f us"):format("cfaccess.core.encode", amin, amed))
print(("%-28s min %7.3f us  median %7.3f us"):format("cjson.encode", bmin, bmed))
print(("ratio (cfaccess / cjson): min %.2f  median %.2f  (target <= 1.5)"):format(amin / bmin, amed / bmed))

local vs = {}
for r = 1, rounds do vs[r] = time(core.validate) end
print(("%-28s min %7.3f us  median %7.3f us"):format("cfaccess.core.validate", math.min(table.unpack(vs)), median(vs)))
