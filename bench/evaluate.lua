-- bench/evaluate.lua: what one offline evaluation costs (cfaccess.evaluate,
-- API.md section 10) for an application with 50 policies: microseconds
-- per request, for a compiled evaluator (`cfaccess.evaluator(...)` once,
-- then `:evaluate(request)` per request: what `cfaccess test` does) and
-- for the one-call `cfaccess.evaluate` (which validates the 50 policies
-- every time). Prints one line per figure:
--   evaluate: 50 policies, compiled: 12.3 us/request (N requests)
-- Run: lua5.4 bench/evaluate.lua [seconds-per-figure]   (from the repository
-- root with LUA_PATH/LUA_CPATH pointing at lua/ and the built core, as
-- tests/run.sh sets them; `make bench` does).
local cfaccess = require("cfaccess")
local r = cfaccess.rules

local SECONDS = tonumber(arg and arg[1]) or 1.0

-- 50 policies shaped like a real app's: a few Service Auth/Bypass ones,
-- Block policies on geography, then Allow policies on domains, groups, IdP
-- groups and MFA; the requests below are decided near the end, so most
-- policies are evaluated.
local policies, groups = {}, {}
for i = 1, 50 do
  local p
  if i <= 3 then
    p = { name = "service " .. i, decision = "non_identity", include = { r.service_token(("tok-%d"):format(i)) } }
  elseif i <= 5 then
    p = { name = "bypass " .. i, decision = "bypass", include = { r.ip(("198.51.%d.0/24"):format(i)) } }
  elseif i <= 10 then
    p = { name = "block " .. i, decision = "deny", include = { r.geo("KP"), r.geo("IR") },
          exclude = { r.ip("2001:db8::/32") } }
  else
    local gid = ("g%d"):format(i)
    groups[gid] = { name = "team " .. i, include = { r.email_domain(("team%d.example"):format(i)) },
                    require = { r.geo("DE") } }
    p = { name = "allow " .. i, decision = "allow",
          include = { r.group(gid), r.okta(("grp-%d"):format(i), "okta-1"), r.email(("u%d@example.com"):format(i)) },
          require = { r.auth_method("mfa") },
          exclude = { r.user_risk_score{ "high" } } }
  end
  p.precedence = i
  policies[i] = p
end
local opts = { groups = groups }

local requests = {
  { ip = "203.0.113.7", country = "DE", service_token = false, user = { email = "u49@example.com",
    login_method = "okta-1",
    amr = { "pwd", "mfa" }, risk = "low", idp = { ["okta-1"] = { groups = { "other" } } } } },
  { ip = "2001:db8::7", country = "FR", service_token = false, user = { email = "nobody@example.org",
    login_method = "okta-1",
    amr = { "pwd" }, risk = "low", idp = { ["okta-1"] = { groups = {} } } } },
}

local function measure(label, fn)
  local n, t0 = 0, os.clock()
  local elapsed = 0
  while elapsed < SECONDS do
    for _ = 1, 200 do
      for k = 1, #requests do fn(requests[k]) end
    end
    n = n + 200 * #requests
    elapsed = os.clock() - t0
  end
  print(("evaluate: 50 policies, %s: %.1f us/request (%d requests)"):format(label, elapsed / n * 1e6, n))
end

local ev = assert(cfaccess.evaluator(policies, opts))
-- the answers are what they should be (a bench of wrong answers is no bench)
assert(ev:evaluate(requests[1]).status == "approved")
assert(ev:evaluate(requests[2]).status == "blocked")
measure("compiled", function(q) return ev:evaluate(q) end)
measure("one call (validates every time)", function(q) return cfaccess.evaluate(policies, q, opts) end)
