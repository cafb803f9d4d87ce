--- bench/client.lua: the Lua side of `make bench` (bench/run.sh).
--   lua5.4 bench/client.lua body OUT            write the benchmark body's canonical JSON
--   lua5.4 bench/client.lua encode ITERS        validate+encode vs cjson.encode vs plain Lua
--   lua5.4 bench/client.lua seq BASE N          sequential create_app_policy
--   lua5.4 bench/client.lua batch BASE N CONC   client:batch of N creates at CONC
--   lua5.4 bench/client.lua curlcli URL BODY N  the curl command, spawned per request
--   lua5.4 bench/client.lua socket URL N        LuaSocket socket.http + cjson.encode
--   lua5.4 bench/client.lua rss BASE N          VmRSS before/after a batch of N ops
--   lua5.4 bench/client.lua hfloor URL BODY N [CONC]   the honest floor (bench/hfloor.c,
--                                               path in $HFLOOR_SO): libcurl + cjson.decode
--   lua5.4 bench/client.lua scalegen DIR        write the list pages of the scale rows
--   lua5.4 bench/client.lua scale BASE LOG      encode cost per rule; listing 1/100/1000
-- Each prints one line "<label> <value> <unit> <cpu-us-per-op>" per result
-- (rss: "rss_growth <KB> KB <before KB> <after KB> <held KB> <heap KB>").
local cfaccess = require("cfaccess.core")
local socket = require("socket")
local cjson = require("cjson").new()

local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

-- The request body of the HTTP benchmarks (nginx's canned answer echoes it).
local policy = {
  name = "bench", decision = "allow", precedence = 1, session_duration = "24h",
  include = { { email = { email = "alice@example.com" } }, { ip = { ip = "192.0.2.0/24" } } },
  require = { { geo = { country_code = "US" } } },
}

-- A realistic policy for the encoding benchmark: 3 emails, a domain, an
-- exclude, geo and auth_method requires, approval groups, a duration.
local big = {
  name = "Engineering staff with MFA", decision = "allow",
  include = {
    { email = { email = "alice@example.com" } }, { email = { email = "bob@example.com" } },
    { email = { email = "carol.smith@example.com" } }, { email_domain = { domain = "eng.example.com" } },
  },
  exclude = { { email = { email = "mallory@example.com" } } },
  require = { { geo = { country_code = "US" } }, { auth_method = { auth_method = "mfa" } } },
  precedence = 1, session_duration = "12h", approval_required = true,
  approval_groups = {
    { approvals_needed = 1, email_addresses = { "lead@example.com", "cto@example.com" } },
    { approvals_needed = 2, email_list_uuid = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415" },
  },
  purpose_justification_required = true,
  purpose_justification_prompt = "Which ticket is this for?",
}

-- CPU seconds of this process and its finished children (/proc, 10 ms ticks).
local function cpu_all()
  local f = io.open("/proc/self/stat", "r")
  if not f then return os.clock() end
  local s = f:read("a")
  f:close()
  local rest = s:match("^%d+ %b() (.*)$")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  -- fields[12..15] = utime, stime, cutime, cstime (stat fields 14..17)
  return (fields[12] + fields[13] + fields[14] + fields[15]) / 100
end

local function rss_kb()
  local f = assert(io.open("/proc/self/status", "r"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function report(label, n, t, cpu)
  print(string.format("%s %.1f req/s %.1f", label, n / t, cpu * 1e6 / n))
end

local function client(base)
  return assert(cfaccess.client{ account_id = ACCT, api_token = "bench-token-not-a-secret",
                                 base_url = base, rate_limit = false, max_retries = 0 })
end

local function creates(n)
  local ops = {}
  for i = 1, n do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy } end
  return ops
end

local mode = arg[1]

if mode == "body" then
  local f = assert(io.open(arg[2], "wb"))
  f:write(assert(cfaccess.encode(policy)))
  f:close()

elseif mode == "encode" then
  local plain = require("plain_validate")
  local iters = tonumber(arg[2]) or 20000
  assert(plain.encode(big) and cfaccess.encode(big))
  local function time(label, fn)
    for _ = 1, iters // 10 do fn(big) end          -- warm up
    local c0 = os.clock()
    for _ = 1, iters do fn(big) end
    local us = (os.clock() - c0) / iters * 1e6
    print(string.format("%s %.3f us/op %.3f", label, us, us))
  end
  time("encode_cfaccess", cfaccess.encode)
  time("encode_cjson", cjson.encode)
  time("encode_plain", plain.encode)

elseif mode == "seq" then
  local c = client(arg[2])
  local n = tonumber(arg[3])
  assert(c:create_app_policy(APP, policy))        -- warm up: connection open
  local t0, c0 = socket.gettime(), os.clock()
  for i = 1, n do
    local r, err = c:create_app_policy(APP, policy)
    if not r then error("request " .. i .. " failed: " .. tostring(err)) end
  end
  report("seq", n, socket.gettime() - t0, os.clock() - c0)
  c:close()

elseif mode == "batch" then
  local c = client(arg[2])
  local n, conc = tonumber(arg[3]), tonumber(arg[4])
  local ops = creates(n)
  assert(c:batch(creates(conc), { concurrency = conc }))   -- warm up: connections
  local t0, c0 = socket.gettime(), os.clock()
  local results = assert(c:batch(ops, { concurrency = conc }))
  local t, cpu = socket.gettime() - t0, os.clock() - c0
  for i = 1, n do
    if not results[i].ok then error("op " .. i .. " failed: " .. tostring(results[i].err)) end
  end
  report("batch", n, t, cpu)
  c:close()

elseif mode == "curlcli" then
  -- what a shell-minded user does: build the JSON, spawn curl per request
  local url, bodyfile, n = arg[2], arg[3], tonumber(arg[4])
  local cmd = "curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' "
    .. "-H 'Authorization: Bearer bench-token-not-a-secret' --data-binary @" .. bodyfile .. " '" .. url .. "'"
  local t0, c0 = socket.gettime(), cpu_all()
  for i = 1, n do
    local p = assert(io.popen(cmd, "r"))
    local code = p:read("a")
    p:close()
    if code ~= "201" then error("curl request " .. i .. ": HTTP " .. code) end
  end
  report("curl_cli", n, socket.gettime() - t0, cpu_all() - c0)

elseif mode == "socket" then
  local http = require("socket.http")
  local ltn12 = require("ltn12")
  local url, n = arg[2], tonumber(arg[3])
  local t0, c0 = socket.gettime(), os.clock()
  for i = 1, n do
    local body = cjson.encode(policy)
    local chunks = {}
    local ok, code = http.request{
      url = url, method = "POST", source = ltn12.source.string(body), sink = ltn12.sink.table(chunks),
      headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body),
                  authorization = "Bearer bench-token-not-a-secret" },
    }
    if not ok or code ~= 201 then error("socket.http request " .. i .. ": " .. tostring(code)) end
    local r = cjson.decode(table.concat(chunks))
    assert(r.success)
  end
  report("luasocket", n, socket.gettime() - t0, os.clock() - c0)

elseif mode == "rss" then
  -- A: n creates in batches of 1,000, each batch's results dropped: what
  --    the library itself keeps (target: under 5 MB of RSS growth);
  -- B: one batch of n deletes with every result held: the results are the
  --    caller's memory, shown next to the Lua heap they take.
  local c = client(arg[2])
  local n = tonumber(arg[3])
  assert(c:batch(creates(8), { concurrency = 8 }))       -- warm up
  local chunk = creates(1000)
  collectgarbage()
  collectgarbage()
  local before = rss_kb()
  for _ = 1, n // 1000 do
    local results = assert(c:batch(chunk, { concurrency = 8 }))
    assert(results[1000].ok and results[1].ok)
  end
  collectgarbage()
  collectgarbage()
  local after = rss_kb()
  local ops = {}
  for i = 1, n do
    ops[i] = { op = "delete_app_policy", app_id = APP, policy_id = APP }
  end
  collectgarbage()
  collectgarbage()
  local before_b, heap_b = rss_kb(), collectgarbage("count")
  local results = assert(c:batch(ops, { concurrency = 8 }))
  for i = 1, n, 997 do assert(results[i].ok) end
  collectgarbage()
  collectgarbage()
  local held = rss_kb() - before_b
  local heap = math.floor(collectgarbage("count") - heap_b)
  print(string.format("rss_growth %d KB %d %d %d %d", after - before, before, after, held, heap))
  c:close()

elseif mode == "hfloor" then
  -- one reused handle (CONC absent) or curl multi with CONC in flight, each
  -- response decoded by the same lua-cjson into Lua tables
  local hf = assert(package.loadlib(assert(os.getenv("HFLOOR_SO"), "HFLOOR_SO"), "luaopen_hfloor"))()
  local url, n, conc = arg[2], tonumber(arg[4]), tonumber(arg[5])
  local f = assert(io.open(arg[3], "rb"))
  local body = f:read("a")
  f:close()
  local decode = cjson.decode
  hf.seq(url, body, 8, decode)                     -- warm up: connection open
  if conc then
    local t, cpu = hf.multi(url, body, n, conc, decode)
    report("hfloor_multi", n, t, cpu)
  else
    local t, cpu = hf.seq(url, body, n, decode)
    report("hfloor", n, t, cpu)
  end

elseif mode == "scalegen" then
  require("scale").gen(arg[2])

elseif mode == "scale" then
  require("scale").run(cfaccess, arg[2], socket.gettime, arg[3])

else
  error("usage: lua5.4 bench/client.lua body|encode|seq|batch|curlcli|socket|rss|hfloor|scale ...")
end
