-- cfaccess.same and cfaccess.request_body (API.md section 7): a table of
-- pairs the server stores alike or not, for every kind, the cases of issue
-- 10 item 1, and request_body round trips through validate.
local cfaccess = require("cfaccess")
local cjson = require("cjson").new()

local UUID = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local IDP = "ea85612a-29c8-46c2-bacb-669d65136971"

-- A policy body with `extra` merged in (false removes a field).
local function P(extra)
  local p = { name = "staff", decision = "allow",
              include = { { email_domain = { domain = "example.com" } } } }
  for k, v in pairs(extra or {}) do
    if v == false then p[k] = nil else p[k] = v end
  end
  return p
end

-- What the server gives back for the body P(extra): its defaults filled
-- in, the read-only fields added, numbers as lua-cjson 2.1.0 decodes them.
local function R(extra, kind)
  local r = P(extra)
  r.id = UUID
  r.created_at = "2026-12-01T10:00:00.000000Z"
  r.updated_at = "2026-12-01T10:00:00.000000Z"
  r.exclude = r.exclude or {}
  r.require = r.require or {}
  r.approval_groups = r.approval_groups or {}
  r.approval_required = r.approval_required or false
  r.isolation_required = r.isolation_required or false
  r.purpose_justification_required = r.purpose_justification_required or false
  if kind == "reusable" then
    r.reusable, r.app_count = true, 2.0
  elseif kind ~= "zone" and kind ~= "infrastructure" and kind ~= "group" then
    if r.session_duration == nil then r.session_duration = "24h" end
  end
  if kind == "app" or kind == "zone" or kind == nil then
    r.precedence = r.precedence or 1.0
  end
  return r
end

local mfa = { { auth_method = { auth_method = "mfa" } } }
local ip = function(s) return { ip = { ip = s } } end
local em = function(s) return { email = { email = s } } end

-- { name, a, b, kind (nil: "app"), expected same? }
local PAIRS = {
  -- issue 10 item 1 (a): same name and include, but an older policy that
  -- requires mfa and has a 1h session is a different policy
  { "issue 10 (a): require and session_duration differ", P(),
    R{ require = mfa, session_duration = "1h" }, nil, false },
  { "issue 10 (a): only the session differs", P(), R{ session_duration = "1h" }, nil, false },
  { "issue 10 (a): only require differs", P(), R{ require = mfa }, nil, false },
  { "issue 10 (b): the server's copy of the request itself", P(), R(), nil, true },
  { "omitted session_duration is the 24h default", P(), P{ session_duration = "24h" }, nil, true },
  { "omitted session_duration is not 1h", P(), P{ session_duration = "1h" }, nil, false },
  { "\"\" is the app's session, not 24h", P{ session_duration = "" }, R(), nil, false },
  { "\"\" as the server gives it back", P{ session_duration = "" }, R{ session_duration = "" }, nil, true },
  { "\"\" and null both mean the app's session", P{ session_duration = "" },
    P{ session_duration = cjson.null }, nil, true },
  { "durations compare by value", P{ session_duration = "90m" }, P{ session_duration = "1h30m" }, nil, true },
  { "durations that differ", P{ session_duration = "90m" }, P{ session_duration = "1h31m" }, nil, false },
  { "false flags are absent", P(), P{ approval_required = false, isolation_required = false,
    purpose_justification_required = false }, nil, true },
  { "a true flag is not absent", P(), P{ approval_required = true }, nil, false },
  { "empty lists are absent", P(), P{ exclude = {}, require = {}, approval_groups = {} }, nil, true },
  { "empty lists are absent, null too", P(), P{ exclude = cjson.null, require = {} }, nil, true },
  { "an empty optional object is absent", P(), P{ mfa_config = {} }, nil, true },
  { "an mfa_config with only defaults is absent", P(), P{ mfa_config = { mfa_disabled = false,
    allowed_authenticators = {} } }, nil, true },
  { "an mfa_config that says something", P(), P{ mfa_config = { mfa_disabled = true } }, nil, false },
  { "precedence one side leaves out", P(), P{ precedence = 7 }, nil, true },
  { "precedences that differ", P{ precedence = 2 }, P{ precedence = 7 }, nil, false },
  { "precedence 2 and 2.0", P{ precedence = 2 }, P{ precedence = 2.0 }, nil, true },
  { "read-only fields ignored", P{ id = UUID, created_at = "x" }, P{ id = "other", updated_at = "y",
    uid = "z", reusable = true, app_count = 3 }, nil, true },
  { "single IPv4 with and without /32", P{ include = { ip("192.0.2.1") } },
    P{ include = { ip("192.0.2.1/32") } }, nil, true },
  { "single IPv6 with and without /128", P{ include = { ip("2001:db8::1") } },
    P{ include = { ip("2001:db8::1/128") } }, nil, true },
  { "IPv6 compressed and expanded", P{ include = { ip("2001:db8::1") } },
    P{ include = { ip("2001:0DB8:0000:0000:0000:0000:0000:0001/128") } }, nil, true },
  { "networks compare by address", P{ include = { ip("2001:db8::/32") } },
    P{ include = { ip("2001:0db8:0::/32") } }, nil, true },
  { "a /24 is not a single address", P{ include = { ip("192.0.2.0") } },
    P{ include = { ip("192.0.2.0/24") } }, nil, false },
  { "different addresses", P{ include = { ip("192.0.2.1") } }, P{ include = { ip("192.0.2.2/32") } }, nil, false },
  { "an ip outside an ip rule is a plain string", P{ include = { em("a@example.com") } },
    P{ include = { em("a@example.com ") } }, nil, false },
  { "rule order within a list does not count", P{ include = { em("a@example.com"), em("b@example.com") } },
    P{ include = { em("b@example.com"), em("a@example.com") } }, nil, true },
  { "repeats count (a multiset)", P{ include = { em("a@example.com"), em("a@example.com") } },
    P{ include = { em("a@example.com") } }, nil, false },
  { "a rule moved from include to exclude", P{ include = { em("a@example.com") },
    exclude = { em("b@example.com") } }, P{ include = { em("b@example.com") }, exclude = { em("a@example.com") } },
    nil, false },
  { "an empty rule body is a rule", P{ include = { { everyone = {} } } },
    P{ include = { { certificate = {} } } }, nil, false },
  { "name differs", P(), P{ name = "Staff" }, nil, false },
  { "decision differs", P(), P{ decision = "deny" }, nil, false },
  { "a field newer than the library, on one side only", P(), R{ future_field = "x" }, nil, true },
  { "a field newer than the library, different on both", P{ future_field = "a" },
    P{ future_field = "b" }, nil, false },
  { "approval groups compare as a multiset, emails too",
    P{ approval_groups = { { approvals_needed = 1, email_addresses = { "a@x.com", "b@x.com" } },
                           { approvals_needed = 2, email_list_uuid = UUID } } },
    P{ approval_groups = { { approvals_needed = 2.0, email_list_uuid = UUID },
                           { approvals_needed = 1, email_addresses = { "b@x.com", "a@x.com" } } } }, nil, true },
  { "approval groups differ", P{ approval_groups = { { approvals_needed = 1, email_addresses = { "a@x.com" } } } },
    P{ approval_groups = { { approvals_needed = 2, email_addresses = { "a@x.com" } } } }, nil, false },
  { "nested rule fields count", P{ include = { { ["github-organization"] = { name = "acme",
    identity_provider_id = IDP } } } }, P{ include = { { ["github-organization"] = { name = "acme",
    identity_provider_id = IDP, team = "infra" } } } }, nil, false },
  -- kinds
  { "zone: no session default (a 24h one-sided is a field the kind lacks)", P(),
    R({}, "zone"), "zone", true },
  { "zone: the server's copy", P(), R({}, "zone"), "zone", true },
  { "zone: require differs", P(), R({ require = mfa }, "zone"), "zone", false },
  { "reusable: the server's copy", P(), R({}, "reusable"), "reusable", true },
  { "reusable: omitted session is 24h", P(), P{ session_duration = "24h" }, "reusable", true },
  { "reusable: the 1h one is not the same", P(), R({ session_duration = "1h" }, "reusable"), "reusable", false },
  { "reusable: \"\" is not 24h", P{ session_duration = "" }, R({}, "reusable"), "reusable", false },
  { "infrastructure: the server's copy", P{ connection_rules = { ssh = { usernames = { "root", "ops" } } } },
    R({ connection_rules = { ssh = { usernames = { "ops", "root" }, allow_email_alias = false } } }, "infrastructure"),
    "infrastructure", true },
  { "infrastructure: usernames differ", P{ connection_rules = { ssh = { usernames = { "root" } } } },
    P{ connection_rules = { ssh = { usernames = { "ops" } } } }, "infrastructure", false },
  { "infrastructure: email alias on", P{ connection_rules = { ssh = { usernames = { "root" } } } },
    P{ connection_rules = { ssh = { usernames = { "root" }, allow_email_alias = true } } }, "infrastructure", false },
}

-- "group" is a kind only once the schema has it.
if cfaccess.validate({ name = "g", include = { { everyone = {} } } }, { kind = "group" }) then
  local G = function(extra)
    local g = { name = "admins", include = { em("a@example.com") } }
    for k, v in pairs(extra or {}) do g[k] = v end
    return g
  end
  PAIRS[#PAIRS + 1] = { "group: the server's copy", G(), G{ id = UUID, created_at = "t", exclude = {},
    require = {}, is_default = false }, "group", true }
  PAIRS[#PAIRS + 1] = { "group: default on", G(), G{ is_default = true }, "group", false }
  PAIRS[#PAIRS + 1] = { "group: include differs", G(), G{ include = { em("b@example.com") } }, "group", false }
end

describe("cfaccess.same", function()
  for _, case in ipairs(PAIRS) do
    local name, a, b, kind, want = case[1], case[2], case[3], case[4], case[5]
    it(("%s (%s): %s"):format(name, kind or "app", want and "same" or "not same"), function()
      assert.are.equal(want, cfaccess.same(a, b, kind))
      assert.are.equal(want, cfaccess.same(b, a, kind), "same is symmetric")
      if kind then
        assert.are.equal(want, cfaccess.same(a, b, { kind = kind }), "a kind given as options")
      end
    end)
  end

  it("is the same function as the core's", function()
    assert.are.equal(require("cfaccess.core").same, cfaccess.same)
    assert.are.equal(require("cfaccess.core").request_body, cfaccess.request_body)
  end)

  it("defaults to kind app", function()
    -- the 24h default exists for app, not for zone: a one-sided 1h session
    -- is a difference for app and a field the zone kind does not have
    assert.is_false(cfaccess.same(P(), P{ session_duration = "1h" }))
    assert.is_true(cfaccess.same(P(), P{ session_duration = "1h" }, "zone"))
  end)

  it("an unknown kind is a usage error; wrong argument types raise", function()
    local ok, err = cfaccess.same(P(), P(), "bogus")
    assert.is_nil(ok)
    assert.are.equal("usage", err.kind)
    assert.matches('unknown policy kind "bogus"', tostring(err))
    assert.has_error(function() cfaccess.same(P(), "x") end)
    assert.has_error(function() cfaccess.same(P(), P(), 3) end)
  end)

  it("does not validate: junk compares without raising", function()
    assert.is_false(cfaccess.same({ include = "x" }, { include = { 1 } }))
    assert.is_true(cfaccess.same({ include = { [1] = true, x = 1 } }, { include = { x = 1.0, [1] = true } }))
    assert.is_true(cfaccess.same({}, {}))
    assert.is_false(cfaccess.same({ include = { print } }, { include = { tostring } }))
  end)

  it("a cyclic table is an invalid error (nil, err), not a crash or a raised error", function()
    local t = {}
    t.x = t
    local ok, err = cfaccess.same({ include = { t } }, { include = { t } })
    assert.is_nil(ok)
    assert.are.equal("invalid", err.kind)
  end)

  it("reads raw: no metamethod runs", function()
    local trap = setmetatable({}, { __index = function() error("metamethod ran") end,
                                    __pairs = function() error("metamethod ran") end })
    assert.is_true(cfaccess.same(P{ mfa_config = trap }, P()))
  end)
end)

describe("cfaccess.request_body", function()
  local function full_result(kind)
    return R({ session_duration = "4h", approval_required = true, purpose_justification_required = true,
               purpose_justification_prompt = "why?",
               approval_groups = { { approvals_needed = 1.0, email_addresses = { "boss@example.com" } } },
               include = { ip("192.0.2.1/32"), ip("2001:db8::1/128"), ip("198.51.100.0/24") },
               exclude = { em("eve@example.com") } }, kind)
  end

  for _, kind in ipairs{ "app", "reusable" } do
    it(kind .. ": a result with created_at etc. validates and keeps every setting", function()
      local got = full_result(kind)
      local body, err = cfaccess.request_body(got, kind)
      assert.is_table(body, err and tostring(err))
      assert.is_true(cfaccess.validate(body, { kind = kind }))
      for _, k in ipairs{ "id", "created_at", "updated_at", "reusable", "app_count" } do
        assert.is_nil(body[k], k)
      end
      -- nothing reset: approval, purpose justification and the session stay
      assert.are.equal("4h", body.session_duration)
      assert.is_true(body.approval_required)
      assert.is_true(body.purpose_justification_required)
      assert.are.equal("why?", body.purpose_justification_prompt)
      assert.are.equal(1, body.approval_groups[1].approvals_needed)
      assert.is_true(math.type(body.approval_groups[1].approvals_needed) == "integer")
      -- single IPs without /32 or /128, networks as they are
      assert.are.same({ ip("192.0.2.1"), ip("2001:db8::1"), ip("198.51.100.0/24") }, body.include)
      if kind == "app" then
        assert.are.equal(1, body.precedence)
        assert.is_true(math.type(body.precedence) == "integer")
      else
        assert.is_nil(body.precedence)
      end
      assert.is_true(cfaccess.same(body, got, kind), "the body is what the server stored")
      -- the input is not changed
      assert.are.equal(UUID, got.id)
      assert.are.equal("192.0.2.1/32", got.include[1].ip.ip)
    end)
  end

  it("zone: the fields the kind does not take are dropped", function()
    local got = R({ session_duration = "24h" }, "zone")
    local body = assert(cfaccess.request_body(got, "zone"))
    assert.is_nil(body.session_duration)
    assert.is_true(cfaccess.validate(body, { kind = "zone" }))
  end)

  it("infrastructure: ssh connection rules survive", function()
    local got = R({ connection_rules = { ssh = { usernames = { "root" }, allow_email_alias = true } } },
                  "infrastructure")
    local body = assert(cfaccess.request_body(got, "infrastructure"))
    assert.is_true(cfaccess.validate(body, { kind = "infrastructure" }))
    assert.are.same({ ssh = { usernames = { "root" }, allow_email_alias = true } }, body.connection_rules)
  end)

  it("round trip through JSON as the client decodes it", function()
    local json = cjson.encode(full_result("app"))
    local got = cjson.decode(json)
    local body = assert(cfaccess.request_body(got))
    assert.is_true(cfaccess.validate(body))
    local again = assert(cfaccess.request_body(cjson.decode((assert(cfaccess.encode(body))))))
    assert.are.same(body, again)
  end)

  it("a session_duration of null stays null (the app's session), other nulls go", function()
    local body = assert(cfaccess.request_body(P{ session_duration = cjson.null, exclude = cjson.null }))
    assert.are.equal(cjson.null, body.session_duration)
    assert.is_nil(body.exclude)
    assert.is_true(cfaccess.validate(body))
  end)

  it("fields newer than the library: dropped, kept with allow_unknown", function()
    local got = R{ future_field = "x" }
    local body = assert(cfaccess.request_body(got))
    assert.is_nil(body.future_field)
    body = assert(cfaccess.request_body(got, { allow_unknown = true }))
    assert.are.equal("x", body.future_field)
    assert.is_true(cfaccess.validate(body, { allow_unknown = true }))
  end)

  it("a result that cannot be a valid body is invalid, with its path", function()
    local body, err = cfaccess.request_body(R{ include = { ip("not-an-ip") } })
    assert.is_nil(body)
    assert.are.equal("invalid", err.kind)
    assert.are.equal("include[1].ip.ip", err.problems[1].path)
  end)

  it("an unknown kind is a usage error", function()
    local body, err = cfaccess.request_body(R(), "bogus")
    assert.is_nil(body)
    assert.are.equal("usage", err.kind)
  end)
end)

describe("cfaccess.same and request_body on values nested without end", function()
  -- a cycle (or nesting no policy has) is bad data: nil, err, never a
  -- raised error (API.md section 4: only wrong argument types raise)
  local function cyclic()
    local t = {}
    t.t = t
    return P{ future_field = t, include = { { email = { email = "a@example.com", deep = t } } } }
  end

  it("same: nil and an invalid error, for a cycle on either side", function()
    local ok, err = cfaccess.same(cyclic(), P())
    assert.is_nil(ok)
    assert.are.equal("invalid", err.kind)
    assert.matches("nests deeper than %d+ tables", err.message)
    ok, err = cfaccess.same(P(), cyclic())
    assert.is_nil(ok)
    assert.are.equal("invalid", err.kind)
  end)

  it("request_body: nil and an invalid error, for a cycle inside a rule", function()
    local body, err = cfaccess.request_body(cyclic(), { allow_unknown = true })
    assert.is_nil(body)
    assert.are.equal("invalid", err.kind)
    assert.matches("nests deeper than %d+ tables", err.message)
  end)
end)
