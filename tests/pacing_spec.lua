-- Pacing under concurrency, checked with the request timestamps the mock
-- records: one pacer governs every start of a batch (a scaled-down limit
-- of 20 requests per 2 s stands for Cloudflare's 1200 per 300 s), and a
-- 429 with Retry-After pauses the whole batch, not just the op that got it.
local core = require("cfaccess.core")
local mockctl = require("mockctl")

local TOKEN = "t0k3n-pacing-spec-S3CRET"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"

local function policy(name)
  return { name = name, decision = "allow", include = { { everyone = {} } } }
end

local function creates(n, prefix)
  local ops = {}
  for i = 1, n do ops[i] = { op = "create_app_policy", app_id = APP, policy = policy(prefix .. i) } end
  return ops
end

-- Timestamps (seconds, server clock) of the API requests in the log.
local function times(log)
  local t = {}
  for _, q in ipairs(log) do t[#t + 1] = q.time end
  table.sort(t)
  return t
end

describe("pacing under concurrency", function()
  local m
  local hooks = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)

  it("never exceeds 20 requests in any 2 s window (server timestamps)", function()
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  rate_limit = { requests = 20, per = 2 } })
    local results = assert(c:batch(creates(50, "w"), { concurrency = 8 }))
    for i = 1, 50 do assert.is_true(results[i].ok) end
    local t = times(m:log())
    assert.equal(50, #t)
    -- sliding window: for each request, how many start within 2 s of it
    local most = 0
    for i = 1, #t do
      local j = i
      while j <= #t and t[j] < t[i] + 2 do j = j + 1 end
      if j - i > most then most = j - i end
    end
    assert.truthy(most <= 20, "max in a 2 s window: " .. most)
    -- and the limit was actually reached (the pacer, not luck, held it)
    assert.equal(20, most)
    c:close()
  end)

  it("pauses the whole batch for a 429's Retry-After", function()
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  rate_limit = false, max_retries = 2 })
    -- the 5th request gets 429 Retry-After: 1; the others go through
    m:fault{ action = "headers", method = "POST", times = 4 }
    m:fault{ action = "rate_limit", retry_after = 1, method = "POST" }
    local results = assert(c:batch(creates(40, "r"), { concurrency = 4 }))
    for i = 1, 40 do assert.is_true(results[i].ok, "op " .. i) end
    local log = m:log()
    local t429
    for _, q in ipairs(log) do
      if q.status == 429 then t429 = q.time end
    end
    if t429 == nil then   -- the log may not carry statuses: the 5th request
      t429 = times(log)[5]
    end
    assert.equal(41, #log)
    -- requests already in flight when the 429 came back may land just after
    -- it; after that nothing may start until Retry-After has passed
    local during = 0
    for _, q in ipairs(log) do
      if q.time > t429 + 0.15 and q.time < t429 + 0.95 then during = during + 1 end
    end
    assert.equal(0, during)
    local after = 0
    for _, q in ipairs(log) do
      if q.time >= t429 + 0.95 then after = after + 1 end
    end
    -- the other slots keep finishing ops until the 429 reaches the client
    -- (7-13 requests here, more on a loaded machine); at least half of the
    -- batch must still have been held back by the pause
    assert.truthy(after >= 20, "requests after the pause: " .. after)
    c:close()
  end)

  it("holds every op while the Ratelimit header says nothing is left, counting its own in flight", function()
    local lines = {}
    local c = assert(core.client{ account_id = ACCT, api_token = TOKEN, base_url = m.base_url,
                                  on_log = function(l, msg) lines[#lines + 1] = l .. " " .. msg end })
    -- the first wave's answers say: nothing left for 1 s
    m:fault{ action = "headers", method = "POST", times = 6, headers = { Ratelimit = '"default";r=0;t=1' } }
    local results = assert(c:batch(creates(12, "h"), { concurrency = 6 }))
    for i = 1, 12 do assert.is_true(results[i].ok) end
    local t = times(m:log())
    assert.equal(12, #t)
    -- the first wave goes at once; after its answers nothing starts for
    -- about the 1 s the header asked for
    local biggest = 0
    for i = 2, #t do biggest = math.max(biggest, t[i] - t[i - 1]) end
    assert.truthy(biggest >= 0.8, "largest gap " .. biggest)
    assert.truthy(table.concat(lines, "\n"):find("pacing", 1, true))
    c:close()
  end)
end)
