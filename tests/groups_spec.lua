-- Access groups (API.md section 6): the five calls at account and zone
-- scope against the mock, bodies validated as kind "group" before anything
-- is sent, and their batch ops.
local cfaccess = require("cfaccess")
local mockctl = require("mockctl")
local cjson = require("cjson").new()

local r = cfaccess.rules
local TOKEN = "t0k3n-groups-spec-S3CRET"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local ZONE = "9a7806061c88ada191ed06f989cc3dac"
local NOPE = "00000000-0000-4000-8000-000000000000"

describe("Access groups", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN }, {}, function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)
  before_each(function() lines = {} end)

  local function client(opts) return m:client(ACCT, TOKEN, lines, opts) end
  local function zclient()
    return assert(cfaccess.client{ zone_id = ZONE, api_token = TOKEN, base_url = m.base_url, rate_limit = false })
  end

  it("create, list, get, update, delete at account scope", function()
    local c = client()
    local g = assert(c:create_group{ name = "admins", include = r.emails{ "a@example.com", "b@example.com" },
                                     require = { r.auth_method("mfa") } })
    assert.are.equal("admins", g.name)
    assert.is_string(g.id)
    local req = m:log()[#m:log()]
    assert.are.equal("POST", req.method)
    assert.is_truthy(req.path:find("/accounts/" .. ACCT .. "/access/groups", 1, true))
    assert.are.same({ name = "admins", include = { { email = { email = "a@example.com" } },
      { email = { email = "b@example.com" } } }, require = { { auth_method = { auth_method = "mfa" } } } },
      cjson.decode(req.body))
    local list = assert(c:list_groups())
    assert.are.equal(1, #list)
    assert.are.equal(g.id, list[1].id)
    assert.are.equal("admins", assert(c:get_group(g.id)).name)
    local u = assert(c:update_group(g.id, { name = "admins 2", include = { r.everyone() }, is_default = true }))
    assert.are.equal("admins 2", u.name)
    assert.is_true(u.is_default)
    assert.are.equal("PUT", m:log()[#m:log()].method)
    assert.are.equal(g.id, assert(c:delete_group(g.id)).id)
    local _, err = c:get_group(g.id)
    assert.are.equal("api", err.kind)
    assert.are.equal(404, err.status)
    c:close()
  end)

  it("the same calls at zone scope, apart from the account's groups", function()
    local c, z = client(), zclient()
    assert(c:create_group{ name = "acct", include = { r.everyone() } })
    local g = assert(z:create_group{ name = "zone", include = { r.ip("192.0.2.0/24") } })
    assert.is_truthy(m:log()[#m:log()].path:find("/zones/" .. ZONE .. "/access/groups", 1, true))
    local zl = assert(z:list_groups())
    assert.are.equal(1, #zl)
    assert.are.equal("zone", zl[1].name)
    assert(z:update_group(g.id, { name = "zone 2", include = { r.everyone() } }))
    assert.are.equal("zone 2", assert(z:get_group(g.id)).name)
    local _, err = c:get_group(g.id)        -- not the account's
    assert.are.equal(404, err.status)
    assert(z:delete_group(g.id))
    c:close()
    z:close()
  end)

  it("a body that is not a group is invalid, with paths, and nothing is sent", function()
    local c = client()
    local from = m:count()
    local res, err = c:create_group{ include = { { email = { email = 42 } } }, decision = "allow" }
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    local paths = {}
    for _, p in ipairs(err.problems) do paths[p.path] = true end
    assert.is_true(paths.name, "name is required")
    assert.is_true(paths["include[1].email.email"])
    assert.is_true(paths.decision, "a group has no decision")
    res, err = c:update_group(NOPE, { name = "x", include = {} })
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.are.equal("include", err.problems[1].path)
    res, err = c:update_group(NOPE, { name = "x", include = { r.everyone() }, is_default = "yes" })
    assert.is_nil(res)
    assert.are.equal("is_default", err.problems[1].path)
    res, err = c:get_group("../x")
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    res, err = c:create_group({ name = "x", include = { r.everyone() } }, { kind = "app" })
    assert.is_nil(res)
    assert.are.equal("usage", err.kind)
    assert.are.equal(from, m:count())
    c:close()
  end)

  it("batch ops: group_id and group as named fields, checked first", function()
    local c = client()
    local res = assert(c:batch({
      { op = "create_group", group = { name = "g1", include = { r.everyone() } } },
      { op = "create_group", group = { name = "g2", include = { r.email_domain("example.com") } } },
      { op = "list_groups", per_page = 50 },
      { op = "get_group", group_id = NOPE },
    }))
    assert.is_true(res[1].ok and res[2].ok)
    assert.are.equal("g2", res[2].result.name)
    assert.is_true(res[3].ok)
    assert.are.equal(404, res[4].err.status)
    local g1 = res[1].result.id
    res = assert(c:batch({
      { op = "update_group", group_id = g1, group = { name = "g1b", include = { r.everyone() } } },
      { op = "delete_group", group_id = res[2].result.id },
    }))
    assert.are.equal("g1b", res[1].result.name)
    assert.is_true(res[2].ok)
    local from = m:count()
    local _, err = c:batch({
      { op = "create_group", group = { name = "x" } },
      { op = "delete_group", group_id = "nope" },
      { op = "update_group", group_id = g1, policy = {} },
    })
    assert.are.equal("invalid", err.kind)
    local paths = {}
    for _, p in ipairs(err.problems) do paths[#paths + 1] = p.path end
    local text = table.concat(paths, " ")
    for _, want in ipairs{ "ops[1].group.include", "ops[2].group_id", "ops[3].policy", "ops[3].group" } do
      assert.is_truthy(text:find(want, 1, true), want .. " in " .. text)
    end
    assert.are.equal(from, m:count())
    assert.are.equal(1, #assert(c:list_groups()))
    c:close()
  end)

  it("a group create that may have happened is not sent twice", function()
    local c = client()
    m:fault{ action = "commit_then_fail", method = "POST", status = 500 }
    local g = assert(c:create_group{ name = "once", include = { r.everyone() } })
    assert.are.equal("once", g.name)
    assert.are.equal(1, #assert(c:list_groups()))
    assert.are.equal(1, m:count("POST"))
    c:close()
  end)
end)
