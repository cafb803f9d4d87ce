-- Pacing under concurrency, checked with the request timestamps the mock
-- records: one pacer governs every start of a batch, and a 429 with
-- Retry-After pauses the whole batch, not just the op that got it.
-- Every assertion holds however fast or slow the machine is: a bound the
-- design guarantees (the client counts a request from its start until
-- `per` after its answer, so no server-side window can hold more), or a
-- count. How close the pacer gets to its limit, and how long the pauses
-- last, are measured by the benchmark (bench/), not asserted here.
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local tu = require("testutil")

local TOKEN = tu.token("pacing")
local ACCT, APP = tu.ACCOUNT, tu.APP

local function creates(n, prefix) return tu.creates(n, prefix, APP, tu.everyone_policy) end

-- Timestamps (seconds, server clock) of the API requests in the log.
local function times(log)
  local t = {}
  for _, q in ipairs(log) do t[#t + 1] = q.time end
  table.sort(t)
  return t
end

-- The most requests that arrived within `per` seconds of one another.
local function most_in_window(t, per)
  local most = 0
  for i = 1, #t do
    local j = i
    while j <= #t and t[j] < t[i] + per do j = j + 1 end
    if j - i > most then most = j - i end
  end
  return most
end

describe("pacing under concurrency", function()
  local m
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  -- (a scaled-down limit of 4 requests per 0.4 s stands for Cloudflare's
  -- 1200 per 300 s: the bound does not depend on the scale; 14 ops need
  -- four windows)
  it("never lets more than the limit arrive in any window (server timestamps)", function()
    local LIMIT, PER, N = 4, 0.4, 14
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  rate_limit = { requests = LIMIT, per = PER } })
    local results = assert(c:batch(creates(N, "w"), { concurrency = 8 }))
    for i = 1, N do assert.is_true(results[i].ok, "op " .. i) end
    local t = times(m:log())
    assert.equal(N, #t)
    local most = most_in_window(t, PER)
    assert.truthy(most <= LIMIT, "max in a " .. PER .. " s window: " .. most)
    c:close()
  end)

  it("pauses the whole batch for a 429's Retry-After", function()
    local RA = 0.5                         -- retry-after-ms: 500 (Retry-After: 1 too)
    local CONC = 4
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  rate_limit = false, max_retries = 2 })
    -- the 5th request gets 429; the others go through
    m:fault{ action = "headers", method = "POST", times = 4 }
    m:fault{ action = "rate_limit", retry_after = 1, retry_after_ms = RA * 1000, method = "POST" }
    local results = assert(c:batch(creates(40, "r"), { concurrency = CONC }))
    for i = 1, 40 do assert.is_true(results[i].ok, "op " .. i) end
    local log = m:log()
    assert.equal(41, #log)                 -- 40 creates, one of them twice
    local t429, n429 = nil, 0
    for _, q in ipairs(log) do
      if q.status == 429 then t429, n429 = q.time, n429 + 1 end
    end
    assert.equal(1, n429)
    -- Every request the client starts after the 429 reached it starts at
    -- least RA later, so it arrives after t429 + RA. Inside the pause only
    -- the requests already in flight may arrive: at most CONC - 1, plus any
    -- that made a whole round trip while the mock was still writing the
    -- 429 (none unless the machine stalls that thread; hence 2 * CONC).
    -- A pause of the one op alone would let the other slots finish the
    -- batch's remaining 35 ops in it.
    local during = 0
    for _, q in ipairs(log) do
      if q.time > t429 and q.time < t429 + RA - 0.01 then during = during + 1 end
    end
    assert.truthy(during <= 2 * CONC, "requests during the pause: " .. during)
    c:close()
  end)

  it("holds every op while the Ratelimit header says nothing is left, counting its own in flight", function()
    local WAIT, CONC = 1, 6
    local lines = {}
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  on_log = function(l, msg) lines[#lines + 1] = l .. " " .. msg end })
    -- the first wave's answers say: nothing left for WAIT s (r=0;t=1)
    m:fault{ action = "headers", method = "POST", times = CONC, headers = { Ratelimit = '"default";r=0;t=1' } }
    local results = assert(c:batch(creates(12, "h"), { concurrency = CONC }))
    for i = 1, 12 do assert.is_true(results[i].ok) end
    local t = times(m:log())
    assert.equal(12, #t)
    -- Only the first wave (CONC requests) starts before any answer; every
    -- later start waits WAIT after an answer, which came after t[1].
    local early = 0
    for i = 1, #t do
      if t[i] < t[1] + WAIT - 0.01 then early = early + 1 end
    end
    assert.truthy(early <= CONC, "requests before the header's wait was over: " .. early)
    assert.truthy(table.concat(lines, "\n"):find("pacing", 1, true))
    c:close()
  end)
end)
