-- client:plan / client:apply / client:export (API.md section 8) against the
-- mock: state validation, idempotence (zero writes), no drift, legacy
-- reorders that never share a precedence and leave nothing parked,
-- interruption at every step converging, prune safety, export round trip.
-- The application-list parts (client:get_app, client:set_app_policies of
-- API.md section 6) run only once the client has those methods and the mock
-- has applications with policy lists; until then they are pending.
local cfaccess = require("cfaccess")
local mockctl = require("mockctl")
local testutil = require("testutil")
local cjson = require("cjson").new()

local r = cfaccess.rules
local TOKEN = "t0k3n-plan-spec-S3CRET"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local APP2 = "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9"
local OUTSIDE = "9e8d7c6b-5a49-4837-a625-140f0e1d2c3b"

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

describe("client:plan / apply / export", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN },
    { { "accounts", ACCT, APP }, { "accounts", ACCT, APP2 }, { "accounts", ACCT, OUTSIDE } },
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

  -- The app's legacy policies now: { [name] = precedence }, { [id] = name }.
  local function snapshot(app)
    local at, id_name = {}, {}
    for _, p in ipairs(legacy_of(app)) do at[p.name], id_name[p.id] = p.precedence, p.name end
    return at, id_name
  end

  -- Precedences of the app's legacy policies replayed from the log's
  -- writes (by name, which is unique in these specs): raises if two ever
  -- share one. `start`, `id_name`: the snapshot before log entry `from`.
  local function replay_unique(app, start, id_name, from)
    local at = {}
    for k, v in pairs(start) do at[k] = v end
    local _, list = writes(from)
    for n, q in ipairs(list) do
      if q.path:find("/apps/" .. app .. "/policies", 1, true) then
        assert.is_true(q.status < 300, ("write %d (%s %s) answered %s"):format(n, q.method, q.path, tostring(q.status)))
        if q.method == "DELETE" then
          at[id_name[q.path:match("[^/]+$")] or q.path] = nil
        else
          local body = cjson.decode(q.body)
          at[body.name] = body.precedence
        end
        local seen = {}
        for name, p in pairs(at) do
          assert.is_nil(seen[p], ("after write %d, %q and %q both stand at precedence %d")
            :format(n, name, tostring(seen[p]), p))
          seen[p] = name
        end
      end
    end
  end

  describe("the state is checked before anything is read", function()
    local cases = {
      { "a name used twice", { policies = { pol("a"), pol("b"), pol("a") } },
        "policies[3].name", 'is used twice' },
      { "an invalid reusable policy",
        { policies = { pol("a"), { name = "b", decision = "allow", include = { { email = { email = 3 } } } } } },
        "policies[2].include[1].email.email", "expected a string" },
      { "precedence on a reusable policy", { policies = { pol("a", { precedence = 1 }) } },
        "policies[1].precedence", "" },
      { "an unknown state field", { policies = {}, aps = {} }, "aps", "unknown field" },
      { "an app id that is not one", { apps = { ["../x"] = { "a" } } }, 'apps["../x"]', "application id" },
      { "a legacy policy with a precedence", { apps = { [APP] = { legacy = { pol("a", { precedence = 2 }) } } } },
        ('apps["%s"].legacy[1].precedence'):format(APP), "list order" },
      { "a 32-hex app id (quoted in paths like a UUID)",
        { apps = { ["abcdef0123456789abcdef0123456789"] = { legacy = { pol("a", { precedence = 2 }) } } } },
        'apps["abcdef0123456789abcdef0123456789"].legacy[1].precedence', "list order" },
      { "a legacy name used twice", { apps = { [APP] = { legacy = { pol("a"), pol("a") } } } },
        ('apps["%s"].legacy[2].name'):format(APP), "used twice" },
      { "an invalid legacy policy", { apps = { [APP] = { legacy = { pol("a", { decision = "maybe" }) } } } },
        ('apps["%s"].legacy[1].decision'):format(APP), "" },
      { "a name listed twice for an app", { policies = { pol("a") }, apps = { [APP] = { "a", "a" } } },
        ('apps["%s"][2]'):format(APP), "listed twice" },
      { "a list entry that is not a name", { apps = { [APP] = { 3 } } }, ('apps["%s"][1]'):format(APP), "name or id" },
      { "a list name that is none of the state's policies", { policies = { pol("a") }, apps = { [APP] = { "b" } } },
        ('apps["%s"][1]'):format(APP), "is not a policy of this state" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. ": invalid at " .. case[3] .. ", nothing sent", function()
        local c = client()
        local plan, err = c:plan(case[2])
        assert.is_nil(plan)
        assert.are.equal("invalid", err.kind, tostring(err))
        local found
        for _, p in ipairs(err.problems) do
          if p.path == case[3] and p.message:find(case[4], 1, true) then found = true end
        end
        assert.is_true(found, ("no problem at %s in: %s"):format(case[3], cjson.encode(err.problems)))
        assert.are.equal(0, #m:log())
        c:close()
        -- one checker: `cfaccess validate` (state.problems, offline) says the same
        local offline = require("cfaccess.state").problems(case[2])
        found = false
        for _, p in ipairs(offline) do
          if p.path == case[3] and p.message:find(case[4], 1, true) then found = true end
        end
        assert.is_true(found, ("state.problems has no problem at %s: %s"):format(case[3], cjson.encode(offline)))
      end)
    end

    it("reports every problem at once", function()
      local c = client()
      local _, err = c:plan{ policies = { pol("a"), pol("a"), { name = "" } } }
      assert.is_true(#err.problems >= 2)
      assert.matches("^invalid state: policies%[", err.message)
      c:close()
    end)

    it("a zone client takes legacy policies only", function()
      local zc = assert(cfaccess.client{ zone_id = ACCT, api_token = TOKEN, base_url = m.base_url, rate_limit = false })
      local _, err = zc:plan{ policies = { pol("a") } }
      assert.are.equal("invalid", err.kind)
      assert.are.equal("policies", err.problems[1].path)
      _, err = zc:plan{ apps = { [APP] = { "a" } } }
      assert.are.equal("invalid", err.kind)
      assert.are.equal(0, #m:log())
      zc:close()
    end)

    it("bad options raise", function()
      local c = client()
      assert.has_error(function() c:plan({}, { prnue = true }) end)
      assert.has_error(function() c:plan({}, { prune = "yes" }) end)
      c:close()
    end)
  end)

  describe("reusable and legacy policies", function()
    local state
    before_each(function()
      state = {
        policies = { pol("staff", { include = { r.email_domain("example.com") } }),
                     pol("contractors", { require = { r.auth_method("mfa") } }) },
        apps = { [APP] = { legacy = { pol("deny bad", { decision = "deny", include = { r.ip("192.0.2.66") } }),
                                      pol("allow staff") } } },
      }
    end)

    it("plans creates, applies them, and a second plan is empty (zero writes to apply it)", function()
      local c = client()
      local plan = assert(c:plan(state))
      assert.are.same({ create = 4, update = 0, delete = 0, attach = 0, detach = 0 }, plan.summary)
      assert.are.equal(4, #plan.changes)
      local text = tostring(plan)
      assert.matches('%+ reusable "staff"', text)
      assert.matches('%+ policy "deny bad"', text)
      -- plain data: cjson encodes it
      assert.is_string(cjson.encode(plan.changes))
      local report, err = c:apply(plan)
      assert.is_nil(err)
      assert.are.same({ 4, 0, 0 }, { report.applied, report.failed, report.skipped })
      for i, res in ipairs(report.results) do
        assert.is_true(res.ok)
        assert.are.equal(plan.changes[i], res.change)
        assert.is_string(res.id)
      end
      assert.are.same({ "deny bad", "allow staff" }, names(legacy_of(APP)))
      assert.are.same({ 1, 2 }, { legacy_of(APP)[1].precedence, legacy_of(APP)[2].precedence })
      assert.are.same({ "contractors", "staff" }, names(reusable_live()))

      local from = #m:log() + 1
      local again = assert(c:plan(state))
      assert.are.same({}, again.changes)
      assert.are.same({ create = 0, update = 0, delete = 0, attach = 0, detach = 0 }, again.summary)
      report = assert(c:apply(again))
      assert.are.same({ 0, 0, 0 }, { report.applied, report.failed, report.skipped })
      assert.are.equal(0, writes(from))
      c:close()
    end)

    it("reads the live state with one reusable list (per_page 1000) and one list per legacy app", function()
      local c = client()
      local from = #m:log() + 1
      assert(c:plan(state))
      local log = m:log()
      local gets = {}
      for i = from, #log do gets[#gets + 1] = log[i] end
      assert.are.equal(3, #gets)   -- the reusable list, the app's GET, its legacy list
      local reusable_list
      for _, q in ipairs(gets) do
        assert.are.equal("GET", q.method)
        if q.path:match("/access/policies$") then reusable_list = q end
      end
      assert.is_table(reusable_list)
      assert.matches("per_page=1000", reusable_list.query)
      c:close()
    end)

    it("no drift: /32, an omitted session_duration, an empty exclude, session_duration = \"\"", function()
      local c = client()
      local s = {
        policies = { pol("office", { include = { r.ip("192.0.2.10"), r.ip("2001:db8::1") }, exclude = {} }) },
        apps = { [APP] = { legacy = {
          pol("legacy office", { include = { r.ip("198.51.100.7") }, exclude = {}, require = {} }) } } },
      }
      table.insert(s.policies, pol("app session", { session_duration = "" }))
      table.insert(s.apps[APP].legacy, pol("legacy app session", { session_duration = "" }))
      converge(c, s)
      -- the server really normalised: /32 and the 24h default are stored
      local stored = {}
      for _, p in ipairs(m:state()) do stored[p.name] = p end
      assert.are.equal("192.0.2.10/32", stored.office.include[1].ip.ip)
      assert.are.equal("2001:db8::1/128", stored.office.include[2].ip.ip)
      assert.are.equal("24h", stored.office.session_duration)
      assert.are.equal("", stored["app session"].session_duration)
      assert.are.equal("", stored["legacy app session"].session_duration)
      local from = #m:log() + 1
      local plan = assert(c:plan(s))
      assert.are.same({}, plan.changes, tostring(plan))
      assert(c:apply(plan))
      assert.are.equal(0, writes(from))
      c:close()
    end)

    it("a changed field is an update that names the field, old and new", function()
      local c = client()
      converge(c, state)
      state.policies[2].require = { r.auth_method("hwk") }
      state.policies[2].session_duration = "1h"
      state.apps[APP].legacy[2].approval_required = true
      state.apps[APP].legacy[2].approval_groups = { { approvals_needed = 1, email_addresses = { "boss@example.com" } } }
      local plan = assert(c:plan(state))
      assert.are.same({ create = 0, update = 2, delete = 0, attach = 0, detach = 0 }, plan.summary)
      local fields = {}
      for _, ch in ipairs(plan.changes) do
        assert.are.equal("update", ch.action)
        assert.is_string(ch.id)
        for _, f in ipairs(ch.fields) do fields[ch.name .. "." .. f.field] = f end
      end
      assert.are.equal("24h", fields["contractors.session_duration"].old)
      assert.are.equal("1h", fields["contractors.session_duration"].new)
      assert.is_table(fields["contractors.require"])
      assert.is_false(fields["allow staff.approval_required"].old)
      assert.is_true(fields["allow staff.approval_required"].new)
      assert.is_nil(fields["allow staff.precedence"])
      local text = tostring(plan)
      assert.matches('~ reusable "contractors"', text)
      assert.matches('session_duration: "24h" %-> "1h"', text)
      converge(c, state)
      assert.are.same({}, assert(c:plan(state)).changes)
      c:close()
    end)

    it("rule order and the order of emails are not changes", function()
      local c = client()
      state.policies[1].include = r.emails{ "a@example.com", "b@example.com" }
      converge(c, state)
      state.policies[1].include = r.emails{ "b@example.com", "a@example.com" }
      assert.are.same({}, assert(c:plan(state)).changes)
      c:close()
    end)

    it("two live policies with one name: conflict naming both ids", function()
      local c = client()
      local a = assert(c:create_policy(pol("staff")))
      local b = assert(c:create_policy(pol("staff")))
      local plan, err = c:plan(state)
      assert.is_nil(plan)
      assert.are.equal("conflict", err.kind)
      assert.matches(a.id, err.message, 1, true)
      assert.matches(b.id, err.message, 1, true)
      local la = assert(c:create_app_policy(APP2, pol("x")))
      local lb = assert(c:create_app_policy(APP2, pol("x")))
      plan, err = c:plan{ apps = { [APP2] = { legacy = { pol("x") } } } }
      assert.is_nil(plan)
      assert.are.equal("conflict", err.kind)
      assert.matches(la.id, err.message, 1, true)
      assert.matches(lb.id, err.message, 1, true)
      c:close()
    end)

    it("a name taken live between plan and apply: no second policy, a conflict; plan again converges", function()
      local c = client()
      local plan = assert(c:plan(state))
      local other = client()
      local taken = assert(other:create_policy(pol("staff", { decision = "deny" })))
      local legacy_taken = assert(other:create_app_policy(APP, pol("allow staff", { precedence = 7 })))
      other:close()
      local report, err = c:apply(plan)
      assert.are.equal("conflict", err.kind)
      local seen = {}
      for _, res in ipairs(report.results) do
        if res.change.action == "create" and (res.change.name == "staff" or res.change.name == "allow staff") then
          assert.is_false(res.ok)
          assert.are.equal("conflict", res.err.kind)
          seen[res.change.name] = tostring(res.err)
        end
      end
      assert.matches(taken.id, seen["staff"], 1, true)
      assert.matches(legacy_taken.id, seen["allow staff"], 1, true)
      local n = 0
      for _, p in ipairs(reusable_live()) do if p.name == "staff" then n = n + 1 end end
      assert.are.equal(1, n, "two live reusable policies named staff")
      n = 0
      for _, p in ipairs(legacy_of(APP)) do if p.name == "allow staff" then n = n + 1 end end
      assert.are.equal(1, n, "two live legacy policies named allow staff")
      -- plan again: the taken ones are updates now, and it converges
      plan = assert(c:plan(state))
      report, err = c:apply(plan)
      assert.is_nil(err, err and tostring(err))
      assert.are.equal(0, report.failed)
      assert.are.same({}, assert(c:plan(state)).changes)
      c:close()
    end)

    -- a colleague's edit between plan and apply (the y/N prompt, a CI
    -- approval step): each change it touches is a conflict, nothing is
    -- overwritten or deleted unseen; plan again converges
    it("a policy changed live between plan and apply: its update or delete is a conflict, the edit kept", function()
      local c = client()
      converge(c, state)
      local by = {}
      for _, p in ipairs(reusable_live()) do by[p.name] = p end
      for _, p in ipairs(legacy_of(APP)) do by[p.name] = p end
      local staff4h = pol("staff", { include = { r.email_domain("example.com") }, session_duration = "4h" })
      local allow_new = pol("allow staff", { include = { r.email("new@example.com") } })
      local want = { policies = { staff4h }, apps = { [APP] = { legacy = { allow_new } } } }
      local plan = assert(c:plan(want, { prune = true }))
      assert.are.same({ create = 0, update = 2, delete = 2, attach = 0, detach = 0 }, plan.summary)
      -- the colleague edits all four
      local other = client()
      local edited = {
        staff = assert(other:update_policy(by.staff.id, pol("staff", { session_duration = "1h" }))),
        contractors = assert(other:update_policy(by.contractors.id, pol("contractors", { session_duration = "2h" }))),
        ["allow staff"] = assert(other:update_app_policy(APP, by["allow staff"].id,
          pol("allow staff", { precedence = by["allow staff"].precedence, session_duration = "3h" }))),
        ["deny bad"] = assert(other:update_app_policy(APP, by["deny bad"].id,
          pol("deny bad", { decision = "deny", precedence = by["deny bad"].precedence, session_duration = "5h" }))),
      }
      other:close()
      local from = #m:log() + 1
      local report, err = c:apply(plan)
      assert.are.equal("conflict", err.kind)
      assert.are.equal(0, report.applied)
      assert.are.equal(0, writes(from), "a write went out")
      for _, res in ipairs(report.results) do
        local id = by[res.change.name].id
        assert.is_false(res.ok)
        assert.are.equal("conflict", res.err.kind)
        if not res.skipped then
          assert.matches("changed since the plan", tostring(res.err), 1, true)
          assert.matches(id, tostring(res.err), 1, true)
          assert.are.same({ id }, res.err.ids)
        end
      end
      -- every edit is still live as the colleague made it
      local now = {}
      for _, p in ipairs(reusable_live()) do now[p.name] = p end
      for _, p in ipairs(legacy_of(APP)) do now[p.name] = p end
      for name, e in pairs(edited) do
        assert.is_table(now[name], name .. " was deleted")
        assert.are.equal(e.session_duration, now[name].session_duration, name)
        assert.are.equal(e.updated_at, now[name].updated_at, name)
      end
      -- plan again: the plan sees the edits, and it converges
      converge(c, want, { prune = true })
      assert.are.same({}, assert(c:plan(want, { prune = true })).changes)
      c:close()
    end)

    it("a policy deleted live between plan and apply: its update is a conflict, its delete is done", function()
      local c = client()
      converge(c, state)
      local by = {}
      for _, p in ipairs(reusable_live()) do by[p.name] = p end
      local staff4h = pol("staff", { include = { r.email_domain("example.com") }, session_duration = "4h" })
      local want = { policies = { staff4h }, apps = state.apps }
      local plan = assert(c:plan(want, { prune = true }))
      assert.are.same({ create = 0, update = 1, delete = 1, attach = 0, detach = 0 }, plan.summary)
      local other = client()
      assert(other:delete_policy(by.staff.id))
      assert(other:delete_policy(by.contractors.id))
      other:close()
      local report, err = c:apply(plan)
      assert.are.equal("conflict", err.kind)
      assert.are.same({ 1, 1, 0 }, { report.applied, report.failed, report.skipped })
      for _, res in ipairs(report.results) do
        if res.change.action == "update" then
          assert.is_false(res.ok)
          assert.matches('not updated: reusable policy "staff" (' .. by.staff.id .. ") was deleted since the plan",
            tostring(res.err), 1, true)
        else
          assert.is_true(res.ok, tostring(res.err))
        end
      end
      assert.are.same({}, reusable_live())
      converge(c, want, { prune = true })
      assert.are.same({ "staff" }, names(reusable_live()))
      c:close()
    end)

    -- a reorder C, A, B of A1 B2 C3: the chain parks A first; with C edited
    -- live nothing of the app may move (A parked at 4 would let B decide)
    it("an app's legacy chain does not start when a change of it is refused, nor when its policies moved", function()
      local A = pol("deny contractors", { decision = "deny", include = { r.email_domain("contractor.example") } })
      local B = pol("allow all", { include = { r.everyone() } })
      local C = pol("allow admins")
      local D = pol("top")
      local c = client()
      local other = client()
      local function at()
        local t = {}
        for _, p in ipairs(legacy_of(APP)) do t[p.name] = p.precedence end
        return t
      end
      for round = 1, 3 do
        -- A1 B2 C3 D5 (4 free); the plan reverses to C A B D: it parks A first
        converge(c, { apps = { [APP] = { legacy = { A, B, C, D } } } }, { prune = true })
        local d = legacy_of(APP)[4]
        if d.precedence ~= 5 then assert(other:update_app_policy(APP, d.id, pol("top", { precedence = 5 }))) end
        local plan = assert(c:plan{ apps = { [APP] = { legacy = { C, A, B, D } } } })
        local by = {}
        for _, p in ipairs(legacy_of(APP)) do by[p.name] = p end
        local why
        if round == 1 then       -- C edited
          assert(other:update_app_policy(APP, by["allow admins"].id, pol("allow admins",
            { precedence = by["allow admins"].precedence, session_duration = "2h" })))
          why = "changed since the plan"
        elseif round == 2 then   -- a policy added in the dashboard
          assert(other:create_app_policy(APP, pol("added live", { precedence = 6 })))
          why = ' was added to app ' .. APP .. ' since the plan'
        else                     -- A moved to the free slot: same ids, same highest precedence
          assert(other:update_app_policy(APP, by["deny contractors"].id, pol("deny contractors",
            { decision = "deny", include = { r.email_domain("contractor.example") }, precedence = 4 })))
          why = "moved from precedence 1 to 4 since the plan"
        end
        local before = at()
        local from = #m:log() + 1
        local report, err = c:apply(plan)
        assert.are.equal("conflict", err.kind, "round " .. round)
        assert.are.equal(0, writes(from), "round " .. round .. ": a write went out")
        assert.are.equal(0, report.applied)
        assert.are.same(before, at(), "round " .. round)
        for _, res in ipairs(report.results) do
          assert.is_false(res.ok)
          if not res.skipped then assert.matches("plan again", tostring(res.err), 1, true) end
        end
        assert.matches(why, err.message, 1, true)
      end
      other:close()
      c:close()
    end)

    it("an infrastructure app's policies: no precedence sent, idempotent, updated and pruned", function()
      local INFRA = "5c4b3a29-1807-4f6e-8d5c-4b3a29180716"
      m:app("accounts", ACCT, INFRA, "infrastructure")
      local function ssh(name, user)
        return pol(name, { connection_rules = { ssh = { usernames = { user } } } })
      end
      local c = client()
      local st = { apps = { [INFRA] = { kind = "infrastructure",
                                        legacy = { ssh("ssh root", "root"), ssh("ssh ops", "ops") } } } }
      local from = #m:log() + 1
      converge(c, st)
      local _, list = writes(from)
      assert.are.equal(2, #list)
      for _, q in ipairs(list) do assert.is_nil(cjson.decode(q.body).precedence, q.body) end
      assert.are.same({}, assert(c:plan(st)).changes, "the second plan has changes")
      st.apps[INFRA].legacy[2] = ssh("ssh ops", "deploy")
      local plan = assert(c:plan(st))
      assert.are.same({ create = 0, update = 1, delete = 0, attach = 0, detach = 0 }, plan.summary)
      assert.are.same({ "connection_rules" }, { plan.changes[1].fields[1].field, plan.changes[1].fields[2] })
      converge(c, st)
      st.apps[INFRA].legacy[2] = nil
      converge(c, st, { prune = true })
      local names_left = {}
      for _, p in ipairs(m:legacy_of(INFRA)) do names_left[#names_left + 1] = p.name end
      assert.are.same({ "ssh root" }, names_left)
      assert.is_true(m:invariants().ok, "the mock's invariants (no precedence shared)")
      -- the entry's kind must say what the app is, both ways, before anything is sent
      local from2 = #m:log() + 1
      local _, err = c:plan{ apps = { [INFRA] = { legacy = { pol("plain") } } } }
      assert.are.equal("invalid", err.kind)
      assert.are.equal('apps["' .. INFRA .. '"].kind', err.problems[1].path)
      assert.matches('give its entry kind = "infrastructure"', err.problems[1].message, 1, true)
      _, err = c:plan{ apps = { [APP] = { kind = "infrastructure", legacy = { ssh("x", "root") } } } }
      assert.are.equal("invalid", err.kind)
      assert.matches('but the app is of type "self_hosted"', err.problems[1].message, 1, true)
      assert.are.equal(0, writes(from2))
      c:close()
    end)

    it("without prune, live policies the state does not list are kept (legacy ones after the listed ones)", function()
      local c = client()
      assert(c:create_app_policy(APP, pol("extra")))   -- at precedence 1
      assert(c:create_policy(pol("unlisted")))
      local plan = assert(c:plan(state))
      assert.are.equal(0, plan.summary.delete)
      assert.is_true(#plan.warnings >= 1)
      assert.matches('"extra"', table.concat(plan.warnings, "\n"))
      converge(c, state)
      assert.are.same({ "deny bad", "allow staff", "extra" }, names(legacy_of(APP)))
      local final = legacy_of(APP)
      assert.are.same({ 1, 2, 3 }, { final[1].precedence, final[2].precedence, final[3].precedence })
      assert.are.same({ "contractors", "staff", "unlisted" }, names(reusable_live()))
      assert.are.same({}, assert(c:plan(state)).changes)
      c:close()
    end)

    it("with prune, they are deleted (last), and the plan says so", function()
      local c = client()
      assert(c:create_app_policy(APP, pol("extra")))
      assert(c:create_policy(pol("unlisted")))
      local plan = assert(c:plan(state, { prune = true }))
      assert.are.equal(2, plan.summary.delete)
      local last = plan.changes[#plan.changes]
      assert.are.equal("delete", last.action)
      assert.matches('%- policy "extra"', tostring(plan))
      assert.matches('%- reusable "unlisted"', tostring(plan))
      converge(c, state, { prune = true })
      assert.are.same({ "deny bad", "allow staff" }, names(legacy_of(APP)))
      assert.are.same({ "contractors", "staff" }, names(reusable_live()))
      assert.are.same({}, assert(c:plan(state, { prune = true })).changes)
      c:close()
    end)

    it("a state without policies does not manage reusable ones: prune leaves them alone", function()
      local c = client()
      assert(c:create_policy(pol("someone else's")))
      assert(c:create_app_policy(APP, pol("old")))
      local plan = assert(c:plan({ apps = { [APP] = { legacy = { pol("new") } } } }, { prune = true }))
      assert.are.same({ create = 1, update = 0, delete = 1, attach = 0, detach = 0 }, plan.summary)
      converge(c, { apps = { [APP] = { legacy = { pol("new") } } } }, { prune = true })
      assert.are.same({ "someone else's" }, names(reusable_live()))
      assert.are.same({ "new" }, names(legacy_of(APP)))
      -- policies = {} does manage them
      plan = assert(c:plan({ policies = {}, apps = {} }, { prune = true }))
      assert.are.equal(1, plan.summary.delete)
      c:close()
    end)

    it("prune keeps a reusable policy attached to an app outside the state, and says so", function()
      local c = client()
      local shared = assert(c:create_policy(pol("shared")))
      assert(c:create_policy(pol("unused")))
      -- the app outside the state links it (registered with that link)
      m:app("accounts", ACCT, OUTSIDE, "self_hosted", { policies = { { id = shared.id, precedence = 1 } } })
      local empty = { policies = {}, apps = { [APP] = { legacy = {} } } }
      local plan = assert(c:plan(empty, { prune = true }))
      assert.are.equal(1, plan.summary.delete)
      assert.are.equal("unused", plan.changes[1].name)
      local warnings = table.concat(plan.warnings, "\n")
      assert.matches('"shared"', warnings)
      assert.is_truthy(warnings:find("1 app outside the state uses it: kept", 1, true), warnings)
      assert.matches('warning: [^\n]*"shared"', tostring(plan))
      converge(c, empty, { prune = true })
      assert.are.same({ "shared" }, names(reusable_live()))
      m:assert_invariants()
      c:close()
    end)

    it("reverses five legacy policies: no 400, never two at one precedence, exact order, nothing parked", function()
      local c = client()
      local five = { pol("p1"), pol("p2", { decision = "deny" }), pol("p3"),
                     pol("p4", { decision = "bypass", include = { r.ip("192.0.2.1") } }), pol("p5") }
      converge(c, { apps = { [APP] = { legacy = five } } })
      local start, id_name = snapshot(APP)
      assert.are.same({ p1 = 1, p2 = 2, p3 = 3, p4 = 4, p5 = 5 }, start)
      local reversed = { five[5], five[4], five[3], five[2], five[1] }
      local from = #m:log() + 1
      local plan = assert(c:plan{ apps = { [APP] = { legacy = reversed } } })
      assert.are.equal(4, plan.summary.update)   -- p3 stays at 3
      for _, ch in ipairs(plan.changes) do
        assert.are.same({ { field = "precedence", old = ch.from, new = ch.to } }, ch.fields)
      end
      local report, err = c:apply(plan)
      assert.is_nil(err, err and tostring(err))
      assert.are.equal(4, report.applied)
      for _, q in ipairs(m:log()) do assert.are_not.equal(400, q.status, q.method .. " " .. q.path .. " " .. q.body) end
      replay_unique(APP, start, id_name, from)
      m:assert_invariants()   -- the mock's own record: no shared precedence, no empty app
      local final = legacy_of(APP)
      assert.are.same({ "p5", "p4", "p3", "p2", "p1" }, names(final))
      for i, p in ipairs(final) do assert.are.equal(i, p.precedence) end
      assert.are.equal(5, #final)
      -- content untouched by the moves
      assert.are.equal("deny", final[4].decision)
      assert.are.equal("192.0.2.1/32", final[2].include[1].ip.ip)
      assert.are.same({}, assert(c:plan{ apps = { [APP] = { legacy = reversed } } }).changes)
      c:close()
    end)

    it("rotates, inserts and drops legacy policies in one apply without a shared precedence", function()
      local c = client()
      converge(c, { apps = { [APP] = { legacy = { pol("a"), pol("b"), pol("c"), pol("d") } } } })
      local start, id_name = snapshot(APP)
      local from = #m:log() + 1
      local want = { pol("d"), pol("new1"), pol("a"), pol("c", { require = { r.auth_method("mfa") } }), pol("new2") }
      converge(c, { apps = { [APP] = { legacy = want } } }, { prune = true })
      replay_unique(APP, start, id_name, from)
      m:assert_invariants()
      local final = legacy_of(APP)
      assert.are.same(names(want), names(final))
      for i, p in ipairs(final) do assert.are.equal(i, p.precedence) end
      assert.are.same({}, assert(c:plan({ apps = { [APP] = { legacy = want } } }, { prune = true })).changes)
      c:close()
    end)

    it("on_progress runs across the whole apply and ends at total", function()
      local c = client()
      local plan = assert(c:plan(state))
      local calls = {}
      assert(c:apply(plan, { concurrency = 2,
                             on_progress = function(done, total) calls[#calls + 1] = { done, total } end }))
      assert.is_true(#calls >= 2)
      local total = calls[1][2]
      assert.are.equal(4, total)
      local last = 0
      for _, call in ipairs(calls) do
        assert.are.equal(total, call[2])
        assert.is_true(call[1] >= last)
        last = call[1]
      end
      assert.are.equal(total, last)
      c:close()
    end)

    it("one failed change skips what depends on it, the rest go on, err says so", function()
      local c = client({ max_retries = 0 })
      local s = { apps = { [APP] = { legacy = { pol("a"), pol("b") } }, [APP2] = { legacy = { pol("c") } } } }
      converge(c, s)
      s.apps[APP].legacy = { pol("b"), pol("a") }
      s.apps[APP2].legacy = { pol("c", { decision = "deny" }) }
      local plan = assert(c:plan(s))
      m:fault{ action = "status", status = 400, method = "PUT", path = "/apps/" .. APP .. "/", times = 1 }
      local report, err = c:apply(plan)
      assert.is_table(err)
      assert.matches("1 of 3 changes failed, 1 skipped", err.message)
      assert.are.same({ 1, 1, 1 }, { report.applied, report.failed, report.skipped })
      local by_app = {}
      for _, res in ipairs(report.results) do
        by_app[res.change.app_id] = by_app[res.change.app_id] or {}
        table.insert(by_app[res.change.app_id], res)
      end
      assert.is_true(by_app[APP2][1].ok)
      converge(c, s)
      assert.are.same({ "b", "a" }, names(legacy_of(APP)))
      c:close()
    end)
  end)

  -- Apply `target` over the live state `initial(c)` makes, with a failure
  -- injected before the k-th write for every k in turn (concurrency 1, so
  -- "before the k-th write" is exact): planning and applying again must
  -- converge every time, with no duplicates and no leftovers (`check`).
  local function interrupt_each(c, initial, target, check, min_changes)
    local function fresh()
      m:reset()
      for _, a in ipairs{ APP, APP2, OUTSIDE } do m:app("accounts", ACCT, a) end
      initial(c)
    end
    fresh()
    local plan = assert(c:plan(target, { prune = true }))
    assert.is_true(#plan.changes >= min_changes, tostring(plan))
    local from = #m:log() + 1
    converge(c, target, { prune = true })
    local nwrites = writes(from)
    assert.is_true(nwrites >= #plan.changes)
    check(c)
    local actions = { { action = "status", status = 500 }, { action = "reset_before" },
                      { action = "status", status = 503 } }
    local interrupted = 0
    for k = 1, nwrites do
      fresh()
      local p = assert(c:plan(target, { prune = true }))
      local fault = {}
      for key, v in pairs(actions[(k - 1) % #actions + 1]) do fault[key] = v end
      local injected = false
      local report = c:apply(p, { concurrency = 1, on_progress = function(done)
        if not injected and done >= k - 1 then
          injected = true
          m:fault(fault)
        end
      end })
      assert.is_true(injected, "step " .. k)
      assert.is_table(report)
      if report.failed > 0 then interrupted = interrupted + 1 end
      m:clear_faults()
      -- plan and apply again: everything converges
      converge(c, target, { prune = true })
      check(c)
      m:assert_invariants()
    end
    -- the faults really cut the applies (a create the client's
    -- no-duplicate check finds committed may still succeed)
    assert.is_true(interrupted >= nwrites // 2, interrupted .. " of " .. nwrites .. " applies failed")
  end

  describe("interruption", function()
    it("reusable and legacy changes: a failure before each write in turn, then plan + apply converges", function()
      local c = client({ max_retries = 0 })
      -- reusable creates, an update and a prune delete; a reversed legacy
      -- app with a create, an update and a prune delete; a rotated one
      local target = {
        policies = { pol("r1", { require = { r.auth_method("mfa") } }), pol("r2"), pol("r4"), pol("r5") },
        apps = {
          [APP] = { legacy = { pol("e"), pol("d"), pol("c", { decision = "deny" }), pol("b"), pol("a"), pol("f") } },
          [APP2] = { legacy = { pol("m"), pol("k"), pol("l") } },
        },
      }
      interrupt_each(c, function()
        for _, n in ipairs{ "r1", "r2", "r3" } do assert(c:create_policy(pol(n))) end
        for _, n in ipairs{ "a", "b", "c", "d", "e", "x" } do assert(c:create_app_policy(APP, pol(n))) end
        for _, n in ipairs{ "k", "l", "m" } do assert(c:create_app_policy(APP2, pol(n))) end
      end, target, function()
        assert.are.same({ "r1", "r2", "r4", "r5" }, names(reusable_live()))
        for app, entry in pairs(target.apps) do
          local final = legacy_of(app)
          assert.are.same(names(entry.legacy), names(final))
          for i, p in ipairs(final) do assert.are.equal(i, p.precedence, app .. " " .. p.name) end
        end
        assert.are.equal(4 + 6 + 3, #m:state(), "no duplicates, no leftovers")
        assert.are.same({}, assert(c:plan(target, { prune = true })).changes)
      end, 14)
      c:close()
    end)

    -- with application lists: see "application lists" below
  end)

  describe("export", function()
    it("gives a state whose plan has no changes (legacy apps and reusable policies)", function()
      local c = client()
      converge(c, {
        policies = { pol("staff", { include = { r.ip("192.0.2.1"), r.email_domain("example.com") },
                                    session_duration = "2h" }),
                     pol("svc", { decision = "non_identity", include = { r.any_valid_service_token() } }) },
        apps = { [APP] = { legacy = { pol("l1", { decision = "deny" }), pol("l2", { approval_required = true,
          approval_groups = { { approvals_needed = 1, email_addresses = { "boss@example.com" } } } }) } } },
      })
      local state = assert(c:export{ apps = { APP } })
      assert.are.same({ "staff", "svc" }, names(state.policies))
      assert.are.same({ "l1", "l2" }, names(state.apps[APP].legacy))
      assert.is_nil(state.policies[1].id)
      assert.is_nil(state.apps[APP].legacy[1].precedence)
      assert.are.equal("192.0.2.1", state.policies[1].include[1].ip.ip)
      assert.are.same({}, assert(c:plan(state)).changes)
      -- through JSON, as a state file would carry it
      assert.are.same({}, assert(c:plan(cjson.decode(cjson.encode(state)))).changes)
      c:close()
    end)

    it("round-trips a live state with every rule type (as Lua tables and through JSON)", function()
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
      local state = {
        policies = { pol("identity", { include = everything, exclude = { r.geo("KP") },
                                       require = { r.certificate() } }),
                     pol("service", { decision = "non_identity", include = service }) },
        apps = { [APP] = { legacy = { pol("legacy identity", { include = everything }),
                                      pol("legacy service", { decision = "non_identity", include = service }) } } },
      }
      converge(c, state)
      local live = assert(c:export{ apps = { APP } })
      assert.are.equal(#everything, #live.policies[1].include)
      assert.are.same({}, assert(c:plan(live)).changes)
      assert.are.same({}, assert(c:plan(cjson.decode(cjson.encode(live)))).changes)
      c:close()
    end)

    it("rejects an app id that is not one", function()
      local c = client()
      local state, err = c:export{ apps = { "../x" } }
      assert.is_nil(state)
      assert.are.equal("invalid", err.kind)
      c:close()
    end)
  end)

  -- ---- application lists (API.md section 6 methods) ------------------------
  describe("application lists", function()
    local function app_it(name, fn)
      it(name, function()
        local c = client()
        fn(c)
        c:close()
      end)
    end

    local function links(c, app)
      local a = assert(c:get_app(app))
      local list = {}
      for _, p in ipairs(a.policies or {}) do list[#list + 1] = p end
      table.sort(list, function(x, y) return x.precedence < y.precedence end)
      local out = {}
      for i, p in ipairs(list) do out[i] = p.name or p.id end
      return out, list
    end

    app_it("attaches reusable policies by name, created in the same apply, with expect", function(c)
      local state = { policies = { pol("s1"), pol("s2") }, apps = { [APP] = { "s1", "s2" } } }
      local plan = assert(c:plan(state))
      assert.are.equal(2, plan.summary.create)
      assert.are.equal(2, plan.summary.attach)
      assert.is_truthy(tostring(plan):find("> app " .. APP .. ' "app f174e90a": +s1, +s2', 1, true), tostring(plan))
      converge(c, state)
      assert.are.same({ "s1", "s2" }, links(c, APP))
      local from = #m:log() + 1
      assert.are.same({}, assert(c:plan(state)).changes)
      assert.are.equal(0, writes(from))
    end)

    app_it("reverses five attached reusable policies in one list write", function(c)
      local five = { pol("u1"), pol("u2"), pol("u3"), pol("u4"), pol("u5") }
      converge(c, { policies = five, apps = { [APP] = { "u1", "u2", "u3", "u4", "u5" } } })
      local from = #m:log() + 1
      converge(c, { policies = five, apps = { [APP] = { "u5", "u4", "u3", "u2", "u1" } } })
      assert.are.equal(1, writes(from))
      local order, list = links(c, APP)
      assert.are.same({ "u5", "u4", "u3", "u2", "u1" }, order)
      for i, p in ipairs(list) do assert.are.equal(i, p.precedence) end
      m:assert_invariants()
    end)

    app_it("never sends policies: [] unless the state says so and allow_empty", function(c)
      converge(c, { policies = { pol("s1") }, apps = { [APP] = { "s1" } } })
      local plan, err = c:plan{ policies = { pol("s1") }, apps = { [APP] = {} } }
      assert.is_nil(plan)
      assert.are.equal("invalid", err.kind)
      local from = #m:log() + 1
      converge(c, { policies = { pol("s1") }, apps = { [APP] = {} } }, { allow_empty = true })
      assert.are.same({}, (links(c, APP)))
      assert.are.equal(1, writes(from))
    end)

    app_it("an app with legacy policies given a reusable list: conflict without prune, migrated with it", function(c)
      assert(c:create_app_policy(APP, pol("old")))
      local state = { policies = { pol("new") }, apps = { [APP] = { "new" } } }
      local plan, err = c:plan(state)
      assert.is_nil(plan)
      assert.are.equal("conflict", err.kind)
      local from = #m:log() + 1
      converge(c, state, { prune = true })
      assert.are.same({ "new" }, (links(c, APP)))
      assert.are.same({}, legacy_of(APP))
      -- the links were in place before the legacy policy went: never an
      -- app without a policy (the mock records every moment)
      m:assert_invariants()
      local _, list = writes(from)
      assert.are.equal("POST", list[1].method)   -- the reusable policy
      assert.are.equal("PUT", list[2].method)    -- the app's list (the API drops the legacy one)
      assert.are.same({}, assert(c:plan(state, { prune = true })).changes)
    end)

    app_it("a changed live list is a conflict at apply (expect), nothing overwritten", function(c)
      converge(c, { policies = { pol("s1"), pol("s2") }, apps = { [APP] = { "s1" } } })
      local plan = assert(c:plan{ policies = { pol("s1"), pol("s2") }, apps = { [APP] = { "s2", "s1" } } })
      local s2 = assert(c:list_policies())
      local id
      for _, p in ipairs(s2) do if p.name == "s2" then id = p.id end end
      local _, seen = links(c, APP)
      assert(c:set_app_policies(APP, { id }, { expect = { seen[1].id } }))
      local report, err = c:apply(plan)
      assert.are.equal(1, report.failed)
      assert.are.equal("conflict", err.kind)
      assert.are.same({ "s2" }, (links(c, APP)))
    end)

    app_it("lists, links, a migration and prune: a failure before each write in turn, then plan + apply converges",
      function(c)
      local cc = client({ max_retries = 0 })
      local target = {
        policies = { pol("r1", { require = { r.auth_method("mfa") } }), pol("r3"), pol("r6") },
        apps = { [APP2] = { "r6", "r3", "r1" },    -- attach r6 and r3, detach r2, reorder
                 [APP] = { "r1" } },               -- migration from legacy a, b, c
      }
      interrupt_each(cc, function()
        local ids = {}
        for _, n in ipairs{ "r1", "r2", "r3" } do ids[n] = assert(cc:create_policy(pol(n))).id end
        m:app("accounts", ACCT, APP2, "self_hosted",
          { policies = { { id = ids.r1, precedence = 1 }, { id = ids.r2, precedence = 2 } } })
        for _, n in ipairs{ "a", "b", "c" } do assert(cc:create_app_policy(APP, pol(n))) end
      end, target, function()
        assert.are.same({ "r1", "r3", "r6" }, names(reusable_live()))
        assert.are.same({ "r6", "r3", "r1" }, (links(c, APP2)))
        assert.are.same({ "r1" }, (links(c, APP)))
        assert.are.equal(3, #m:state(), "no duplicates, no leftovers")
        assert.are.same({}, assert(c:plan(target, { prune = true })).changes)
      end, 8)
      cc:close()
    end)

    -- between plan and apply a colleague edits what the list would attach
    app_it("a list is not written when a policy it links was edited live, or its update did not succeed", function(c)
      local everyone = { name = "staff", decision = "allow", include = { r.everyone() } }
      converge(c, { policies = { everyone, pol("base") }, apps = { [APP] = { "base" } } })
      local staff_id = reusable_live()[2].id
      assert.are.equal("staff", reusable_live()[2].name)
      local other = client()
      -- (1) the plan narrows staff and attaches it; the colleague's edit makes the update refused:
      -- the list must not attach the live (everyone) version
      local narrow = pol("staff", { include = { r.email_domain("example.com") } })
      local plan = assert(c:plan{ policies = { narrow, pol("base") }, apps = { [APP] = { "base", "staff" } } })
      assert(other:update_policy(staff_id, { name = "staff", decision = "allow", include = { r.everyone() },
                                             session_duration = "1h" }))
      local from = #m:log() + 1
      local report, err = c:apply(plan)
      assert.are.equal("conflict", err.kind)
      assert.are.equal(0, writes(from), "a write went out")
      assert.are.same({ "base" }, (links(c, APP)), "the edited policy was attached")
      for _, res in ipairs(report.results) do
        assert.is_false(res.ok)
        assert.are.equal("conflict", res.err.kind)
      end
      -- (2) the plan only attaches staff (its content is the state's); the colleague broadens it
      converge(c, { policies = { narrow, pol("base") }, apps = { [APP] = { "base" } } })
      plan = assert(c:plan{ policies = { narrow, pol("base") }, apps = { [APP] = { "base", "staff" } } })
      assert.are.same({ create = 0, update = 0, delete = 0, attach = 1, detach = 0 }, plan.summary)
      assert(other:update_policy(staff_id, { name = "staff", decision = "allow", include = { r.everyone() } }))
      from = #m:log() + 1
      report, err = c:apply(plan)
      assert.are.equal("conflict", err.kind)
      assert.are.equal(0, writes(from), "a write went out")
      assert.matches("changed since the plan", tostring(report.results[1].err), 1, true)
      assert.are.same({ staff_id }, report.results[1].err.ids)
      assert.are.same({ "base" }, (links(c, APP)))
      -- (3) an update that fails (a 500 every time) also holds the list back
      converge(c, { policies = { everyone, pol("base") }, apps = { [APP] = { "base" } } })
      plan = assert(c:plan{ policies = { narrow, pol("base") }, apps = { [APP] = { "base", "staff" } } })
      m:fault{ action = "status", status = 500, method = "PUT", path = "/access/policies/", times = -1 }
      report = c:apply(plan)
      m:clear_faults()
      assert.are.same({ "base" }, (links(c, APP)))
      assert.are.same({ 0, 1, 1 }, { report.applied, report.failed, report.skipped })
      other:close()
      -- a new plan takes the live state in and converges
      converge(c, { policies = { narrow, pol("base") }, apps = { [APP] = { "base", "staff" } } })
      assert.are.same({ "base", "staff" }, (links(c, APP)))
    end)

    app_it("a migration does not delete a legacy policy edited live since the plan", function(c)
      converge(c, { apps = { [APP] = { legacy = { pol("old deny", { decision = "deny" }) } } } })
      local target = { policies = { pol("staff") }, apps = { [APP] = { "staff" } } }
      local plan = assert(c:plan(target, { prune = true }))
      local old = legacy_of(APP)[1]
      local other = client()
      assert(other:update_app_policy(APP, old.id, pol("old deny", { decision = "deny", precedence = old.precedence,
                                                                    session_duration = "2h" })))
      other:close()
      local report, err = c:apply(plan)
      assert.are.equal("conflict", err.kind)
      assert.are.equal(1, #legacy_of(APP), "the edited legacy policy was deleted")
      assert.are.equal("2h", legacy_of(APP)[1].session_duration)
      local set_res
      for _, res in ipairs(report.results) do if res.change.action == "set" then set_res = res end end
      assert.is_false(set_res.ok)
      assert.matches("changed since the plan", tostring(set_res.err), 1, true)
      converge(c, target, { prune = true })
      assert.are.same({}, legacy_of(APP))
    end)

    app_it("a migration whose app cannot be read again writes no list (the write would delete unchecked)", function(c)
      converge(c, { apps = { [APP] = { legacy = { pol("l1"), pol("l2") } } } })
      local target = { policies = { pol("b") }, apps = { [APP] = { "b" } } }
      local plan = assert(c:plan(target, { prune = true }))
      m:fault{ action = "status", status = 500, method = "GET", path = "/apps/" .. APP .. "/policies", times = -1 }
      local nc = client{ max_retries = 0 }
      local report, err = nc:apply(plan)
      nc:close()
      m:clear_faults()
      assert.is_table(err)
      assert.are.same({ "l1", "l2" }, names(legacy_of(APP)), "the list write deleted the legacy policies")
      for _, res in ipairs(report.results) do
        if res.change.action == "set" then
          assert.is_false(res.ok)
          assert.matches("could not be read again", tostring(res.err), 1, true)
        end
      end
      converge(c, target, { prune = true })
      assert.are.same({}, legacy_of(APP))
    end)

    app_it("an edit or a failed update of a policy the app links already holds back no attach", function(c)
      local three = { pol("a"), pol("b"), pol("block", { decision = "deny" }) }
      converge(c, { policies = three, apps = { [APP] = { "a" } } })
      local a_id
      for _, p in ipairs(reusable_live()) do if p.name == "a" then a_id = p.id end end
      -- a colleague edits a, which the app links already; the plan attaches b
      local plan = assert(c:plan{ policies = { pol("a"), pol("b"), pol("block", { decision = "deny" }) },
                                  apps = { [APP] = { "a", "b" } } })
      local other = client()
      assert(other:update_policy(a_id, pol("a", { session_duration = "3h" })))
      other:close()
      local report, err = c:apply(plan)
      assert.is_nil(err, err and tostring(err))
      assert.are.equal(1, report.applied)
      assert.are.same({ "a", "b" }, (links(c, APP)))
      -- a's update fails (a 500 every time); the deny policy is attached all the same
      local want = { policies = { pol("a", { session_duration = "1h" }), three[2], three[3] },
                     apps = { [APP] = { "block", "a", "b" } } }
      plan = assert(c:plan(want))
      m:fault{ action = "status", status = 500, method = "PUT", path = "/access/policies/", times = -1 }
      report = c:apply(plan)
      m:clear_faults()
      assert.are.same({ 1, 1, 0 }, { report.applied, report.failed, report.skipped })
      assert.are.same({ "block", "a", "b" }, (links(c, APP)))
      converge(c, want)
    end)

    app_it("prune detaches, then deletes, a policy only state apps used", function(c)
      converge(c, { policies = { pol("gone"), pol("kept") }, apps = { [APP] = { "gone", "kept" } } })
      local from = #m:log() + 1
      converge(c, { policies = { pol("kept") }, apps = { [APP] = { "kept" } } }, { prune = true })
      local _, list = writes(from)
      assert.are.equal("PUT", list[1].method)       -- the app's list first
      assert.are.equal("DELETE", list[#list].method) -- then the delete
      assert.are.same({ "kept" }, names(reusable_live()))
    end)
  end)
end)
