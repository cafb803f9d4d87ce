--- bench/ratelimit.lua: one client process of `make bench-ratelimit`
-- (bench/ratelimit.sh), against bench/rlserver.py.
--   lua5.4 bench/ratelimit.lua BASE TOKEN MODE N CONFIG BUDGET WINDOW PREFIX
-- MODE: seq (create_app_policy in a loop) or batch (client:batch, 8 at once);
-- CONFIG: default (no rate options), explicit (rate_limit = {requests =
-- BUDGET, per = WINDOW}) or off (rate_limit = false). Each create has a
-- name PREFIX-<i>, so the server can count duplicates.
-- Prints "rl <start> <end> <ok> <failed> <first error or ->" (wall clock s).
local core = require("cfaccess.core")
local socket = require("socket")

local base, token, mode, n, config, budget, window, prefix =
  arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5], tonumber(arg[6]), tonumber(arg[7]), arg[8]
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

local opts = { account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = token, base_url = base }
if config == "explicit" then opts.rate_limit = { requests = budget, per = window }
elseif config == "off" then opts.rate_limit = false
elseif config ~= "default" then error("config: default, explicit or off") end
local c = assert(core.client(opts))

local function policy(i)
  return { name = prefix .. "-" .. i, decision = "allow",
           include = { { email = { email = "user" .. i .. "@example.com" } } } }
end

local ok, failed, first = 0, 0, "-"
local t0 = socket.gettime()
if mode == "seq" then
  for i = 1, n do
    local r, err = c:create_app_policy(APP, policy(i))
    if r then ok = ok + 1 else
      failed = failed + 1
      if first == "-" then first = tostring(err) end
    end
  end
else
  local ops = {}
  for i = 1, n do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy(i) } end
  local results = assert(c:batch(ops, { concurrency = 8 }))
  for i = 1, n do
    if results[i].ok then ok = ok + 1 else
      failed = failed + 1
      if first == "-" then first = tostring(results[i].err) end
    end
  end
end
local t1 = socket.gettime()
c:close()
print(string.format("rl %.3f %.3f %d %d %s", t0, t1, ok, failed, (first:gsub("%s+", " "))))
