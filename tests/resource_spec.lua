-- Resource checks (issue 4, item 5): many encodes and many requests in one
-- process leave RSS and open file descriptors flat; clients release their
-- handles under close, __close and __gc. Figures are printed as TAP
-- comments. The default suite runs a short version; the full one
-- (100,000 encodes, 20,000 requests) runs with `make resource`
-- (CFACCESS_RESOURCE=1). Growth limits are generous: they catch a leak per
-- call (100,000 x even 100 bytes = 10 MB), not allocator noise.
local core = require("cfaccess.core")
local mockctl = require("mockctl")

local FULL = os.getenv("CFACCESS_RESOURCE") == "1"
-- Under ASan (its quarantine holds freed memory) or valgrind, RSS says
-- nothing about leaks; those tools check leaks themselves. Print only.
local RSS_MEANINGFUL = not (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true)
  and os.getenv("CFACCESS_VALGRIND") ~= "1"
local N_ENCODE = FULL and 100000 or 10000
local N_REQUEST = FULL and 20000 or 1000
local tu = require("testutil")
local TOKEN = tu.token("resource")
local ACCT, APP = tu.ACCOUNT, tu.APP

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function own_pid()                    -- /proc/self in a shell is the shell
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return pid
end

local function fd_count()                   -- open descriptors of this process
  local p = assert(io.popen("ls /proc/" .. own_pid() .. "/fd | wc -l"))
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

local function note(fmt, ...) print(string.format("# resource: " .. fmt, ...)) end

describe("resource", function()
  -- In a child interpreter: the heap this process inherits from the specs
  -- that ran before (one encodes 20 MB, which moves glibc's mmap
  -- threshold) must not decide whether this passes.
  it(N_ENCODE .. " encodes (and as many failed validations) keep RSS flat", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
local core = require("cfaccess.core")
local N = %d
local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%%s*(%%d+)"))
end
local policy = require("testutil").busy_policy
local warm = N // 10
local bad = { name = 1, decision = "nope", include = { { bogus = {} } }, sesion_duration = "x" }
local before
for i = 1, N do
  if i == warm then collectgarbage(); collectgarbage(); before = rss_kb() end
  assert(core.encode(policy(i)))
  local ok, err = core.validate(bad)
  assert(ok == nil and err.kind == "invalid")
end
collectgarbage(); collectgarbage()
io.write(before, " ", rss_kb(), "\n")
]], N_ENCODE))
    f:close()
    local p = assert(io.popen((os.getenv("LUA") or "lua5.4") .. " " .. mockctl.shell_quote(script) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(script)
    local before, after = out:match("^(%d+) (%d+)\n$")
    assert(before, "the child failed: " .. out)
    before, after = tonumber(before), tonumber(after)
    note("%d encodes + %d invalid validations: RSS %d kB after warm-up, %d kB after (%+d kB)",
      N_ENCODE, N_ENCODE, before, after, after - before)
    if RSS_MEANINGFUL then
      assert.is_true(after - before < 8 * 1024, "RSS grew by " .. (after - before) .. " kB")
    end
  end)

  describe("against the mock", function()
    local m
    setup(function()
      m = mockctl.start{ token = TOKEN }
      m:app("accounts", ACCT, APP)
    end)
    teardown(function()
      if m then m:stop() end
    end)

    local function client(extra)
      local o = { account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                  rate_limit = false, max_retries = 2, timeout = 10 }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(core.client(o))
    end

    it(N_REQUEST .. " requests on one client keep RSS and descriptors flat", function()
      local c = client()
      local n, before, fds_before = 0, nil, nil
      local warm = N_REQUEST // 10
      local p = { name = "cycle", decision = "allow", include = { { everyone = {} } } }
      while n < N_REQUEST do
        if before == nil and n >= warm then
          collectgarbage(); collectgarbage()
          before, fds_before = rss_kb(), fd_count()
        end
        local r = assert(c:create_app_policy(APP, p))
        assert(c:get_app_policy(APP, r.id))
        assert(c:update_app_policy(APP, r.id, p))
        assert(c:delete_app_policy(APP, r.id))
        n = n + 4
      end
      collectgarbage(); collectgarbage()
      local after, fds_after = rss_kb(), fd_count()
      note("%d requests on one client: RSS %d kB after warm-up, %d kB after (%+d kB); fds %d -> %d",
        n, before, after, after - before, fds_before, fds_after)
      c:close()
      if RSS_MEANINGFUL then
        assert.is_true(after - before < 8 * 1024, "RSS grew by " .. (after - before) .. " kB")
      end
      assert.is_true(fds_after <= fds_before + 2, "descriptors " .. fds_before .. " -> " .. fds_after)
    end)

    it("clients release their handles under close, <close> and __gc", function()
      collectgarbage(); collectgarbage()
      local fds0 = fd_count()
      for i = 1, 50 do
        local c = client()
        assert(c:list_app_policies(APP))                  -- opens a connection
        if i % 3 == 0 then c:close() end
        if i % 3 == 1 then
          local d <close> = client()
          assert(d:list_app_policies(APP))
        end
      end
      collectgarbage(); collectgarbage()
      local fds1 = fd_count()
      note("50 clients (+17 <close>): fds %d before, %d after collection", fds0, fds1)
      assert.is_true(fds1 <= fds0 + 2, "descriptors " .. fds0 .. " -> " .. fds1)
      local c = client()
      c:close()
      assert.has_error(function() c:list_app_policies(APP) end)
      c:close()                                           -- idempotent
      assert.truthy(tostring(c):find("closed", 1, true))
    end)
  end)
end)
