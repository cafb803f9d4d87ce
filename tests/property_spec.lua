-- Property tests for validate/encode (issue 4, item 2). Seeded and
-- reproducible: the seed is printed; rerun one with
--   CFACCESS_PROPERTY_SEED=<seed> sh tests/run.sh
-- Properties:
--  1. random valid policies of every kind (all fields, every rule type of core.schema)
--     validate, encode, decode back equal (cjson), and encode to the same
--     bytes again, from a copy built in another key order, and in another
--     process;
--  2. a random single mutation of a valid policy is rejected (kind
--     "invalid") and every reported problem lies under the mutated path;
--  3. validate and encode agree on every input, valid or not.
package.path = (os.getenv("CFACCESS_TEST_ROOT") or ".") .. "/tests/fuzz/?.lua;" .. package.path
local core = require("cfaccess.core")
local cjson = require("cjson").new()
local gen = require("policygen")

local SEED = tonumber(os.getenv("CFACCESS_PROPERTY_SEED") or "") or os.time()
local CASES = 300
local KINDS = { "app", "zone", "reusable", "infrastructure" }
print(string.format("# property_spec: seed %d (CFACCESS_PROPERTY_SEED=%d to repeat)", SEED, SEED))

local deq = require("testutil").deep_equal

local function problem_paths(err)
  local t = {}
  for i, p in ipairs(err.problems or {}) do t[i] = p.path .. ": " .. p.message end
  table.sort(t)
  return table.concat(t, "\n")
end

-- validate and encode on one input; asserts they agree; returns json or nil, err.
local function both(p, opts)
  local ok, verr = core.validate(p, opts)
  local json, eerr = core.encode(p, opts)
  if ok then
    assert(ok == true and type(json) == "string",
      "validate said true but encode failed: " .. tostring(eerr))
    return json
  end
  assert(json == nil, "validate said no (" .. tostring(verr) .. ") but encode gave " .. tostring(json))
  assert(verr.kind == eerr.kind, "different kinds: " .. verr.kind .. " vs " .. eerr.kind)
  assert(problem_paths(verr) == problem_paths(eerr), "different problems:\n" ..
    problem_paths(verr) .. "\n--\n" .. problem_paths(eerr))
  return nil, verr
end

local function batch(seed, n)
  math.randomseed(seed)
  local out = {}
  for i = 1, n do
    local kind = KINDS[(i - 1) % #KINDS + 1]
    out[i] = { kind = kind, policy = gen.policy(kind) }
  end
  return out
end

local function ctx(i, c, json)
  return string.format("seed %d case %d (kind %s): %s", SEED, i, c.kind, json or "")
end

describe("property: valid policies", function()
  local cases = batch(SEED, CASES)
  local encoded = {}

  it(CASES .. " random valid policies encode, decode back equal and are canonical", function()
    local rules_seen = {}
    for i, c in ipairs(cases) do
      local opts = { kind = c.kind }
      local json, err = both(c.policy, opts)
      assert(json, ctx(i, c) .. " rejected: " .. tostring(err) .. "\n" .. problem_paths(err or {}))
      encoded[i] = json
      local ok, why = deq(c.policy, cjson.decode(json), "")
      assert(ok, ctx(i, c, json) .. " does not decode back equal: " .. tostring(why))
      assert(core.encode(c.policy, opts) == json, ctx(i, c) .. " second encode differs")
      assert(core.encode(gen.shuffled_copy(c.policy), opts) == json,
        ctx(i, c) .. " a copy built in another key order encodes differently")
      for _, list in ipairs{ c.policy.include, c.policy.exclude or {}, c.policy.require or {} } do
        for _, r in ipairs(list) do rules_seen[next(r)] = true end
      end
    end
    for _, name in ipairs(gen.RULE_NAMES) do
      assert(rules_seen[name], "rule type " .. name .. " never generated (seed " .. SEED .. ")")
    end
  end)

  it("are byte-identical in another process (same seed)", function()
    assert.equal(CASES, #encoded)
    local root = os.getenv("CFACCESS_TEST_ROOT") or "."
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
package.path = %q .. "/tests/fuzz/?.lua;" .. package.path
local core, gen = require("cfaccess.core"), require("policygen")
math.randomseed(%d)
local kinds = { "app", "zone", "reusable", "infrastructure" }
local out = {}
for i = 1, %d do
  local kind = kinds[(i - 1) %% #kinds + 1]
  out[i] = assert(core.encode(gen.policy(kind), { kind = kind }))
end
io.write(table.concat(out, "\n"))
]], root, SEED, CASES))
    f:close()
    local lua = os.getenv("LUA") or "lua5.4"
    local p = assert(io.popen(lua .. " " .. script))
    local other = p:read("a")
    p:close()
    os.remove(script)
    assert.equal(table.concat(encoded, "\n"), other)
  end)
end)

-- A mutation: { path = where, apply = function(p) ... end, kinds = {only these} }
local function top_mutations(kind, p)
  local m = {
    { "name", function(q) q.name = nil end },
    { "decision", function(q) q.decision = nil end },
    { "include", function(q) q.include = nil end },
    { "name", function(q) q.name = 42 end },
    { "name", function(q) q.name = "bad \255 utf8" end },
    { "decision", function(q) q.decision = "perhaps" end },
    { "include", function(q) q.include = "everyone" end },
    { "sesion_duration", function(q) q.sesion_duration = "24h" end },
    { "zzz_unknown", function(q) q.zzz_unknown = { 1, 2 } end },
  }
  if kind == "app" or kind == "zone" then
    m[#m + 1] = { "precedence", function(q) q.precedence = 1.5 end }
    m[#m + 1] = { "precedence", function(q) q.precedence = "1" end }
  end
  if kind == "app" or kind == "reusable" then
    m[#m + 1] = { "session_duration", function(q) q.session_duration = "2x" end }
    m[#m + 1] = { "mfa_config.session_duration", function(q)
      q.mfa_config = { allowed_authenticators = { "totp" }, session_duration = "721h" } end }
    m[#m + 1] = { "mfa_config.allowed_authenticators[1]", function(q)
      q.mfa_config = { allowed_authenticators = { "carrier-pigeon" } } end }
  end
  if kind ~= "infrastructure" then
    m[#m + 1] = { "approval_required", function(q) q.approval_required = "yes" end }
    m[#m + 1] = { "approval_groups[1].approvals_needed", function(q)
      q.approval_groups = { { approvals_needed = -1 } } end }
  end
  if kind == "zone" then
    m[#m + 1] = { "session_duration", function(q) q.session_duration = "24h" end }
  elseif kind == "reusable" then
    m[#m + 1] = { "precedence", function(q) q.precedence = 1 end }
  elseif kind == "infrastructure" then
    m[#m + 1] = { "decision", function(q) q.decision = "deny" end }
    m[#m + 1] = { "connection_rules.ssh.usernames", function(q)
      q.connection_rules = { ssh = { allow_email_alias = true } } end }
  end
  -- rule-level mutations on a random existing rule
  local lists = { "include" }
  if p.exclude then lists[#lists + 1] = "exclude" end
  if p.require then lists[#lists + 1] = "require" end
  local lname = lists[math.random(#lists)]
  local idx = math.random(#p[lname])
  local rtype = next(p[lname][idx])
  local rpath = string.format("%s[%d]", lname, idx)
  local function on_rule(f) return function(q) f(q[lname][idx]) end end
  m[#m + 1] = { rpath, on_rule(function(r)
    local other = rtype == "everyone" and "certificate" or "everyone"
    r[other] = {} end) }
  m[#m + 1] = { rpath, on_rule(function(r) r[rtype] = nil; r.no_such_rule = {} end) }
  m[#m + 1] = { rpath .. "." .. rtype .. ".bogus_field", on_rule(function(r) r[rtype].bogus_field = "x" end) }
  m[#m + 1] = { rpath, on_rule(function(r) r[rtype] = nil end) }
  local inner = {}
  for k in pairs(p[lname][idx][rtype]) do
    -- optional inner fields: github team, account member id, and saml's IdP
    -- (the 2024-08 saml shape had none and is still accepted)
    if k ~= "team" and k ~= "account_id" and not (rtype == "saml" and k == "identity_provider_id") then
      inner[#inner + 1] = k
    end
  end
  table.sort(inner)
  if #inner > 0 then
    local k = inner[math.random(#inner)]
    local kpath = rpath .. "." .. rtype .. "." .. k
    m[#m + 1] = { kpath, on_rule(function(r) r[rtype][k] = nil end) }
    m[#m + 1] = { kpath, on_rule(function(r) r[rtype][k] = 12345 end) }
  end
  if rtype == "ip" then
    m[#m + 1] = { rpath .. ".ip.ip", on_rule(function(r) r.ip.ip = "10.0.0.0/33" end) }
  elseif rtype == "email" then
    m[#m + 1] = { rpath .. ".email.email", on_rule(function(r) r.email.email = "no-at-sign" end) }
  elseif rtype == "geo" then
    m[#m + 1] = { rpath .. ".geo.country_code", on_rule(function(r) r.geo.country_code = "ZZZ" end) }
  end
  return m
end

local function under(path, mpath)
  return path == mpath or path:sub(1, #mpath + 1) == mpath .. "." or path:sub(1, #mpath + 1) == mpath .. "["
end

describe("property: single mutations", function()
  it(CASES .. " random single mutations are rejected at the mutated path", function()
    math.randomseed(SEED + 1)
    local tried = {}
    for i = 1, CASES do
      local kind = KINDS[(i - 1) % #KINDS + 1]
      local p = gen.policy(kind)
      local muts = top_mutations(kind, p)
      local m = muts[math.random(#muts)]
      local mpath, apply = m[1], m[2]
      apply(p)
      tried[mpath:gsub("%[%d+%]", "[]"):gsub("^%a+%[%]", "rule")] = true
      local json, err = both(p, { kind = kind })
      local where = string.format("seed %d case %d (kind %s, mutation at %s)", SEED, i, kind, mpath)
      assert(json == nil, where .. ": accepted: " .. tostring(json))
      assert(err.kind == "invalid", where .. ": err.kind " .. tostring(err.kind))
      assert(#err.problems >= 1, where .. ": no problems listed")
      for _, pr in ipairs(err.problems) do
        assert(under(pr.path, mpath), where .. ": problem elsewhere: " .. pr.path .. ": " .. pr.message)
      end
    end
    local n = 0
    for _ in pairs(tried) do n = n + 1 end
    assert(n >= 15, "only " .. n .. " distinct mutation sites tried")
  end)
end)
