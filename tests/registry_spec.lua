-- The endpoint registry (src/resources.c) and the option readers
-- (src/argcheck.c), seen from Lua: every registry method exists on the
-- client and as a batch op, the shared checks give one message whether
-- reached through a method or a batch op, mistyped option and op-field
-- names are named with a suggestion, and a create retried after an
-- ambiguous try treats both duplicate-precedence codes (11018, 12130) as
-- "it may exist: look".
local core = require("cfaccess.core")
local mockctl = require("mockctl")
local testutil = require("testutil")

local TOKEN = "t0k3n-registry-spec-S3CRET"
local ACCT = "5d0a1c9e8b7f6a5d4c3b2a1f0e9d8c7b"
local ZONE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
local APP = "7b1f3a52-9d64-4c1e-8a2b-5e6f7a8b9c0d"
local MISSING = "00000000-0000-4000-8000-000000000000"

-- The methods the registry rows generate (API.md section 3).
local METHODS = {
  "create_app_policy", "list_app_policies", "get_app_policy", "update_app_policy",
  "delete_app_policy", "create_policy", "list_policies", "get_policy", "update_policy",
  "delete_policy",
}

describe("endpoint registry", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN },
    { { "accounts", ACCT, APP }, { "zones", ZONE, APP } }, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)
  before_each(function() lines = {} end)

  local function account() return m:client(ACCT, TOKEN, lines) end
  local function zone()
    return assert(core.client{ zone_id = ZONE, api_token = TOKEN, base_url = m.base_url,
                               rate_limit = false, max_retries = 2 })
  end

  -- The problem messages of a batch err, by path.
  local function problems(err)
    local by = {}
    for _, p in ipairs(err.problems) do by[p.path] = p.message end
    return by
  end

  it("generates every method on the client and accepts it as a batch op", function()
    local c = account()
    local ops = {}
    for i, name in ipairs(METHODS) do
      assert.is_function(c[name], name)
      ops[i] = { op = name }
    end
    local r, err = c:batch(ops)
    assert.is_nil(r)
    for path, msg in pairs(problems(err)) do
      assert.is_nil(msg:find("unknown operation", 1, true), path .. ": " .. msg)
    end
    assert.equal(0, #m:log())
    c:close()
  end)

  it("names a mistyped batch option, with a suggestion", function()
    local c = account()
    local r, err = c:batch({}, { concurency = 2 })
    assert.is_nil(r)
    assert.equal("usage", err.kind)
    assert.equal('batch options: unknown option "concurency" (did you mean "concurrency"?)',
                 err.message)
    r, err = c:batch({}, { concurrency = 65 })
    assert.is_nil(r)
    assert.equal("batch option concurrency: expected an integer <= 64, got 65", err.message)
    c:close()
  end)

  it("names a mistyped op field, with a suggestion", function()
    local c = account()
    local r, err = c:batch({ { op = "list_app_policies", app_id = APP, per_pag = 2 } })
    assert.is_nil(r)
    assert.equal('unknown field for list_app_policies (did you mean "per_page"?)',
                 problems(err)["ops[1].per_pag"])
    c:close()
  end)

  it("checks list options once: same rule from a method and a batch op", function()
    local c = account()
    local _, merr = c:list_app_policies(APP, { per_page = 5000 })
    local _, berr = c:batch({ { op = "list_app_policies", app_id = APP, per_page = 5000 } })
    assert.equal("list option per_page: expected an integer <= 1000, got 5000", merr.message)
    assert.equal("expected an integer <= 1000, got 5000", problems(berr)["ops[1].per_page"])
    c:close()
  end)

  it("checks the body kind against the scope once, for methods and batch ops", function()
    local c = zone()
    local _, merr = c:create_app_policy(APP, testutil.named_policy("k"), { kind = "app" })
    assert.equal("usage", merr.kind)
    assert.equal('kind: create_app_policy takes kind "zone" on this client', merr.message)
    local _, berr = c:batch({ { op = "create_app_policy", app_id = APP, kind = "app",
                                policy = testutil.named_policy("k") } })
    assert.equal('create_app_policy takes kind "zone" on this client', problems(berr)["ops[1].kind"])
    c:close()
    c = account()
    _, merr = c:update_app_policy(APP, MISSING, testutil.named_policy("k"), { kind = "zone" })
    assert.equal('kind: update_app_policy takes kind "app" or "infrastructure" on this client',
                 merr.message)
    c:close()
    assert.equal(0, #m:log())
  end)

  it("checks the scope once, for methods and batch ops", function()
    local c = zone()
    local msg = "reusable policies exist only at account scope (this client has a zone_id)"
    local _, merr = c:list_policies()
    assert.equal("usage", merr.kind)
    assert.equal(msg, merr.message)
    local _, berr = c:batch({ { op = "get_policy", policy_id = MISSING } })
    assert.equal("get_policy: " .. msg, problems(berr)["ops[1].op"])
    c:close()
    assert.equal(0, #m:log())
  end)

  -- The create commits but answers 500 (ambiguous); the check listing is
  -- made to come back empty, so the create is retried; the retry is refused
  -- with `code`. A duplicate-precedence code means the first try may have
  -- made it: the client lists again and returns the policy it finds.
  local function retried_create(code)
    local c = account()
    local empty = '{"success":true,"errors":[],"messages":[],"result":[],' ..
                  '"result_info":{"page":1,"per_page":20,"count":0,"total_count":0,"total_pages":1}}'
    m:fault{
      { action = "status", status = 500, process = true, method = "POST" },
      { action = "status", status = 200, body = empty, method = "GET" },
      { action = "status", status = 400, method = "POST",
        errors = { { code = code, message = "mock: refused" } } },
    }
    local r, err = c:create_app_policy(APP, testutil.named_policy("dup", { precedence = 7 }))
    local posts = m:count("POST")
    c:close()
    return r, err, posts
  end

  for _, code in ipairs{ 11018, 12130 } do
    it("after an ambiguous create, duplicate-precedence code " .. code .. " means: look", function()
      local r, err, posts = retried_create(code)
      assert.is_nil(err)
      assert.equal("dup", r.name)
      assert.equal(7, r.precedence)
      assert.equal(2, posts)
      assert.equal(1, #m:state())
    end)
  end

  it("after an ambiguous create, another 400 code is the answer", function()
    local r, err, posts = retried_create(10001)
    assert.is_nil(r)
    assert.equal("api", err.kind)
    assert.equal(400, err.status)
    assert.equal(10001, err.errors[1].code)
    assert.equal(2, posts)
  end)
end)
