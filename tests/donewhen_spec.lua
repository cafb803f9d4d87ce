-- The "Done when" promises of issues 10, 11 and 12 that no other spec pins
-- exactly as written (an audit of those issues): the interruption of a
-- 20-change apply by each kind of failure (500, connection reset, the
-- mock's lockout mode) at every step position; the export round trip of a
-- live state with every rule type through cfaccess.state.dump/load in both
-- formats; the batch option error that names the key; the waits in
-- on_progress and on_log; a read-modify-write through request_body that
-- keeps every setting the server stored.
local cfaccess = require("cfaccess")
local mockctl = require("mockctl")
local testutil = require("testutil")
local cjson = require("cjson").new()

local r = cfaccess.rules
local TOKEN = "t0k3n-donewhen-spec-S3CRET"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local APP2 = "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9"

local function pol(name, extra)
  local p = { name = name, decision = "allow", include = { r.email(name:gsub("%W", "") .. "@example.com") } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function names(list)
  local out = {}
  for i, p in ipairs(list) do out[i] = p.name end
  return out
end

describe("issues 10-12 done-when audit", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN },
    { { "accounts", ACCT, APP }, { "accounts", ACCT, APP2 } },
    function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)
  before_each(function() lines = {} end)

  local function client(opts) return m:client(ACCT, TOKEN, lines, opts) end

  local function writes(from) return m:writes(from) end

  local function legacy_of(app) return m:legacy_of(app) end

  local function reusable_live() return m:reusable_live() end

  local converge = testutil.converge

  -- ---- issue 12: interruption ---------------------------------------------
  describe("issue 12 interruption", function()
    -- 20 changes: 4 reusable creates, 3 updates, a delete; an app reversed
    -- with a content change, 2 creates and a delete; another rotated with
    -- a create.
    local target = {
      policies = { pol("r1", { require = { r.auth_method("mfa") } }), pol("r2"), pol("r4"), pol("r5"),
                   pol("r6"), pol("r7", { session_duration = "2h" }), pol("r8", { decision = "deny" }),
                   pol("r9") },
      apps = {
        [APP] = { legacy = { pol("e"), pol("d"), pol("c", { decision = "deny" }), pol("b"), pol("a"),
                             pol("f"), pol("g") } },
        [APP2] = { legacy = { pol("m"), pol("k"), pol("l"), pol("n") } },
      },
    }
    local function initial(c)
      for _, n in ipairs{ "r1", "r2", "r3", "r7", "r8" } do assert(c:create_policy(pol(n))) end
      for _, n in ipairs{ "a", "b", "c", "d", "e", "x" } do assert(c:create_app_policy(APP, pol(n))) end
      for _, n in ipairs{ "k", "l", "m" } do assert(c:create_app_policy(APP2, pol(n))) end
    end
    local function check(c)
      assert.are.same({ "r1", "r2", "r4", "r5", "r6", "r7", "r8", "r9" }, names(reusable_live()))
      for app, entry in pairs(target.apps) do
        local final = legacy_of(app)
        assert.are.same(names(entry.legacy), names(final))
        for i, p in ipairs(final) do assert.are.equal(i, p.precedence, app .. " " .. p.name) end
      end
      assert.are.equal(8 + 7 + 4, #m:state(), "no duplicates, no leftovers")
      assert.are.same({}, assert(c:plan(target, { prune = true })).changes)
    end
    local function fresh()
      m:reset()
      for _, a in ipairs{ APP, APP2 } do m:app("accounts", ACCT, a) end
      local c = client({ max_retries = 0 })
      initial(c)
      c:close()
    end

    -- How to break the apply before its k-th write, for each kind.
    local kinds = {
      ["500"] = function() m:fault{ action = "status", status = 500 } end,
      reset = function() m:fault{ action = "reset_before" } end,
      -- the mock's lockout mode: a budget of one, spent by another client
      -- with the same token, so the k-th write is the first one locked out
      lockout = function()
        m:lockout(1, 30)
        local other = client({ max_retries = 0 })
        assert(other:list_policies())
        other:close()
      end,
    }

    it("has 20 changes, and an uninterrupted apply converges", function()
      fresh()
      local c = client()
      local plan = assert(c:plan(target, { prune = true }))
      assert.are.equal(20, #plan.changes, tostring(plan))
      converge(c, target, { prune = true })
      check(c)
      m:assert_invariants()
      c:close()
    end)

    for _, kind in ipairs{ "500", "reset", "lockout" } do
      it(kind .. " before each write of a 20-change apply in turn: plan + apply converges", function()
        fresh()
        local c = client()
        local from = #m:log() + 1
        converge(c, target, { prune = true })
        local nwrites = writes(from)
        c:close()
        assert.is_true(nwrites >= 20, nwrites .. " writes")
        local interrupted = 0
        for k = 1, nwrites do
          fresh()
          c = client({ max_retries = 0, max_retry_wait = 1 })
          local p = assert(c:plan(target, { prune = true }))
          local injected = false
          local report = c:apply(p, { concurrency = 1, on_progress = function(done)
            if not injected and done >= k - 1 then
              injected = true
              kinds[kind]()
            end
          end })
          assert.is_true(injected, "step " .. k)
          assert.is_table(report)
          if report.failed > 0 then interrupted = interrupted + 1 end
          -- the failure really answered a request of this apply
          if kind == "lockout" then
            assert.is_true(m:count_status(429) >= 1, "step " .. k .. ": no 429")
          else
            assert.are.same({}, m:faults(), "step " .. k .. ": the fault was not reached")
          end
          c:close()
          m:clear_faults()
          m:lockout(false)
          -- a new run (a new process would have a new client): converges
          c = client({ max_retries = 0 })
          converge(c, target, { prune = true })
          check(c)
          m:assert_invariants()   -- no shared precedence, no empty app, even mid-failure
          c:close()
        end
        -- a 500 or a lockout cuts the apply (a reset create or update the
        -- client finds committed, or may safely re-send, can still succeed)
        local least = kind == "reset" and 1 or nwrites // 2
        assert.is_true(interrupted >= least, interrupted .. " of " .. nwrites .. " applies failed")
      end)
    end
  end)

  -- ---- issue 12: both reorders in one apply --------------------------------
  describe("issue 12 reorder", function()
    it("reverses five legacy and five linked reusable policies at once: no 400, exact order, none parked", function()
      local c = client()
      local five = { pol("u1"), pol("u2", { decision = "deny" }), pol("u3"), pol("u4"), pol("u5") }
      local legacy = { pol("p1"), pol("p2", { decision = "deny" }), pol("p3"), pol("p4"), pol("p5") }
      converge(c, { policies = five, apps = { [APP] = { "u1", "u2", "u3", "u4", "u5" },
                                              [APP2] = { legacy = legacy } } })
      local rev = { "u5", "u4", "u3", "u2", "u1" }
      local rev_legacy = { legacy[5], legacy[4], legacy[3], legacy[2], legacy[1] }
      local state = { policies = five, apps = { [APP] = rev, [APP2] = { legacy = rev_legacy } } }
      local from = #m:log() + 1
      converge(c, state)
      local log = m:log()
      for i = from, #log do
        assert.is_true(log[i].status < 400, log[i].method .. " " .. log[i].path .. ": " .. tostring(log[i].status))
      end
      m:assert_invariants()   -- never two at one precedence, never an empty app
      local app = assert(c:get_app(APP))
      local links = {}
      for _, p in ipairs(app.policies) do links[#links + 1] = p end
      table.sort(links, function(a, b) return a.precedence < b.precedence end)
      assert.are.equal(5, #links)
      for i, p in ipairs(links) do
        assert.are.equal(rev[i], p.name)
        assert.are.equal(i, p.precedence)
      end
      local final = legacy_of(APP2)
      assert.are.same({ "p5", "p4", "p3", "p2", "p1" }, names(final))
      for i, p in ipairs(final) do assert.are.equal(i, p.precedence, p.name) end
      assert.are.equal(10, #m:state())
      assert.are.same({}, assert(c:plan(state)).changes)
      c:close()
    end)
  end)

  -- ---- issue 12: export round trip through state files ----------------------
  describe("issue 12 export round trip", function()
    it("plan(load(dump(export()))) has no changes for every rule type, in Lua and JSON", function()
      local c = client()
      local U = "2b6f7c1e-8d3a-4e5f-9a0b-1c2d3e4f5a6b"
      local everything = {
        r.email("a@example.com"), r.email_domain("example.com"), r.everyone(), r.ip("192.0.2.9"),
        r.ip("2001:db8::/48"), r.group(U), r.email_list(U), r.ip_list(U), r.certificate(),
        r.common_name("device1.example.com"), r.geo("DE"), r.auth_method("mfa"), r.device_posture(U),
        r.login_method(U), r.azure_ad(U, U), r.github_org("acme", U, "infra"), r.gsuite("g@example.com", U),
        r.okta("admins", U), r.saml("group", "devs", U), r.oidc("groups", "devs", U), r.auth_context(U, "c1", U),
        r.external_evaluation("https://eval.example.com/", "https://eval.example.com/keys"),
        r.user_risk_score{ "low", "medium" }, r.cloudflare_account_member(ACCT),
      }
      local service = { r.service_token(U), r.any_valid_service_token(), r.linked_app_token(U) }
      -- every rule key of the schema is used (a new rule type fails this)
      local used = {}
      for _, rule in ipairs(everything) do used[next(rule)] = true end
      for _, rule in ipairs(service) do used[next(rule)] = true end
      for _, key in ipairs(require("cfaccess.core").schema.rule_types) do
        assert.is_true(used[key], "rule type " .. key .. " not covered")
      end
      local state = {
        policies = { pol("identity", { include = everything, exclude = { r.geo("KP") },
                                       require = { r.certificate() }, session_duration = "2h" }),
                     pol("service", { decision = "non_identity", include = service }) },
        apps = { [APP] = { legacy = { pol("legacy identity", { include = everything }),
                                      pol("legacy service", { decision = "non_identity", include = service }) } } },
      }
      converge(c, state)
      local live = assert(c:export{ apps = { APP } })
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. mockctl.shell_quote(dir)))
      for _, fmt in ipairs{ "lua", "json" } do
        local text = assert(cfaccess.state.dump(live, fmt))
        local path = dir .. "/exported." .. fmt
        local f = assert(io.open(path, "wb"))
        f:write(text)
        f:close()
        local back, err = cfaccess.state.load(path)
        assert.is_table(back, fmt .. ": " .. tostring(err))
        assert.are.equal(#everything, #back.policies[1].include, fmt)
        local from = #m:log() + 1
        local plan = assert(c:plan(back))
        assert.are.same({}, plan.changes, fmt .. ":\n" .. tostring(plan))
        assert(c:apply(plan))
        assert.are.equal(0, writes(from), fmt)
      end
      os.execute("rm -rf " .. mockctl.shell_quote(dir))
      c:close()
    end)
  end)

  -- ---- issue 10 item 1: the age guard runs on the server's clock (Date) ------
  describe("issue 10 item 1", function()
    it("server clock an hour behind: a create committed before a 500 is found, not made twice", function()
      local c = client()
      m:config{ clock_skew = -3600 }
      m:fault{ action = "commit_then_fail", method = "POST" }
      local made, err = c:create_app_policy(APP, pol("behind"))
      assert.is_nil(err, err and tostring(err))
      assert.are.equal(1, #m:state())
      assert.are.equal(m:state()[1].id, made.id)
      assert.are.equal(1, m:count("POST"))
      c:close()
    end)

    it("server clock an hour ahead: an identical older policy is not taken for a create that never happened", function()
      local c = client()
      m:config{ clock_skew = 3600 }
      local old = assert(c:create_app_policy(APP, pol("ahead")))
      -- Date and created_at have one-second resolution: the older one is
      -- made clearly older by moving the server's clock on 5 s, not by waiting
      m:config{ clock_skew = 3605 }
      m:fault{ action = "status", status = 502, method = "POST" }   -- never committed
      local made, err = c:create_app_policy(APP, pol("ahead"))
      assert.is_nil(err, err and tostring(err))
      assert.are_not.equal(old.id, made.id)
      assert.are.equal(2, #m:state())
      assert.are.equal(3, m:count("POST"))   -- the old one, the 502, the real one
      c:close()
    end)
  end)

  -- ---- issue 10 item 12: a mistyped batch option ------------------------------
  describe("issue 10 item 12", function()
    it("a mistyped batch option names the key, with did-you-mean; a non-string key is named by type", function()
      local c = client()
      local res, err = c:batch({}, { concurency = 2 })
      assert.is_nil(res)
      assert.are.equal("usage", err.kind)
      assert.is_truthy(err.message:find('"concurency"', 1, true), err.message)
      assert.is_truthy(err.message:find('did you mean "concurrency"', 1, true), err.message)
      res, err = c:batch({}, { [{}] = 2 })
      assert.is_nil(res)
      assert.are.equal("usage", err.kind)
      assert.is_falsy(err.message:find("table: 0x", 1, true), err.message)
      assert.is_truthy(err.message:find("string", 1, true), err.message)
      assert.are.equal(0, #m:log())
      c:close()
    end)
  end)

  -- ---- issue 10 item 10: the waits are reported ------------------------------
  describe("issue 10 item 10", function()
    it("a 429 wait is reported to on_progress (info.waiting, info.reason) and on_log", function()
      local c = client({ max_retries = 2 })
      m:fault{ action = "rate_limit", retry_after = 1, method = "GET" }
      local waits = {}
      local res = assert(c:batch({ { op = "list_app_policies", app_id = APP } }, {
        on_progress = function(_, _, info) if info then waits[#waits + 1] = info end end }))
      assert.is_true(res[1].ok, res[1].err and tostring(res[1].err))
      assert.is_true(#waits >= 1)
      assert.are.equal("rate limit", waits[1].reason)
      assert.is_number(waits[1].waiting)
      assert.is_true(waits[1].waiting > 0 and waits[1].waiting <= 1.5, tostring(waits[1].waiting))
      local logged = false
      for _, l in ipairs(lines) do
        if l:find("HTTP 429", 1, true) and l:find("retry 1 of 2 in 1.00 s", 1, true) then logged = true end
        assert.is_falsy(l:find(TOKEN, 1, true))
      end
      assert.is_true(logged, table.concat(lines, "\n"))
      c:close()
    end)
  end)

  -- ---- issue 10 item 10: two processes sharing a token under a lockout -------
  describe("issue 10 item 10, two processes", function()
    it("two processes sharing a token lose no create under the mock's lockout (10 per 2 s)", function()
      m:lockout(10, 2)
      local LUA = os.getenv("LUA") or "lua5.4"
      local code = ([[
        local core = require("cfaccess.core")
        local c = assert(core.client{ account_id = %q, api_token = %q, base_url = %q, timeout = 20 })
        local ops = {}
        for i = 1, 15 do ops[i] = { op = "create_app_policy", app_id = %q,
          policy = { name = "child" .. i, decision = "allow", include = { { everyone = {} } } } } end
        local res = assert(c:batch(ops, { concurrency = 4 }))
        local ok = 0
        for i = 1, 15 do if res[i].ok then ok = ok + 1 end end
        print("child ok " .. ok)
        c:close()
      ]]):format(ACCT, TOKEN, m.base_url, APP)
      local child = assert(io.popen("timeout 120 " .. mockctl.shell_quote(LUA) .. " -e "
        .. mockctl.shell_quote(code) .. " 2>&1", "r"))
      -- the default pacing, as the child has
      local c = assert(require("cfaccess.core").client{ account_id = ACCT, api_token = TOKEN,
        base_url = m.base_url, timeout = 20 })
      local ops = {}
      for i = 1, 15 do ops[i] = { op = "create_app_policy", app_id = APP, policy = pol("parent" .. i) } end
      local res = assert(c:batch(ops, { concurrency = 4 }))
      local out = child:read("a")
      child:close()
      for i = 1, 15 do assert.is_true(res[i].ok, "op " .. i .. ": " .. tostring(res[i].err)) end
      assert.is_truthy(out:find("child ok 15", 1, true), out)
      assert.is_falsy(out:find(TOKEN, 1, true))
      assert.are.equal(30, #m:state())
      m:lockout(false)
      c:close()
    end)
  end)

  -- ---- issue 10 item 13: read-modify-write ------------------------------------
  describe("issue 10 item 13", function()
    it("a policy read back goes through request_body to update_* and keeps every stored setting", function()
      local c = client()
      local made = assert(c:create_app_policy(APP, pol("rmw", {
        session_duration = "4h", approval_required = true,
        approval_groups = { { approvals_needed = 1, email_addresses = { "boss@example.com" } } },
        purpose_justification_required = true, purpose_justification_prompt = "why?",
        include = { r.ip("192.0.2.1") } })))
      local got = assert(c:get_app_policy(APP, made.id))
      -- the raw read-back is refused (read-only fields), nothing sent
      local from = #m:log() + 1
      local bad, berr = c:update_app_policy(APP, made.id, got)
      assert.is_nil(bad)
      assert.are.equal("invalid", berr.kind)
      assert.are.equal(0, writes(from))
      local body = assert(cfaccess.request_body(got, "app"))
      body.name = "rmw renamed"
      local updated = assert(c:update_app_policy(APP, made.id, body))
      assert.are.equal("rmw renamed", updated.name)
      local stored = legacy_of(APP)[1]
      assert.are.equal("4h", stored.session_duration)
      assert.is_true(stored.approval_required)
      assert.is_true(stored.purpose_justification_required)
      assert.are.equal("why?", stored.purpose_justification_prompt)
      assert.are.equal(1, stored.approval_groups[1].approvals_needed)
      assert.are.equal("192.0.2.1/32", stored.include[1].ip.ip)
      got.name = "rmw renamed"
      assert.is_true(cfaccess.same(body, got, "app"))
      assert.is_string(cjson.encode(body))
      c:close()
    end)
  end)
end)
