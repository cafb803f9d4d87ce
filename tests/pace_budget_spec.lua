-- The Ratelimit header's budget is used whole: a batch paced by the header
-- alone (default options) sends every request a window allows, so N
-- creates take ceil(N / budget) windows, with no 429. Checked by counting
-- the requests of each window in the mock's log, under the mock's lockout
-- (a fixed window from its first request; 429 once the budget is spent).
-- Counts only: how long the waits last is the benchmark's business
-- (bench/ratelimit.sh, bench/state.lua).
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local tu = require("testutil")

local TOKEN = tu.token("pacebudget")
local ACCT, APP = tu.ACCOUNT, tu.APP

-- Requests per window: a window opens at the first request after the last
-- one ended, as the mock's lockout counts (arrival times, sorted).
local function per_window(log, window)
  local t = {}
  for _, q in ipairs(log) do t[#t + 1] = q.time end
  table.sort(t)
  local counts, start = {}, nil
  for _, x in ipairs(t) do
    if start == nil or x >= start + window then
      start = x
      counts[#counts + 1] = 0
    end
    counts[#counts] = counts[#counts] + 1
  end
  return counts
end

describe("Ratelimit header pacing", function()
  local m
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  -- Answers that come back together are read in slot order, not in the
  -- order the server counted them, and some of the requests still out were
  -- counted already: an estimate taken then is low. It must not stick for
  -- the rest of the window (it did: concurrency - 1 of each window's
  -- budget went unused, and 3 windows of creates took 4).
  for _, conc in ipairs{ 4, 8 } do
    it("uses every request of each window at concurrency " .. conc .. " (3 windows for 3 budgets, 0 429s)", function()
      local BUDGET, WINDOW, WINDOWS = 12, 2, 3
      local N = BUDGET * WINDOWS
      local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url })
      m:lockout(BUDGET, WINDOW)
      m:config{ latency = 0.05 }   -- a wave's answers arrive together
      local res = assert(c:batch(tu.creates(N, "pb" .. conc, APP, tu.everyone_policy), { concurrency = conc }))
      for i = 1, N do assert.is_true(res[i].ok, "op " .. i .. ": " .. tostring(res[i].err)) end
      c:close()
      local log = m:log()
      assert.equal(N, #log)                 -- none sent twice
      assert.equal(0, m:count_status(429))
      assert.same({ BUDGET, BUDGET, BUDGET }, per_window(log, WINDOW))
      assert.equal(N, #m:state())
    end)
  end
end)
