--- bench/client.lua: sequential create_app_policy over one cfaccess client
-- (rate_limit = false, so only the client's own cost is measured).
--   lua5.4 bench/client.lua BASE_URL N [BODY_OUT]
-- prints: client <N> requests <seconds> s <req/s> req/s <cpu-us> us/req
-- With BODY_OUT it only writes the canonical JSON body of the benchmark
-- policy to that file (so bench/floor.c sends the very same bytes).
local cfaccess = require("cfaccess.core")
local socket = require("socket")

local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

local policy = {
  name = "bench", decision = "allow", precedence = 1, session_duration = "24h",
  include = { { email = { email = "alice@example.com" } }, { ip = { ip = "192.0.2.0/24" } } },
  require = { { geo = { country_code = "US" } } },
}

local base_url, n, body_out = arg[1], tonumber(arg[2] or ""), arg[3]
assert(base_url and n, "usage: lua5.4 bench/client.lua BASE_URL N [BODY_OUT]")

if body_out then
  local json = assert(cfaccess.encode(policy))
  local f = assert(io.open(body_out, "wb"))
  f:write(json)
  f:close()
  return
end

local c = assert(cfaccess.client{ account_id = ACCT, api_token = "bench-token",
                                  base_url = base_url, rate_limit = false, max_retries = 0 })
assert(c:create_app_policy(APP, policy))       -- warm up: connection open
local t0, c0 = socket.gettime(), os.clock()
for i = 1, n do
  local r, err = c:create_app_policy(APP, policy)
  if not r then error("request " .. i .. " failed: " .. tostring(err)) end
end
local t, cpu = socket.gettime() - t0, os.clock() - c0
c:close()
print(string.format("client %d requests %.3f s %.0f req/s %.1f us/req", n, t, n / t, cpu * 1e6 / n))
