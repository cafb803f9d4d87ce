-- Applications and their policies list (API.md section 6) against the mock:
-- list_apps, get_app, set_app_policies (read-modify-write of the whole
-- application, expect, allow_empty), attach_policy, detach_policy,
-- make_reusable, the safety rules, and their batch ops.
local cfaccess = require("cfaccess")
local mockctl = require("mockctl")
local cjson = require("cjson").new()

local r = cfaccess.rules
local TOKEN = "t0k3n-apps-spec-S3CRET"
local ACCT = "023e105f4ecef8ad9ca31a8372d0c353"
local ZONE = "9a7806061c88ada191ed06f989cc3dac"
local APP = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local APP2 = "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9"
local ZAPP = "5c4b3a29-1807-4f6e-9d8c-7b6a59483726"
local NOPE = "00000000-0000-4000-8000-000000000000"

-- Fields of an application that the client must send back as they are.
local RICH = {
  session_duration = "12h", app_launcher_visible = true, auto_redirect_to_identity = false,
  allowed_idps = {}, tags = { "prod", "web" }, custom_deny_message = 'n\u{f6} "quoted" \u{2713} \\ /',
  cors_headers = { allowed_methods = { "GET", "POST" }, max_age = 3600, allow_all_origins = false },
  ratio = 0.1, big = 1234567890123, nested = { deep = { list = { 1, 2.5, "x" } } },
}

local function pol(name)
  return { name = name, decision = "allow", include = { r.email(name .. "@example.com") } }
end

local function ids(app)
  local list = {}
  for _, p in ipairs(app.policies or {}) do list[#list + 1] = p end
  table.sort(list, function(a, b) return a.precedence < b.precedence end)
  local out = {}
  for i, p in ipairs(list) do out[i] = p.id end
  return out
end

describe("applications (API.md section 6)", function()
  local m, lines
  local hooks = mockctl.block_hooks({ token = TOKEN },
    { { "accounts", ACCT, APP }, { "accounts", ACCT, APP2 }, { "zones", ZONE, ZAPP } },
    function(mock) m = mock end)
  setup(hooks.setup)
  teardown(hooks.teardown)
  before_each(hooks.before_each)
  before_each(function() lines = {} end)

  local function client(opts) return m:client(ACCT, TOKEN, lines, opts) end
  local function reusable(c, name) return assert(c:create_policy(pol(name))).id end

  it("lists and gets applications at account and zone scope", function()
    local c = client()
    local apps = assert(c:list_apps())
    local seen = {}
    for _, a in ipairs(apps) do seen[a.id] = true end
    assert.is_true(seen[APP] and seen[APP2])
    assert.is_nil(seen[ZAPP])
    local a = assert(c:get_app(APP))
    assert.are.equal(APP, a.id)
    assert.are.equal("self_hosted", a.type)
    local one = assert(c:list_apps{ page = 1, per_page = 1 })
    assert.are.equal(1, #one)
    local from = m:count()
    local _, err = c:get_app("../x")
    assert.are.equal("invalid", err.kind)
    assert.are.equal(from, m:count())
    c:close()
    local z = assert(cfaccess.client{ zone_id = ZONE, api_token = TOKEN, base_url = m.base_url, rate_limit = false })
    local zapps = assert(z:list_apps())
    assert.are.equal(1, #zapps)
    assert.are.equal(ZAPP, zapps[1].id)
    z:close()
  end)

  it("set_app_policies PUTs the whole app with links [{id, precedence}] in order", function()
    local c = client()
    local a, b = reusable(c, "a"), reusable(c, "b")
    local app = assert(c:set_app_policies(APP, { b, { id = a, precedence = 5 } }))
    assert.are.same({ b, a }, ids(app))
    local put = cjson.decode(m:last_put(APP))
    assert.are.same({ { id = b, precedence = 1 }, { id = a, precedence = 5 } }, put.policies)
    for _, k in ipairs{ "id", "aud", "created_at", "updated_at" } do assert.is_nil(put[k], k) end
    assert.are.equal("self_hosted", put.type)
    assert.is_string(put.domain)
    -- refs are checked before anything is sent
    local from = m:count()
    local res, err = c:set_app_policies(APP, { a, a })
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.are.equal("refs[2]", err.problems[1].path)
    res, err = c:set_app_policies(APP, { { id = a, precedence = 0 } })
    assert.is_nil(res)
    assert.are.equal("refs[1].precedence", err.problems[1].path)
    res, err = c:set_app_policies(APP, { "not-a-uuid" }, { expekt = {} })
    assert.is_nil(res)
    assert.are.equal(2, #err.problems)
    assert.are.equal(from, m:count())
    c:close()
  end)

  it("attach keeps every other field of the application byte for byte", function()
    m:app("accounts", ACCT, APP, "self_hosted", { domain = "rich.example.com", name = "rich", body = RICH })
    local before = m:app_info(APP).stored
    local c = client()
    local a = reusable(c, "a")
    local app = assert(c:attach_policy(APP, a))
    assert.are.same({ a }, ids(app))
    local after = m:app_info(APP).stored
    assert.are.same(before, after)
    -- the PUT body: the stored fields plus policies, nothing else
    local raw = m:last_put(APP)
    local put = cjson.decode(raw)
    assert.are.same({ { id = a, precedence = 1 } }, put.policies)
    put.policies = nil
    assert.are.same(before, put)
    assert.is_truthy(raw:find('"ratio":0.1', 1, true), raw)
    assert.is_truthy(raw:find('"allowed_idps":[]', 1, true), raw)
    assert.is_truthy(raw:find('"big":1234567890123', 1, true), raw)
    -- and again: the second PUT is the first with one more link
    local b = reusable(c, "b")
    assert(c:attach_policy(APP, b))
    local put2 = cjson.decode(m:last_put(APP))
    assert.are.same({ { id = a, precedence = 1 }, { id = b, precedence = 2 } }, put2.policies)
    put2.policies = nil
    assert.are.same(before, put2)
    c:close()
  end)

  it("an application field whose JSON type is lost is a conflict naming it; nothing is sent", function()
    m:app("accounts", ACCT, APP, "self_hosted", { body = { mystery = {}, fine = { "x" } } })
    m:app("accounts", ACCT, APP2, "self_hosted", { body = { huge = 18014398509481985 } })
    local c = client()
    local a = reusable(c, "a")
    local puts = m:count("PUT")
    local res, err = c:attach_policy(APP, a)
    assert.is_nil(res)
    assert.are.equal("conflict", err.kind)
    assert.are.equal("mystery", err.field)
    assert.is_truthy(err.message:find("mystery", 1, true))
    assert.are.equal(puts, m:count("PUT"))
    -- a number the decoder could not hold exactly
    res, err = c:attach_policy(APP2, a)
    assert.is_nil(res)
    assert.are.equal("conflict", err.kind)
    assert.are.equal("huge", err.field)
    assert.are.equal(puts, m:count("PUT"))
    c:close()
  end)

  it("expect: a live list that differs sends nothing (conflict); a matching one writes", function()
    local c = client()
    local a, b = reusable(c, "a"), reusable(c, "b")
    assert(c:set_app_policies(APP, { a }))
    local puts = m:count("PUT")
    local res, err = c:set_app_policies(APP, { b, a }, { expect = { b } })
    assert.is_nil(res)
    assert.are.equal("conflict", err.kind)
    assert.are.same({ a }, err.live)
    assert.are.equal(puts, m:count("PUT"))
    local app = assert(c:set_app_policies(APP, { b, a }, { expect = { a } }))
    assert.are.same({ b, a }, ids(app))
    assert.are.equal(puts + 1, m:count("PUT"))
    c:close()
  end)

  it("[] is refused without allow_empty and sent as a JSON array with it", function()
    local c = client()
    local a = reusable(c, "a")
    assert(c:set_app_policies(APP, { a }))
    local from = m:count()
    local res, err = c:set_app_policies(APP, {})
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.are.equal("refs", err.problems[1].path)
    assert.is_truthy(err.message:find("allow_empty", 1, true))
    assert.are.equal(from, m:count())
    -- detaching the last one is the same
    res, err = c:detach_policy(APP, a)
    assert.is_nil(res)
    assert.are.equal("conflict", err.kind)
    assert.are.equal(1, m:count("PUT"))   -- only the first set
    local app = assert(c:set_app_policies(APP, {}, { allow_empty = true }))
    assert.are.same({}, ids(app))
    assert.is_truthy(m:last_put(APP):find('"policies":[]', 1, true), m:last_put(APP))
    c:close()
  end)

  it("attach with a precedence makes room; detach takes one off; both refuse what they cannot do", function()
    local c = client()
    local a, b, x = reusable(c, "a"), reusable(c, "b"), reusable(c, "x")
    assert(c:attach_policy(APP, a))
    assert(c:attach_policy(APP, b))
    local app = assert(c:attach_policy(APP, x, { precedence = 1 }))
    assert.are.same({ x, a, b }, ids(app))
    assert.are.same({ { id = x, precedence = 1 }, { id = a, precedence = 2 }, { id = b, precedence = 3 } },
      cjson.decode(m:last_put(APP)).policies)
    -- attaching what is there already sends nothing
    local puts = m:count("PUT")
    assert(c:attach_policy(APP, a))
    assert.are.equal(puts, m:count("PUT"))
    app = assert(c:detach_policy(APP, a))
    assert.are.same({ x, b }, ids(app))
    local res, err = c:detach_policy(APP, a)
    assert.is_nil(res)
    assert.are.equal("conflict", err.kind)
    -- a legacy policy is not detached (the API would delete it)
    local legacy = assert(c:create_app_policy(APP2, pol("legacy")))
    res, err = c:detach_policy(APP2, legacy.id)
    assert.is_nil(res)
    assert.are.equal("usage", err.kind)
    assert.is_truthy(err.message:find("delete_app_policy", 1, true))
    assert.are.equal(puts + 1, m:count("PUT"))
    c:close()
  end)

  it("delete_policy of an attached reusable policy is a conflict naming the count, unless force", function()
    local c = client()
    local a = reusable(c, "a")
    assert(c:attach_policy(APP, a))
    assert(c:attach_policy(APP2, a))
    local deletes = m:count("DELETE")
    local res, err = c:delete_policy(a)
    assert.is_nil(res)
    assert.are.equal("conflict", err.kind)
    assert.are.equal(2, err.app_count)
    assert.is_truthy(err.message:find("2 applications", 1, true), err.message)
    assert.are.equal(deletes, m:count("DELETE"))
    -- force sends it: the mock refuses it as the docs say the API does
    res, err = c:delete_policy(a, { force = true })
    assert.is_nil(res)
    assert.are.equal("api", err.kind)
    assert.are.equal(deletes + 1, m:count("DELETE"))
    assert(c:detach_policy(APP, a, { allow_empty = true }))
    assert(c:detach_policy(APP2, a, { allow_empty = true }))
    assert.are.equal(a, assert(c:delete_policy(a)).id)
    res, err = c:delete_policy(a, { forse = true })
    assert.is_nil(res)
    assert.are.equal("usage", err.kind)
    c:close()
  end)

  it("update_app_policy / delete_app_policy on a linked reusable policy are usage errors", function()
    local c = client()
    local a = reusable(c, "a")
    assert(c:attach_policy(APP, a))
    local writes = m:count("PUT") + m:count("DELETE")
    local res, err = c:update_app_policy(APP, a, pol("a2"))
    assert.is_nil(res)
    assert.are.equal("usage", err.kind)
    assert.is_truthy(err.message:find("update_policy", 1, true))
    -- options the batch ops do not take (legacy, strict) do not get past it
    res, err = c:update_app_policy(APP, a, { name = "o", decision = "allow", include = { { okta = {
      email = "admins@example.com", connection_id = "ea85612a-29c8-46c2-bacb-669d65136971" } } } },
      { legacy = true })
    assert.is_nil(res)
    assert.are.equal("usage", err.kind)
    res, err = c:delete_app_policy(APP, a)
    assert.is_nil(res)
    assert.are.equal("usage", err.kind)
    assert.is_truthy(err.message:find("detach_policy", 1, true))
    assert.are.equal(writes, m:count("PUT") + m:count("DELETE"))
    -- a legacy one goes through; a bad body is still invalid before any read
    local legacy = assert(c:create_app_policy(APP, pol("legacy")))
    assert(c:update_app_policy(APP, legacy.id, pol("legacy2")))
    local gets = m:count("GET")
    res, err = c:update_app_policy(APP, legacy.id, { name = "x" })
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.are.equal(gets, m:count("GET"))
    assert(c:delete_app_policy(APP, legacy.id))
    c:close()
  end)

  it("a legacy policy made reusable, then attached to another app", function()
    local c = client()
    local legacy = assert(c:create_app_policy(APP, pol("legacy")))
    assert.is_false(legacy.reusable)
    local p = assert(c:make_reusable(APP, legacy.id))
    assert.are.equal(legacy.id, p.id)
    assert.is_true(p.reusable)
    local req = m:log()[#m:log()]
    assert.are.equal("PUT", req.method)
    assert.is_truthy(req.path:find("/policies/" .. legacy.id .. "/make_reusable", 1, true))
    -- still linked to its app, now attachable elsewhere
    assert.are.same({ legacy.id }, ids(assert(c:get_app(APP))))
    assert.are.same({ legacy.id }, ids(assert(c:attach_policy(APP2, legacy.id))))
    assert.are.equal(2, assert(c:get_policy(legacy.id)).app_count)
    local _, err = c:make_reusable(APP, legacy.id)
    assert.are.equal("api", err.kind)
    c:close()
  end)

  it("batch ops of section 6, with the core's, results in input order", function()
    local c = client()
    local a, b = reusable(c, "a"), reusable(c, "b")
    local legacy = assert(c:create_app_policy(APP2, pol("legacy")))
    local busy = reusable(c, "busy")
    assert(c:attach_policy(APP2, busy))
    local progress = {}
    local res = assert(c:batch({
      { op = "set_app_policies", app_id = APP, refs = { b, a } },
      { op = "get_policy", policy_id = a },
      { op = "make_reusable", app_id = APP2, policy_id = legacy.id },
      { op = "delete_policy", policy_id = busy },
      { op = "list_apps" },
      { op = "create_group", group = { name = "g", include = { r.everyone() } } },
      { op = "delete_app_policy", app_id = APP2, policy_id = busy },
      { op = "get_app", app_id = APP2 },
    }, { concurrency = 4, on_progress = function(done, total) progress[#progress + 1] = { done, total } end }))
    assert.are.equal(8, #res)
    assert.is_true(res[1].ok)
    assert.are.same({ b, a }, ids(res[1].result))
    assert.are.equal(a, res[2].result.id)
    assert.is_true(res[3].ok)
    assert.is_true(res[3].result.reusable)
    assert.is_false(res[4].ok)
    assert.are.equal("conflict", res[4].err.kind)
    assert.are.equal(1, res[4].err.app_count)
    assert.is_true(res[5].ok)
    assert.is_true(#res[5].result >= 2)
    assert.are.equal("g", res[6].result.name)
    assert.are.equal("usage", res[7].err.kind)
    assert.is_true(res[8].ok)
    local last = progress[#progress]
    assert.are.same({ 8, 8 }, last)
    for i = 2, #progress do assert.is_true(progress[i][1] >= progress[i - 1][1]) end
    -- attach and detach as ops; a forced delete as an op
    res = assert(c:batch({
      { op = "attach_policy", app_id = APP, policy_id = busy, opts = { precedence = 1 } },
      { op = "detach_policy", app_id = APP2, policy_id = busy },
    }))
    assert.is_true(res[1].ok and res[2].ok, tostring(res[1].err or res[2].err))
    assert.are.same({ busy, b, a }, ids(res[1].result))
    c:close()
  end)

  it("batch: every op is checked before anything is sent, paths name the op", function()
    local c = client()
    local a = reusable(c, "a")
    local from = m:count()
    local res, err = c:batch({
      { op = "get_policy", policy_id = a },
      { op = "set_app_policies", app_id = APP, refs = {} },
      { op = "attach_policy", app_id = "../x", policy_id = a },
      { op = "detach_policy", app_id = APP2, policy_id = a, opts = { precedence = 1 } },
      { op = "update_app_policy", app_id = APP, policy_id = a, policy = { name = "x" } },
      { op = "delete_policy", policy_id = a, opts = { force = "yes" } },
      { op = "create_group", group = { name = "g" } },
      { op = "set_app_policies", app_id = APP2, refs = { a } },
    })
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    local paths = {}
    for _, p in ipairs(err.problems) do paths[#paths + 1] = p.path end
    local text = table.concat(paths, " ")
    for _, want in ipairs{ "ops[2].refs", "ops[3].app_id", "ops[4].opts", "ops[5].policy", "ops[6].opts",
                           "ops[7].group", "ops[8].app_id" } do
      assert.is_truthy(text:find(want, 1, true), want .. " in " .. text)
    end
    assert.is_falsy(text:find("ops[1]", 1, true))
    assert.is_falsy(text:find("ops[0]", 1, true))
    assert.are.equal(from, m:count())
    c:close()
  end)

  it("the zone scope: an app's list of legacy policies, make_reusable refused", function()
    local z = assert(cfaccess.client{ zone_id = ZONE, api_token = TOKEN, base_url = m.base_url, rate_limit = false })
    local p1 = assert(z:create_app_policy(ZAPP, { name = "z1", decision = "allow", include = { r.everyone() } }))
    local p2 = assert(z:create_app_policy(ZAPP, { name = "z2", decision = "allow", include = { r.everyone() } }))
    -- reorder the legacy policies through the list: they are kept by id
    local app = assert(z:set_app_policies(ZAPP, { p2.id, p1.id }, { expect = { p1.id, p2.id } }))
    assert.are.same({ p2.id, p1.id }, ids(app))
    assert.are.equal(2, #m:state())
    local res, err = z:make_reusable(ZAPP, p1.id)
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.is_truthy(err.message:find("account scope", 1, true), err.message)
    -- a zone policy body is checked as kind "zone" before the guard reads anything
    local gets = m:count("GET")
    res, err = z:update_app_policy(ZAPP, p1.id, { name = "z1", decision = "allow", include = { r.everyone() },
      session_duration = "1h" })
    assert.is_nil(res)
    assert.are.equal("invalid", err.kind)
    assert.are.equal(gets, m:count("GET"))
    assert(z:update_app_policy(ZAPP, p1.id, { name = "z1b", decision = "allow", include = { r.everyone() } }))
    z:close()
  end)

  it("runs the compiled-in src/apps.lua: src/apps_lua.h is made from the current file", function()
    local root = os.getenv("CFACCESS_TEST_ROOT") or "."
    local src = assert(mockctl.read_file(root .. "/src/apps.lua"))
    local hdr = assert(mockctl.read_file(root .. "/src/apps_lua.h"))
    local bytes = {}
    for hx in hdr:gmatch("0x(%x%x),") do bytes[#bytes + 1] = string.char(tonumber(hx, 16)) end
    assert.are.equal(#src, #bytes, "src/apps_lua.h is stale: run make")
    assert.is_true(src == table.concat(bytes), "src/apps_lua.h is stale: run make")
    -- the methods are the core's, whatever module was required
    local index = getmetatable(assert(require("cfaccess.core").client{ account_id = ACCT, api_token = TOKEN,
      base_url = "http://127.0.0.1:9/" })).__index
    for _, name in ipairs{ "list_apps", "get_app", "set_app_policies", "attach_policy", "detach_policy",
                           "make_reusable", "create_group", "list_groups", "get_group", "update_group",
                           "delete_group" } do
      assert.is_function(index[name], name)
    end
  end)

  it("never leaks the token into errors or logs", function()
    local c = client()
    local _, err = c:set_app_policies(NOPE, { NOPE })
    assert.are.equal("api", err.kind)
    assert.are.equal(404, err.status)
    assert.is_falsy(tostring(err):find(TOKEN, 1, true))
    for _, l in ipairs(lines) do assert.is_falsy(l:find(TOKEN, 1, true)) end
    c:close()
  end)
end)
