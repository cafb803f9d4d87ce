-- cfaccess.render: how the command prints plans, apply reports, values
-- and the progress line (pure functions, no subprocess).
-- luacheck: no max line length
local cjson = require("cjson").new()
local APP = require("clitest").APP

describe("cfaccess.render", function()
  local render = require("cfaccess.render")
  local A = "11111111-1111-4111-8111-111111111111"
  local B = "22222222-2222-4222-8222-222222222222"

  local PLAN = {
    changes = {
      { action = "create", type = "reusable", name = "staff" },
      { action = "update", type = "reusable", name = "contractors", id = A,
        fields = { { field = "session_duration", old = "24h", new = "4h" },
                   { field = "include", old = { { email = { email = "c@ext.example" } } },
                     new = { { email_domain = { domain = "a-very-long-partner-domain.example.com" } }, { everyone = {} } } } } },
      { action = "delete", type = "legacy", name = "old allow", id = B, app_id = APP },
      { action = "set", type = "app", app_id = APP,
        fields = { { field = "policies", old = { "staff", "old" }, new = { "staff", "contractors" } } } },
    },
    summary = { create = 1, update = 1, delete = 1, attach = 1, detach = 1 },
    warnings = { { path = "policies", message = 'kept "shared": app ' .. B .. " outside the state uses it" } },
  }

  it("prints one line per change, an update's fields indented, warnings and a summary", function()
    assert.are.equal(table.concat({
      '+ reusable "staff"',
      '~ reusable "contractors" (' .. A .. ")",
      '    session_duration: "24h" -> "4h"',
      '    include: [{"email":{"email":"c@ext.example"}}] -> [{"email_domain":{"domain":"a-very-long-partner-domain.ex...',
      '- legacy "old allow" (' .. B .. ") of app " .. APP,
      "> app " .. APP .. ": staff, +contractors, -old",
      'warning: policies: kept "shared": app ' .. B .. " outside the state uses it",
      "Plan: 1 to create, 1 to update, 1 to delete, 1 link to attach, 1 to detach.",
    }, "\n") .. "\n", render.plan(PLAN))
  end)

  it("takes an app's list from policies/attach/detach when the plan gives them", function()
    local line = render.change{ action = "set", type = "app", app_id = APP, name = "portal",
      policies = { "a", { name = "b", id = A } }, attach = { "b" }, detach = { { name = "z", id = B } } }
    assert.are.equal("> app " .. APP .. ' "portal": a, +b, -z', line)
    assert.are.equal("> app " .. APP .. ": (no policies)", render.change{ action = "set", app_id = APP, policies = {} })
  end)

  it("says No changes. for an empty plan, and counts from the changes without a summary", function()
    assert.are.equal("No changes.\n", render.plan{ changes = {}, summary = {} })
    assert.are.equal('+ policy "x"\nPlan: 1 to create, 0 to update, 0 to delete, 0 links to attach, 0 to detach.\n',
      render.plan{ changes = { { action = "create", name = "x" } } })
  end)

  it("counts a plan that only reorders applications' lists as changes, not as No changes.", function()
    local text = render.plan{ changes = { { action = "set", type = "app", app_id = APP, name = "portal",
      order = { "b", "a" }, attach = {}, detach = {} } }, summary = { create = 0, update = 0, delete = 0, attach = 0, detach = 0 } }
    assert.are.equal("> app " .. APP .. ' "portal": b, a\nPlan: 1 application list to reorder.\n', text)
  end)

  it("colours the marks only when asked", function()
    local text = render.plan(PLAN, true)
    assert.is_truthy(text:find('\27[32m+\27[0m reusable "staff"', 1, true), text)
    assert.is_truthy(text:find('\27[31m-\27[0m legacy', 1, true), text)
    assert.is_truthy(text:find('\27[32m+contractors\27[0m', 1, true), text)
    assert.is_falsy(render.plan(PLAN):find("\27", 1, true))
  end)

  it("prints table values with sorted keys", function()
    assert.are.equal('{"github":{"idp":"i","name":"n","team":"t"}}',
      render.short{ github = { team = "t", name = "n", idp = "i" } })
    assert.are.equal('["a/b",1,true]', render.short{ "a/b", 1, true })
  end)

  it("writes plain data as JSON: sorted keys, empty lists as [], numbers exact", function()
    assert.are.equal('{"changes":[],"summary":{"create":0,"x":0.1},"warnings":[{"path":"a/b"}]}',
      render.json{ changes = {}, warnings = { { path = "a/b" } }, summary = { x = 0.1, create = 0 } })
    assert.are.equal('{"body":{"exclude":[],"include":[{"everyone":{}}]},"n":null}',
      render.json{ body = { include = { { everyone = {} } }, exclude = {} }, n = cjson.null })
    assert.are.equal("1e+300", render.json(1e300))
  end)

  it("shortens long values on a UTF-8 boundary", function()
    local s = render.short(("é"):rep(40))
    assert.is_true(#s <= render.MAX_VALUE)
    assert.is_truthy(utf8.len(s), "cut inside a character")
    assert.matches("%.%.%.$", s)
    assert.are.equal("(none)", render.short(nil))
    assert.are.equal('"a\\nb"', render.short("a\nb"))
  end)

  it("prints an apply report: what failed and what was skipped, then the counts", function()
    local err = setmetatable({ kind = "api", message = "HTTP 400: bad request" }, { __tostring = function(e) return e.message end })
    local text = render.report{ applied = 2, failed = 1, skipped = 1, results = {
      { change = PLAN.changes[1], ok = true, id = A },
      { change = PLAN.changes[2], ok = false, err = err },
      { change = PLAN.changes[4], ok = false, skipped = true },
      { change = PLAN.changes[3], ok = true },
    } }
    assert.are.equal(table.concat({
      'failed: ~ reusable "contractors" (' .. A .. "): HTTP 400: bad request",
      "skipped: > app " .. APP .. ": a change it depends on failed",
      "Applied 2, failed 1, skipped 1.",
    }, "\n") .. "\n", text)
  end)

  it("says skipped once for apply's skip errors (\"skipped: why\")", function()
    local err = setmetatable({ kind = "conflict", message = "skipped: create reusable policy \"staff\" did not succeed" },
      { __tostring = function(e) return e.message end })
    local text = render.report{ applied = 0, failed = 0, skipped = 1, results = {
      { change = PLAN.changes[4], ok = false, skipped = true, err = err } } }
    assert.are.equal("skipped: > app " .. APP .. ': create reusable policy "staff" did not succeed\n'
      .. "Applied 0, failed 0, skipped 1.\n", text)
  end)

  it("draws the progress line, with the wait and its reason", function()
    assert.are.equal("[----------] 0/4  0:00", render.progress(0, 4, 0, nil, 10))
    assert.are.equal("[#####-----] 2/4  1:05  waiting 42 s: rate limit",
      render.progress(2, 4, 65.4, { waiting = 41.2, reason = "rate limit" }, 10))
    assert.are.equal("[####################] 3/3  0:09", render.progress(3, 3, 9))
  end)
end)
