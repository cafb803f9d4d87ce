--- bench/scale.lua: the scale rows of `make bench` (issue 13, item 5).
-- A benchmark, not a test: it prints, it asserts only that calls succeed.
--   gen(dir)                  write the canned list pages nginx serves
--   run(core, base, gettime, logpath)   print the two scale tables
-- Listing model: three apps hold 1, 100 and 1000 policies; without per_page
-- the server answers pages of 100 (result_info as Cloudflare sends it);
-- with per_page = 1000 one page. nginx logs each list request to logpath,
-- so the request count is what the server saw.
local cjson = require("cjson").new()

local M = {}

local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local SIZES = { 1, 100, 1000 }

local function app_of(n)
  return string.format("00000000-0000-4000-8000-%012d", n)
end

local function listed(i)
  return {
    id = string.format("%08x-0000-4000-8000-000000000000", i), name = "policy " .. i,
    decision = "allow", precedence = i, session_duration = "24h",
    include = { { email = { email = "user" .. i .. "@example.com" } }, { ip = { ip = "192.0.2.0/24" } } },
    exclude = {}, require = { { geo = { country_code = "US" } } },
    approval_required = false, isolation_required = false, purpose_justification_required = false,
    approval_groups = {}, created_at = "2026-11-27T12:00:00Z", updated_at = "2026-11-27T12:00:00Z",
  }
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- Write `<dir>/lists/<app>_<page>_<per_page>.json` for every page the
-- listing rows ask for (per_page empty: the server's default of 100).
function M.gen(dir)
  os.execute("mkdir -p '" .. dir .. "/lists'")
  for _, n in ipairs(SIZES) do
    for _, pp in ipairs({ 100, 1000 }) do
      local pages = math.max(1, (n + pp - 1) // pp)
      for p = 1, pages do
        local result = {}
        for i = (p - 1) * pp + 1, math.min(n, p * pp) do result[#result + 1] = listed(i) end
        local env = {
          success = true, errors = {}, messages = {}, result = result,
          result_info = { page = p, per_page = pp, count = #result, total_count = n, total_pages = pages },
        }
        local name = string.format("%s/lists/%s_%d_%s.json", dir, app_of(n), p, pp == 100 and "" or tostring(pp))
        write(name, cjson.encode(env))
      end
    end
  end
end

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local function lines(path)
  local n, f = 0, io.open(path, "r")
  if not f then return 0 end
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

local function encode_rows(core)
  local clock = os.clock
  print("| rules in include | cfaccess.encode us | cjson.encode us | ratio | cfaccess ns/rule | JSON bytes |")
  print("|------------------|--------------------|-----------------|-------|------------------|------------|")
  for _, k in ipairs({ 1, 10, 100, 1000 }) do
    local inc = {}
    for i = 1, k do inc[i] = { email = { email = "user" .. i .. "@example.com" } } end
    local pol = { name = "scale " .. k, decision = "allow", include = inc }
    local iters = math.max(20, 20000 // k)
    local json = assert(core.encode(pol))
    local function once(fn)
      local c0 = clock()
      for _ = 1, iters do fn(pol) end
      return (clock() - c0) / iters * 1e6
    end
    once(core.encode)
    once(cjson.encode)
    local as, bs = {}, {}
    for r = 1, 7 do   -- alternated, so both share the machine's noise
      as[r] = once(core.encode)
      bs[r] = once(cjson.encode)
    end
    local a, b = median(as), median(bs)
    print(string.format("| %16d | %18.2f | %15.2f | %4.2fx | %16.0f | %10d |", k, a, b, a / b, a * 1000 / k, #json))
  end
end

local function list_rows(core, base, gettime, logpath)
  local c = assert(core.client{ account_id = ACCT, api_token = "bench-token-not-a-secret", base_url = base,
                                rate_limit = false, max_retries = 0 })
  print("| listing                              | requests | median ms | ms per policy | Lua heap held KB |")
  print("|--------------------------------------|----------|-----------|---------------|------------------|")
  for _, n in ipairs(SIZES) do
    for _, pp in ipairs({ false, 1000 }) do
      local app = app_of(n)
      local opts = pp and { per_page = pp } or nil
      assert(c:list_app_policies(app, opts))       -- warm up
      local rounds = n >= 1000 and 5 or 15
      local times = {}
      local before = lines(logpath)
      for r = 1, rounds do
        local t0 = gettime()
        local list = assert(c:list_app_policies(app, opts))
        times[r] = (gettime() - t0) * 1000
        assert(#list == n, "listed " .. #list .. " of " .. n)
      end
      local reqs = (lines(logpath) - before) / rounds
      collectgarbage()
      collectgarbage()
      local h0 = collectgarbage("count")
      local held = assert(c:list_app_policies(app, opts))
      collectgarbage()
      collectgarbage()
      local heap = collectgarbage("count") - h0
      assert(#held == n)
      local ms = median(times)
      print(string.format("| %-36s | %8.1f | %9.2f | %13.3f | %16.0f |",
        string.format("%d policies, %s", n, pp and "per_page=1000" or "server pages of 100"),
        reqs, ms, ms / n, heap))
    end
  end
  c:close()
end

--- Print the encode-per-rule table and the listing table.
function M.run(core, base, gettime, logpath)
  print("scale: validate+encode against the number of rules (one include list of email rules)")
  encode_rows(core)
  print("")
  print("scale: list_app_policies of 1, 100, 1000 policies (all pages followed; heap = the list held)")
  list_rows(core, base, gettime, logpath)
end

return M
