-- The cfaccess command (API.md section 9), run as a subprocess: stdout,
-- stderr and exit codes of every command; in a real terminal (tmux) for
-- colour and the progress bar; installed with make install and LuaRocks.
-- Expected output lines are kept whole, so that they read as the output does.
-- luacheck: no max line length
local mockctl = require("mockctl")
local state = require("cfaccess.state")
local cjson = require("cjson").new()

local ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."
local LUA = os.getenv("LUA") or "lua5.4"
local O = os.getenv("O") or "."
local q = mockctl.shell_quote
local read_file = mockctl.read_file

local ACCT = "0123456789abcdef0123456789abcdef"
local ZONE = "fedcba9876543210fedcba9876543210"
local APP = "3f2d1c7e-8a9b-4c5d-9e0f-1a2b3c4d5e6f"
local TOKEN = "cli-spec-token-" .. string.format("%08x", math.random(0, 0x7fffffff))

-- every variable the command reads: unset unless a test sets it
local CF_VARS = { "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL",
  "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_ZONE_ID", "CLOUDFLARE_BASE_URL", "NO_COLOR" }

local tmpdir
local function path(name) return tmpdir .. "/" .. name end
local function write(name, text)
  local f = assert(io.open(path(name), "wb"))
  f:write(text)
  f:close()
  return path(name)
end

-- Run `cfaccess <args>` in tmpdir with only the variables of env set (of
-- CF_VARS) and stdin from a file (or /dev/null). Returns { code, out, err }.
local function cfaccess(args, opts)
  opts = opts or {}
  local words = { "cd", q(opts.cwd or tmpdir), "&&", "env" }
  for _, v in ipairs(CF_VARS) do words[#words + 1] = "-u " .. v end
  for _, v in ipairs(opts.unset or {}) do words[#words + 1] = "-u " .. v end
  for k, v in pairs(opts.env or {}) do words[#words + 1] = q(k .. "=" .. v) end
  words[#words + 1] = "NO_PROXY=127.0.0.1,localhost timeout 120"
  -- opts.exec: the command is an executable of its own (LuaRocks' wrapper)
  if not opts.exec then words[#words + 1] = q(LUA) end
  words[#words + 1] = q(opts.command or (ROOT .. "/bin/cfaccess"))
  for _, a in ipairs(args) do words[#words + 1] = q(a) end
  local out, errf = os.tmpname(), os.tmpname()
  local input = "/dev/null"
  if opts.stdin then input = write("stdin.txt", opts.stdin) end
  words[#words + 1] = "<" .. q(input) .. " >" .. q(out) .. " 2>" .. q(errf)
  local _, how, code = os.execute(table.concat(words, " "))
  local r = { how = how, code = code, out = read_file(out) or "", err = read_file(errf) or "" }
  os.remove(out)
  os.remove(errf)
  return r
end

-- The result as text for assertion messages.
local function show(r)
  return ("exit %s %s\n--- stdout\n%s--- stderr\n%s"):format(r.how, tostring(r.code), r.out, r.err)
end

local function expect(r, code, out, err)
  assert.are.equal(code, r.code, show(r))
  if out then assert.are.equal(out, r.out, show(r)) end
  if err then assert.are.equal(err, r.err, show(r)) end
end

setup(function()
  tmpdir = os.tmpname()
  os.remove(tmpdir)
  assert(os.execute("mkdir " .. q(tmpdir)))
end)
teardown(function()
  if tmpdir then os.execute("rm -rf " .. q(tmpdir)) end
end)

local GOOD = '{"name":"staff","decision":"allow","include":[{"email_domain":{"domain":"example.com"}}]}\n'
local BAD_LIST = '[{"name":"a","decision":"allow","include":[{"email":{"email":5}}],"sesion_duration":"1h"},'
  .. '{"name":"b","decision":"allo","include":[{"everyone":{}}]}]\n'
local BROKEN = '{\n  "name": "x",\n  "include": [\n    {"email": {"email": "a@x"}},,\n  ]\n}\n'

describe("cfaccess validate", function()
  it("passes a valid JSON policy: exit 0", function()
    write("good.json", GOOD)
    expect(cfaccess{ "validate", "good.json" }, 0, "good.json: valid\n", "")
  end)

  it("prints every problem of an invalid file as FILE: path: message, exit 1", function()
    write("bad.json", BAD_LIST)
    expect(cfaccess{ "validate", "bad.json" }, 1, table.concat({
      "bad.json: [1].include[1].email.email: expected a string, got number",
      'bad.json: [1].sesion_duration: unknown field (did you mean "session_duration"?)',
      'bad.json: [2].decision: expected one of allow, deny, non_identity, bypass, got "allo" (did you mean "allow"?)',
    }, "\n") .. "\n", "")
  end)

  it("gives a JSON syntax error's line and column", function()
    write("broken.json", BROKEN)
    expect(cfaccess{ "validate", "broken.json" }, 1,
      "broken.json:4:33: JSON syntax error: expected a value but found ','\n", "")
  end)

  it("refuses a Lua state file that tries os.execute, and runs nothing", function()
    write("evil.lua", "os.execute('touch " .. path("pwned") .. "')\nreturn { policies = {} }\n")
    local r = cfaccess{ "validate", "evil.lua" }
    expect(r, 1, nil, "")
    assert.matches("^evil%.lua:1: os is not available in a state file %(it may use only rules and the safe basics: .*%)\n$", r.out)
    assert.is_nil(io.open(path("pwned"), "r"), "the state file ran a command")
  end)

  it("reads a Lua state and reports its problems with state paths", function()
    write("state.lua", [[
local r = rules
return {
  policies = {
    { name = "staff", decision = "allow", include = { r.email_domain("example.com") } },
    { name = "ops", decision = "allow", include = { { email = { email = "not an email" } } } },
  },
  apps = { [']] .. APP .. [['] = { "staff", "opz" } },
}
]])
    local r = cfaccess{ "validate", "state.lua" }
    expect(r, 1, nil, "")
    local lines = {}
    for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(2, #lines, r.out)
    assert.matches("^state%.lua: policies%[2%]%.include%[1%]%.email%.email: ", lines[1])
    assert.are.equal('state.lua: apps["' .. APP .. '"][2]: "opz" is not a policy of this state (nor a policy id)', lines[2])
  end)

  it("checks every file and reports each", function()
    write("good.json", GOOD)
    write("bad.json", BAD_LIST)
    write("broken.json", BROKEN)
    local r = cfaccess{ "validate", "good.json", "broken.json", "bad.json", "missing.json" }
    expect(r, 1, nil, "")
    assert.matches("^good%.json: valid\nbroken%.json:4:33: JSON syntax error: [^\n]*\nbad%.json: %[1%][^\n]*\nbad%.json: %[1%][^\n]*\nbad%.json: %[2%][^\n]*\nmissing%.json: cannot read missing%.json: No such file or directory\n$", r.out)
  end)

  it("prints warnings as FILE: path: warning: message (exit 0), problems with --strict (exit 1)", function()
    write("warn.json", '{"name":"w","decision":"allow","include":[{"auth_method":{"auth_method":"foo"}}]}')
    local r = cfaccess{ "validate", "warn.json" }
    expect(r, 0, nil, "")
    assert.matches('^warn%.json: include%[1%]%.auth_method%.auth_method: warning: "foo" is not an RFC 8176 method[^\n]*\nwarn%.json: valid\n$', r.out)
    r = cfaccess{ "validate", "--strict", "warn.json" }
    expect(r, 1, nil, "")
    assert.matches('^warn%.json: include%[1%]%.auth_method%.auth_method: "foo" is not an RFC 8176 method[^\n]*\n$', r.out)
  end)

  it("checks policies and lists as --kind", function()
    write("zone.json", '{"name":"z","decision":"allow","include":[{"everyone":{}}],"session_duration":"1h"}')
    expect(cfaccess{ "validate", "zone.json" }, 0, "zone.json: valid\n", "")
    local r = cfaccess{ "validate", "--kind", "zone", "zone.json" }
    expect(r, 1, nil, "")
    assert.matches("^zone%.json: session_duration: ", r.out)
  end)

  it("exits 64 for bad arguments", function()
    for _, args in ipairs{ { "validate" }, { "validate", "--kind", "nope", "x.json" }, { "validate", "--bogus", "x.json" },
                           { "frobnicate" }, {} } do
      local r = cfaccess(args)
      expect(r, 64, "")
      assert.matches("Usage: cfaccess", r.err)
    end
    -- without a command: the help, listing every command
    local r = cfaccess{}
    for _, c in ipairs{ "validate", "fmt", "plan", "apply", "export", "list" } do
      assert.matches("\n   " .. c .. " ", r.err)
    end
  end)

  it("prints no colour when not on a terminal", function()
    write("bad.json", BAD_LIST)
    local r = cfaccess{ "validate", "bad.json" }
    assert.is_falsy(r.out:find("\27", 1, true))
  end)
end)

describe("cfaccess --help and --version", function()
  it("has --help for every command (exit 0, on stdout)", function()
    for _, c in ipairs{ "validate", "fmt", "plan", "apply", "export", "list" } do
      local r = cfaccess{ c, "--help" }
      expect(r, 0, nil, "")
      assert.matches("^Usage: cfaccess " .. c .. " ", r.out)
    end
    local r = cfaccess{ "--help" }
    expect(r, 0, nil, "")
    assert.matches("Exit codes: 0 success, 1 failure, 2 plan with changes, 64 usage", r.out)
    assert.matches("CLOUDFLARE_ACCOUNT_ID", r.out)
  end)

  it("prints the version", function()
    local r = cfaccess{ "--version" }
    expect(r, 0, require("cfaccess")._VERSION .. "\n", "")
    assert.matches("^cfaccess %d+%.%d+%.%d+\n$", r.out)
  end)
end)

describe("cfaccess fmt", function()
  it("rewrites a JSON file as canonical, pretty JSON, and then leaves it alone", function()
    -- fields out of schema order, spaces where the canonical form has none
    write("f.json", '{ "include": [ {"email": {"email": "a@example.com"}} ], "decision": "allow", "name": "f" }')
    expect(cfaccess{ "fmt", "f.json" }, 0, "f.json: formatted\n", "")
    local text = read_file(path("f.json"))
    assert.are.equal('{\n  "name": "f",\n  "decision": "allow",\n  "include": [\n'
      .. '    { "email": { "email": "a@example.com" } }\n  ]\n}\n', text)
    expect(cfaccess{ "fmt", "f.json" }, 0, "", "")
    assert.are.equal(text, read_file(path("f.json")))
    expect(cfaccess{ "fmt", "--check", "f.json" }, 0, "", "")
  end)

  it("formats states and lists as state.dump does", function()
    local s = '{"apps":{"' .. APP .. '":["p"]},"policies":[{"decision":"allow","name":"p","include":[{"everyone":{}}]}]}'
    write("s.json", s)
    write("l.json", BAD_LIST:gsub('"allo"', '"deny"'):gsub("5", '"e@example.com"'):gsub('"sesion', '"session'))
    expect(cfaccess{ "fmt", "s.json", "l.json" }, 0, "s.json: formatted\nl.json: formatted\n", "")
    assert.are.equal(assert(state.dump(assert(state.decode_json(s)), "json")), read_file(path("s.json")))
    assert.matches('^%[\n  {\n    "name": "a",', read_file(path("l.json")))
  end)

  it("--check changes nothing and exits 1 when a file would change", function()
    write("u.json", GOOD)
    local r = cfaccess{ "fmt", "--check", "u.json" }
    expect(r, 1, "u.json: not formatted (cfaccess fmt would rewrite it)\n", "")
    assert.are.equal(GOOD, read_file(path("u.json")))
  end)

  it("leaves invalid and broken files as they are, with their problems", function()
    write("bad.json", BAD_LIST)
    write("broken.json", BROKEN)
    local r = cfaccess{ "fmt", "bad.json", "broken.json", "x.lua" }
    expect(r, 1, nil, "")
    assert.matches("^bad%.json: %[1%]%.include%[1%]%.email%.email: expected a string, got number\n", r.out)
    assert.matches("\nbroken%.json:4:33: JSON syntax error: expected a value but found ','\nx%.lua: fmt formats %.json files\n$", r.out)
    assert.are.equal(BAD_LIST, read_file(path("bad.json")))
    assert.are.equal(BROKEN, read_file(path("broken.json")))
  end)
end)

-- ------------------------------------------------------ against the mock

local mock
local function env(extra)
  local e = { CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_ACCOUNT_ID = ACCT, CLOUDFLARE_BASE_URL = mock.base_url }
  for k, v in pairs(extra or {}) do
    if v == false then e[k] = nil else e[k] = v end
  end
  return e
end

-- The token must never be printed.
local function no_token(r)
  assert.is_falsy(r.out:find(TOKEN, 1, true), "token on stdout")
  assert.is_falsy(r.err:find(TOKEN, 1, true), "token on stderr")
end

describe("cfaccess and the environment", function()
  local h = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(m) mock = m end)
  setup(h.setup)
  teardown(h.teardown)
  before_each(h.before_each)

  local cases = {
    { "no CLOUDFLARE_ACCOUNT_ID", { CLOUDFLARE_ACCOUNT_ID = false },
      "cfaccess: CLOUDFLARE_ACCOUNT_ID is not set (or CLOUDFLARE_ZONE_ID for a zone)\n" },
    { "no credentials", { CLOUDFLARE_API_TOKEN = false },
      "cfaccess: CLOUDFLARE_API_TOKEN is not set (or set CLOUDFLARE_API_KEY and CLOUDFLARE_EMAIL)\n" },
    { "a key without its email", { CLOUDFLARE_API_TOKEN = false, CLOUDFLARE_API_KEY = "k" },
      "cfaccess: CLOUDFLARE_EMAIL is not set (CLOUDFLARE_API_KEY needs it)\n" },
    { "a token and a key", { CLOUDFLARE_API_KEY = "k", CLOUDFLARE_EMAIL = "e@example.com" },
      "cfaccess: set CLOUDFLARE_API_TOKEN or CLOUDFLARE_API_KEY with CLOUDFLARE_EMAIL, not both\n" },
    { "an account and a zone", { CLOUDFLARE_ZONE_ID = ZONE },
      "cfaccess: set CLOUDFLARE_ACCOUNT_ID or CLOUDFLARE_ZONE_ID, not both\n" },
  }
  for _, c in ipairs(cases) do
    it("exits 64 naming the variable: " .. c[1] .. ", and sends nothing", function()
      write("state.json", '{"policies":[]}')
      for _, args in ipairs{ { "list" }, { "list", "--app", APP }, { "plan", "state.json" },
                             { "apply", "--yes", "state.json" }, { "export" } } do
        local r = cfaccess(args, { env = env(c[2]) })
        expect(r, 64, "", c[3])
        no_token(r)
      end
      assert.are.equal(0, mock:count())
    end)
  end

  it("refuses a bad base URL as a usage error", function()
    local r = cfaccess({ "list" }, { env = env{ CLOUDFLARE_BASE_URL = "http://example.com/client/v4" } })
    expect(r, 64, "")
    assert.matches("^cfaccess: .*https", r.err)
    no_token(r)
  end)
end)

describe("cfaccess list", function()
  local h = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(m) mock = m end)
  setup(h.setup)
  teardown(h.teardown)
  before_each(h.before_each)

  local function client() return mock:client(ACCT, TOKEN, {}) end

  it("lists the account's reusable policies", function()
    local c = client()
    local a = assert(c:create_policy{ name = "staff", decision = "allow", include = { { everyone = {} } } })
    local b = assert(c:create_policy{ name = "contractors", decision = "deny", include = { { everyone = {} } } })
    c:close()
    local r = cfaccess({ "list" }, { env = env() })
    expect(r, 0, a.id .. "  allow           staff\n" .. b.id .. "  deny            contractors\n", "")
    no_token(r)
  end)

  it("lists an app's policies with their precedence, and as JSON", function()
    local c = client()
    local a = assert(c:create_app_policy(APP, { name = "first", decision = "allow", include = { { ip = { ip = "192.0.2.1" } } } }))
    local b = assert(c:create_app_policy(APP, { name = "second", decision = "deny", include = { { everyone = {} } } }))
    c:close()
    local r = cfaccess({ "list", "--app", APP }, { env = env() })
    expect(r, 0, "  1  " .. a.id .. "  allow           first\n  2  " .. b.id .. "  deny            second\n", "")
    r = cfaccess({ "list", "--app", APP, "--json" }, { env = env() })
    expect(r, 0, nil, "")
    assert.matches('^%[\n  {\n    "name": "first",\n    "decision": "allow",\n', r.out)
    local list = cjson.decode(r.out)
    assert.are.same({ "first", "second" }, { list[1].name, list[2].name })
    assert.are.same({ a.id, b.id }, { list[1].id, list[2].id })
    assert.are.equal("192.0.2.1/32", list[1].include[1].ip.ip, "as the server stored it")
    no_token(r)
  end)

  it("never prints the token when the server echoes it back inside data (names, rules)", function()
    local c = client()
    local a = assert(c:create_policy{ name = "echo " .. TOKEN, decision = "allow",
      include = { { email = { email = TOKEN .. "@example.com" } } } })
    c:close()
    for _, args in ipairs{ { "list" }, { "list", "--json" }, { "export" }, { "export", "--format", "json" } } do
      local r = cfaccess(args, { env = env() })
      expect(r, 0, nil, "")
      no_token(r)
      assert.truthy(r.out:find("echo [redacted]", 1, true), show(r))
      if args[1] == "list" then assert.truthy(r.out:find(a.id, 1, true), show(r)) end
    end
  end)

  it("says so when there are none", function()
    expect(cfaccess({ "list" }, { env = env() }), 0, "No reusable policies.\n", "")
    expect(cfaccess({ "list", "--app", APP, "--json" }, { env = env() }), 0, "[]\n", "")
  end)

  it("exits 1 with the API's error (and never the token) when the API says no", function()
    local wrong = "wrong-" .. TOKEN
    local r = cfaccess({ "list" }, { env = env{ CLOUDFLARE_API_TOKEN = wrong } })
    expect(r, 1, "")
    assert.matches("^cfaccess: .*403", r.err)
    assert.is_falsy(r.err:find(wrong, 1, true))
    no_token(r)
  end)

  it("exits 64 for an app id that is not one, sending nothing", function()
    local r = cfaccess({ "list", "--app", "../etc" }, { env = env() })
    expect(r, 64, "")
    assert.matches("^cfaccess: ", r.err)
    assert.are.equal(0, mock:count())
  end)

  it("export exits 64 for an --app that is not an app id, as list does, sending nothing", function()
    local r = cfaccess({ "export", "--app", APP, "--app", "../etc" }, { env = env() })
    expect(r, 64, "", 'cfaccess: --app "../etc": expected an application id (a UUID or 32 hex characters)\n')
    assert.are.equal(0, mock:count())
  end)

  it("exits 64 for reusable policies on a zone", function()
    local r = cfaccess({ "list" }, { env = env{ CLOUDFLARE_ACCOUNT_ID = false, CLOUDFLARE_ZONE_ID = ZONE } })
    expect(r, 64, "", "cfaccess: reusable policies belong to an account: set CLOUDFLARE_ACCOUNT_ID, or give --app\n")
  end)
end)

-- ---------------------------------------------- plan, apply and export

-- client:plan/apply/export (lua/cfaccess/plan.lua, apply.lua) through the
-- command, against the mock.

describe("cfaccess plan, apply and export", function()
  local h = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(m) mock = m end)
  setup(h.setup)
  teardown(h.teardown)
  before_each(h.before_each)

  local STATE = [[
local r = rules
return {
  policies = {
    { name = "staff", decision = "allow", include = { r.email_domain("example.com") } },
    { name = "contractors", decision = "allow", include = { r.email("c@ext.example") }, require = { r.auth_method("mfa") } },
  },
  apps = { ["]] .. APP .. [["] = { "staff", "contractors" } },
}
]]

  local function writes()
    local n = 0
    for _, req in ipairs(mock:log()) do
      if req.method ~= "GET" then n = n + 1 end
    end
    return n
  end

  it("plan exits 2 with the changes, apply without --yes and no terminal refuses and sends nothing", function()
    write("state.lua", STATE)
    local r = cfaccess({ "plan", "state.lua" }, { env = env() })
    expect(r, 2, nil, "")
    assert.matches('%+ [^\n]*"staff"', r.out)
    assert.matches('%+ [^\n]*"contractors"', r.out)
    assert.matches("\nPlan: 2 to create, 0 to update, 0 to delete, 2 links to attach, 0 to detach%.\n$", r.out)
    r = cfaccess({ "plan", "--json", "state.lua" }, { env = env() })
    expect(r, 2, nil, "")
    local data = cjson.decode(r.out)
    assert.are.equal(2, data.summary.create)
    r = cfaccess({ "apply", "state.lua" }, { env = env() })
    expect(r, 1, nil, "cfaccess: not applied: no terminal to ask on; run with --yes to apply\n")
    assert.are.equal(0, writes())
    no_token(r)
  end)

  it("apply --yes applies and reports (exit 0); plan then exits 0; export round-trips", function()
    write("state.lua", STATE)
    local r = cfaccess({ "apply", "--yes", "state.lua" }, { env = env() })
    expect(r, 0, nil, "")
    assert.matches("\nApplied %d+, failed 0, skipped 0%.\n$", r.out)
    r = cfaccess({ "plan", "state.lua" }, { env = env() })
    expect(r, 0, nil, "")
    assert.matches("No changes%.\n$", r.out)
    for _, fmt in ipairs{ "lua", "json" } do
      r = cfaccess({ "export", "--app", APP, "--format", fmt }, { env = env() })
      expect(r, 0, nil, "")
      write("exported." .. fmt, r.out)
      expect(cfaccess({ "plan", "exported." .. fmt }, { env = env() }), 0)
    end
    no_token(r)
  end)

  -- reusable policies and an app's legacy policies: no section-6 method needed
  local LEGACY_STATE = [[
local r = rules
return {
  policies = { { name = "staff", decision = "allow", include = { r.email_domain("example.com") } } },
  apps = { ["]] .. APP .. [["] = { legacy = {
    { name = "office", decision = "bypass", include = { r.ip("192.0.2.0/24") } },
    { name = "everyone else", decision = "deny", include = { r.everyone() } },
  } } },
}
]]

  it("apply --yes of reusable and legacy policies: report, exit 0; plan again exits 0; export round-trips", function()
    write("legacy.lua", LEGACY_STATE)
    local r = cfaccess({ "apply", "--yes", "legacy.lua" }, { env = env() })
    expect(r, 0, nil, "")
    assert.matches('^%+ reusable "staff"\n%+ policy "office" of app ' .. APP:gsub("%-", "%%-") .. "\n", r.out)
    assert.matches("\nApplied 3, failed 0, skipped 0%.\n$", r.out)
    local live = mock:state()
    assert.are.equal(3, #live)
    r = cfaccess({ "plan", "legacy.lua" }, { env = env() })
    expect(r, 0, "No changes.\n", "")
    r = cfaccess({ "plan", "--json", "legacy.lua" }, { env = env() })
    expect(r, 0, nil, "")
    assert.matches('^{\n  "changes": %[%],\n', r.out)
    assert.are.equal(0, cjson.decode(r.out).summary.create)
    for _, fmt in ipairs{ "lua", "json" } do
      local before = #mock:log()
      r = cfaccess({ "export", "--app", APP, "--format", fmt }, { env = env() })
      expect(r, 0, nil, "")
      write("exported." .. fmt, r.out)
      local back = assert(state.load(path("exported." .. fmt)))
      assert.are.equal("staff", back.policies[1].name)
      assert.are.same({ "office", "everyone else" }, { back.apps[APP].legacy[1].name, back.apps[APP].legacy[2].name })
      expect(cfaccess({ "plan", "exported." .. fmt }, { env = env() }), 0, "No changes.\n", "")
      -- export and plan only read
      for i = before + 1, #mock:log() do assert.are.equal("GET", mock:log()[i].method) end
    end
    assert.matches('\n    %["' .. APP:gsub("%-", "%%-") .. '"%] = {\n      legacy = {\n', read_file(path("exported.lua")))
    no_token(r)
  end)

  it("apply exits 1 when a change fails, and says which", function()
    write("state.lua", STATE)
    mock:fault{ action = "status", status = 400, method = "POST", times = -1 }
    local r = cfaccess({ "apply", "--yes", "state.lua" }, { env = env() })
    expect(r, 1, nil, "")
    assert.matches("\nfailed: %+ [^\n]*\n", r.out)
    assert.matches("\nApplied %d+, failed [1-9]%d*, skipped %d+%.\n$", r.out)
  end)

  it("reports a state's problems before reading anything", function()
    write("bad_state.json", '{"policies":[{"name":"a","decision":"allow","include":[{"email":{"email":1}}]}]}')
    local r = cfaccess({ "plan", "bad_state.json" }, { env = env() })
    expect(r, 1, "bad_state.json: policies[1].include[1].email.email: expected a string, got number\n", "")
    assert.are.equal(0, mock:count())
  end)
end)

-- ------------------------------------------------------ in a terminal

-- One private tmux server per test (its own socket), killed at the end.
local function tmux_available() return os.execute("command -v tmux >/dev/null 2>&1") == true end

-- Type `cmdline` into a shell in a detached tmux session and capture the
-- screen (with escape sequences) every 50 ms until it prints DONE-rc=N
-- (at most 90 s); on_screen(screen), if given, sees each new screen and
-- may return keys to type. Returns every distinct capture, the last one
-- and N.
local function in_terminal(cmdline, on_screen)
  local sock = "cfaccess-cli-spec-" .. tostring(os.time()) .. "-" .. math.random(1, 1e9)
  local function tmux(args)
    local p = io.popen("env -u LD_PRELOAD tmux -L " .. q(sock) .. " " .. args .. " 2>&1")
    local s = p:read("a")
    p:close()
    return s
  end
  local socket = require("socket")
  tmux("new-session -d -s spec -x 160 -y 40 sh")
  tmux("send-keys -t spec " .. q(cmdline .. "; echo DONE-rc=$?") .. " Enter")
  local captures, last, rc = {}, "", nil
  local deadline = socket.gettime() + 90
  while socket.gettime() < deadline do
    local screen = tmux("capture-pane -p -e -t spec")
    if screen ~= last then
      captures[#captures + 1] = screen
      last = screen
      -- on_screen(screen) may answer with keys to type (e.g. "y")
      local keys = on_screen and on_screen(screen)
      if keys then tmux("send-keys -t spec " .. q(keys) .. " Enter") end
    end
    rc = screen:match("\nDONE%-rc=(%d+)")
    if rc then break end
    socket.sleep(0.05)
  end
  tmux("kill-server")
  return captures, last, tonumber(rc)
end

-- A shell command line running the checkout's cfaccess with env set.
local function command_line(args, envs)
  local words = { "cd", q(tmpdir), "&&", "env" }
  for _, v in ipairs(CF_VARS) do words[#words + 1] = "-u " .. v end
  local preload = os.getenv("LD_PRELOAD")
  if preload and preload ~= "" then words[#words + 1] = q("LD_PRELOAD=" .. preload) end
  for k, v in pairs(envs or {}) do words[#words + 1] = q(k .. "=" .. v) end
  words[#words + 1] = q(LUA)
  for _, a in ipairs(args) do words[#words + 1] = q(a) end
  return table.concat(words, " ")
end

describe("cfaccess in a terminal (tmux)", function()
  it("colours its output on a terminal, and not with NO_COLOR", function()
    assert(tmux_available(), "tmux is not installed (make deps installs it)")
    write("bad.json", BAD_LIST)
    local _, screen, rc = in_terminal(command_line{ ROOT .. "/bin/cfaccess", "validate", "bad.json" })
    assert.are.equal(1, rc, screen)
    -- the file name in bold (tmux may add its own resets after it)
    assert.is_truthy(screen:find("\n\27[1mbad.json\27[0m", 1, true), screen)
    assert.is_truthy(screen:find("m: [1].include[1].email.email: expected a string, got number", 1, true), screen)
    _, screen, rc = in_terminal(command_line({ ROOT .. "/bin/cfaccess", "validate", "bad.json" }, { NO_COLOR = "1" }))
    assert.are.equal(1, rc, screen)
    assert.is_truthy(screen:find("bad.json: [1].include[1].email.email: expected a string, got number", 1, true), screen)
    -- capture-pane -e writes attributes as escapes: none but resets to the defaults
    local rest = screen:gsub("\27%[0?m", ""):gsub("\27%[39m", ""):gsub("\27%[49m", "")
    assert.is_falsy(rest:find("\27", 1, true), screen)
  end)

  describe("the progress bar", function()
    setup(function()
      mock = mockctl.start{ token = TOKEN }
    end)
    teardown(function()
      if mock then mock:stop() end
    end)
    before_each(function() mock:reset() end)

    -- A batch of 4 creates against the mock through the command's progress
    -- display; the 2nd create is answered 429 with Retry-After: 4.
    local DRIVER = [[
local cli = require("cfaccess.cli")
local cfaccess = require("cfaccess")
local client = assert(cfaccess.client{ account_id = os.getenv("CLOUDFLARE_ACCOUNT_ID"),
  base_url = os.getenv("CLOUDFLARE_BASE_URL"), rate_limit = false, max_retries = 3 })
local on_progress, finish = cli.progress_display(io.stderr, cli.isatty(io.stderr))
local waited = false
local ops = {}
for i = 1, 4 do
  ops[i] = { op = "create_policy", policy = { name = "bar " .. i, decision = "allow", include = { { everyone = {} } } } }
end
local results = assert(client:batch(ops, { concurrency = 1, on_progress = function(done, total, info)
  if info and info.waiting then waited = true end
  if on_progress then on_progress(done, total, info) end
end }))
finish()
for i, r in ipairs(results) do assert(r.ok, "op " .. i .. " failed") end
io.stdout:write("driver: ", #results, " created, info.waiting ", tostring(waited), "\n")
]]

    local function queue_faults()
      mock:fault{ { action = "delay", seconds = 0, method = "POST" },
                  { action = "rate_limit", retry_after = 4, method = "POST" } }
    end

    it("shows done/total while a batch waits on the mock's rate limit, and the wait's reason", function()
      assert(tmux_available(), "tmux is not installed (make deps installs it)")
      write("driver.lua", DRIVER)
      queue_faults()
      local envs = { CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_ACCOUNT_ID = ACCT, CLOUDFLARE_BASE_URL = mock.base_url,
                     NO_PROXY = "127.0.0.1" }
      local captures, screen, rc = in_terminal(command_line({ path("driver.lua") }, envs))
      assert.are.equal(0, rc, screen)
      assert.is_truthy(screen:find("driver: 4 created", 1, true), screen)
      -- during the 4 s wait the screen showed the bar at 1 of 4
      local bar, wait_line
      for _, s in ipairs(captures) do
        bar = bar or s:match("%[#####%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%] 1/4  %d+:%d%d[^\n]*")
        wait_line = wait_line or s:match("%[[#-]+%] %d/4  %d+:%d%d  waiting %d+ s: rate limit")
      end
      assert.is_string(bar, "no capture showed the bar at 1/4:\n" .. table.concat(captures, "\n----\n"))
      -- the finished bar is cleared from the line
      assert.is_falsy(screen:find("] 4/4", 1, true), screen)
      assert.is_string(wait_line, "no capture showed the wait:\n" .. table.concat(captures, "\n----\n"))
    end)

    -- Does the core's batch on_progress pass { waiting =, reason = } during
    -- a wait? (w1-core adds it.) Asked of the core directly, in-process.
    local function core_reports_waits()
      mock:reset()
      mock:fault{ action = "rate_limit", retry_after = 1, method = "POST" }
      local c = mock:client(ACCT, TOKEN, {})
      local seen = false
      c:batch({ { op = "create_policy", policy = { name = "probe", decision = "allow", include = { { everyone = {} } } } } },
        { on_progress = function(_, _, info) if info and info.waiting then seen = true end end })
      c:close()
      mock:reset()
      return seen
    end

    local function bar_state()
      local lines = { "local r = rules", "return { policies = {" }
      for i = 1, 4 do
        lines[#lines + 1] = ('  { name = "bar %d", decision = "allow", include = { r.everyone() } },'):format(i)
      end
      lines[#lines + 1] = "} }"
      return table.concat(lines, "\n") .. "\n"
    end

    it("cfaccess apply shows the bar while it waits on the mock's rate limit, and the wait's reason", function()
      assert(tmux_available(), "tmux is not installed (make deps installs it)")
        local waits = core_reports_waits()
      write("bars.lua", bar_state())
      queue_faults()
      local envs = { CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_ACCOUNT_ID = ACCT, CLOUDFLARE_BASE_URL = mock.base_url,
                     NO_PROXY = "127.0.0.1" }
      local captures, screen, rc = in_terminal(command_line({ ROOT .. "/bin/cfaccess", "apply", "--yes", "bars.lua" }, envs))
      assert.are.equal(0, rc, screen)
      assert.is_truthy(screen:find("Applied 4, failed 0, skipped 0.", 1, true), screen)
      local bar, wait_line
      for _, sc in ipairs(captures) do
        bar = bar or sc:match("%[[#-]+%] [1-3]/4  %d+:%d%d[^\n]*")
        wait_line = wait_line or sc:match("%[[#-]+%] %d/4  %d+:%d%d  waiting %d+ s: rate limit")
      end
      assert.is_string(bar, "no capture showed the bar during the apply:\n" .. table.concat(captures, "\n----\n"))
      assert.is_falsy(screen:find("] 4/4", 1, true), "the bar is cleared when the apply ends:\n" .. screen)
      assert.is_true(waits, "the core's batch on_progress passed no info.waiting during a wait")
      assert.is_string(wait_line, "no capture showed the wait:\n" .. table.concat(captures, "\n----\n"))
    end)

    it("cfaccess apply asks on a terminal: n applies nothing, y applies; --quiet shows no bar", function()
      assert(tmux_available(), "tmux is not installed (make deps installs it)")
        write("bars.lua", bar_state())
      local envs = { CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_ACCOUNT_ID = ACCT, CLOUDFLARE_BASE_URL = mock.base_url,
                     NO_PROXY = "127.0.0.1" }
      local function answer(key)
        local asked = false
        return function(sc)
          if not asked and sc:find("Apply 4 changes? [y/N]", 1, true) then asked = true; return key end
        end
      end
      local _, screen, rc = in_terminal(command_line({ ROOT .. "/bin/cfaccess", "apply", "bars.lua" }, envs), answer("n"))
      assert.are.equal(1, rc, screen)
      assert.is_truthy(screen:find("Apply 4 changes? [y/N] n\ncfaccess: not applied", 1, true), screen)
      assert.are.equal(0, #mock:state())
      local captures
      captures, screen, rc = in_terminal(command_line({ ROOT .. "/bin/cfaccess", "apply", "--quiet", "bars.lua" }, envs),
        answer("y"))
      assert.are.equal(0, rc, screen)
      assert.is_truthy(screen:find("Applied 4, failed 0, skipped 0.", 1, true), screen)
      assert.are.equal(4, #mock:state())
      for _, sc in ipairs(captures) do assert.is_falsy(sc:find("%[[#-]+%] %d/4"), sc) end
    end)

    it("writes nothing to stderr when it is not a terminal", function()
      write("driver.lua", DRIVER)
      queue_faults()
      local r = cfaccess({ path("driver.lua") }, { command = path("driver.lua"),
        env = { CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_ACCOUNT_ID = ACCT, CLOUDFLARE_BASE_URL = mock.base_url } })
      expect(r, 0, nil, "")
      assert.matches("^driver: 4 created", r.out)
    end)
  end)
end)

-- ------------------------------------------------------------ installed

describe("cfaccess installed", function()
  it("by make install PREFIX= DESTDIR=: the core, every Lua module and the command, which runs from there", function()
    local stage = path("stage")
    local log = path("install.log")
    local ok = os.execute(("cd %s && env -u LD_PRELOAD make --no-print-directory O=%s install PREFIX=/opt/cfa DESTDIR=%s >%s 2>&1")
      :format(q(ROOT), q(O), q(stage), q(log)))
    assert.is_true(ok == true, read_file(log))
    local p = io.popen("cd " .. q(stage) .. " && find . -type f | LC_ALL=C sort")
    local files = p:read("a")
    p:close()
    local want = { "./opt/cfa/bin/cfaccess", "./opt/cfa/lib/lua/5.4/cfaccess/core.so" }
    p = io.popen("cd " .. q(ROOT .. "/lua") .. " && find cfaccess -name '*.lua'")
    for f in p:lines() do want[#want + 1] = "./opt/cfa/share/lua/5.4/" .. f end
    p:close()
    table.sort(want)
    assert.are.equal(table.concat(want, "\n") .. "\n", files)
    -- run it from the stage with no LUA_PATH: it finds its own tree
    local cmd = stage .. "/opt/cfa/bin/cfaccess"
    write("good.json", GOOD)
    write("bad.json", BAD_LIST)
    local function run(args)
      local out = os.tmpname()
      local _, _, code = os.execute(("cd %s && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_PATH -u LUA_CPATH %s %s %s >%s 2>&1")
        :format(q(tmpdir), q(LUA), q(cmd), args, q(out)))
      local s = read_file(out)
      os.remove(out)
      return code, s
    end
    assert.are.same({ 0, "good.json: valid\n" }, { run("validate good.json") })
    local code, out = run("validate bad.json")
    assert.are.equal(1, code)
    assert.matches("^bad%.json: %[1%]%.include%[1%]%.email%.email: expected a string, got number\n", out)
    -- through a symlink elsewhere (ln -s PREFIX/bin/cfaccess /usr/local/bin/), a name with a quote
    local linkdir = path("link bin's")
    assert(os.execute("mkdir -p " .. q(linkdir) .. " && ln -sf " .. q(cmd) .. " " .. q(linkdir .. "/cfaccess")))
    cmd = linkdir .. "/cfaccess"
    assert.are.same({ 0, "good.json: valid\n" }, { run("validate good.json") })
  end)
end)

-- Every command as LuaRocks installed it into a throwaway tree (its wrapper,
-- then bin/cfaccess finding the tree's modules), with no module path from
-- the checkout: the same checks as above, from the installed command.
describe("cfaccess from the throwaway LuaRocks tree (make luarocks-check)", function()
  local h = mockctl.block_hooks({ token = TOKEN }, { { "accounts", ACCT, APP } }, function(m) mock = m end)
  local tree, log_text, built
  setup(function()
    h.setup()
    tree = path("rocktree")
    local log = path("luarocks.log")
    built = os.execute(("cd %s && env -u LD_PRELOAD LUAROCKS_CHECK_TREE=%s sh tests/luarocks_check.sh >%s 2>&1")
      :format(q(ROOT), q(tree), q(log))) == true
    log_text = read_file(log) or ""
  end)
  teardown(h.teardown)
  before_each(h.before_each)

  local PATHS = { "LUA_PATH", "LUA_CPATH", "LUA_PATH_5_4", "LUA_CPATH_5_4" }
  local function run(args, opts)
    assert(built, log_text)
    opts = opts or {}
    opts.command, opts.exec, opts.unset = tree .. "/bin/cfaccess", true, PATHS
    return cfaccess(args, opts)
  end

  it("installs, leaves its working directory alone, and runs --version and validate from there", function()
    assert.is_true(built, log_text)
    assert.matches("the working directory is as it was", log_text)
    assert.matches("cfaccess %-%-version: cfaccess %d+%.%d+%.%d+\n", log_text)
    assert.matches("validate: exit 0 for a valid file, 1 and the problem for an invalid one\n", log_text)
    assert.matches("\nluarocks%-check: OK\n$", log_text)
    expect(run{ "--version" }, 0, nil, "")
    for _, c in ipairs{ "validate", "fmt", "plan", "apply", "export", "list", "test" } do
      local r = run{ c, "--help" }
      expect(r, 0, nil, "")
      assert.matches("^Usage: cfaccess " .. c, r.out)
    end
  end)

  it("validate: valid, invalid, broken JSON (line:column), a Lua state that tries os.execute", function()
    write("good.json", GOOD)
    write("bad.json", BAD_LIST)
    write("broken.json", BROKEN)
    write("evil.lua", "os.execute('touch " .. path("pwned") .. "')\nreturn { policies = {} }\n")
    expect(run{ "validate", "good.json" }, 0, "good.json: valid\n", "")
    local r = run{ "validate", "bad.json" }
    expect(r, 1, nil, "")
    assert.matches("^bad%.json: %[1%]%.include%[1%]%.email%.email: expected a string, got number\n", r.out)
    expect(run{ "validate", "broken.json" }, 1, "broken.json:4:33: JSON syntax error: expected a value but found ','\n", "")
    r = run{ "validate", "evil.lua" }
    expect(r, 1, nil, "")
    assert.matches("^evil%.lua:1: os is not available in a state file", r.out)
    assert.is_nil(io.open(path("pwned"), "r"), "the state file ran a command")
    r = run({ "validate", "bad.json" }, { env = { NO_COLOR = "1" } })
    assert.is_falsy(r.out:find("\27", 1, true), r.out)
  end)

  it("fmt and test", function()
    write("fmt.json", GOOD)
    expect(run{ "fmt", "--check", "fmt.json" }, 1)
    expect(run{ "fmt", "fmt.json" }, 0)
    expect(run{ "fmt", "--check", "fmt.json" }, 0)
    local function case(expect_line)
      return ([[
local r = rules
return {
  policies = { { name = "staff", decision = "allow", precedence = 1, include = { r.email_domain("example.com") } } },
  cases = { { name = "c", request = %s, expect = { %s } } },
}
]]):format(expect_line[1], expect_line[2])
    end
    write("pass_test.lua", case{ '{ user = { email = "a@example.com" } }', 'allowed = true, decided_by = "staff"' })
    write("fail_test.lua", case{ '{ user = { email = "a@example.com" } }', "allowed = false" })
    write("unknown_test.lua", case{ "{ user = {} }", "allowed = true" })
    local r = run{ "test", "pass_test.lua" }
    expect(r, 0, "# pass_test.lua\nok - c\n1 passed, 0 failed\n", "")
    r = run{ "test", "fail_test.lua" }
    expect(r, 1, nil, "")
    assert.matches("\nnot ok %- c: expected allowed = false", r.out)
    r = run{ "test", "unknown_test.lua" }
    expect(r, 3, nil, "")
    assert.matches("\nnot ok %- c: indeterminate", r.out)
  end)

  local STATE = [[
local r = rules
return {
  policies = { { name = "staff", decision = "allow", include = { r.email_domain("example.com") } } },
  apps = { ["]] .. APP .. [["] = { "staff" } },
}
]]
  local function writes()
    local n = 0
    for _, req in ipairs(mock:log()) do
      if req.method ~= "GET" then n = n + 1 end
    end
    return n
  end

  it("plan 2, apply refused without --yes, apply --yes 0, plan 0, export round trip, list", function()
    write("state.lua", STATE)
    local r = run({ "plan", "state.lua" }, { env = env() })
    expect(r, 2, nil, "")
    assert.matches('%+ [^\n]*"staff"', r.out)
    r = run({ "apply", "state.lua" }, { env = env() })
    expect(r, 1, nil, "cfaccess: not applied: no terminal to ask on; run with --yes to apply\n")
    assert.are.equal(0, writes())
    r = run({ "apply", "--yes", "state.lua" }, { env = env() })
    expect(r, 0, nil, "")
    assert.matches("\nApplied %d+, failed 0, skipped 0%.\n$", r.out)
    expect(run({ "plan", "state.lua" }, { env = env() }), 0, nil, "")
    r = run({ "export", "--app", APP, "--format", "json" }, { env = env() })
    expect(r, 0, nil, "")
    write("exported.json", r.out)
    expect(run({ "plan", "exported.json" }, { env = env() }), 0, "No changes.\n", "")
    r = run({ "list" }, { env = env() })
    expect(r, 0, nil, "")
    assert.matches("staff", r.out)
    no_token(r)
  end)

  it("a failing change exits 1; a missing CLOUDFLARE_ACCOUNT_ID exits 64 and sends nothing", function()
    write("state.lua", STATE)
    mock:fault{ action = "status", status = 400, method = "POST", times = -1 }
    local r = run({ "apply", "--yes", "state.lua" }, { env = env() })
    expect(r, 1, nil, "")
    assert.matches("\nfailed: %+ [^\n]*\n", r.out)
    mock:reset()
    r = run({ "plan", "state.lua" }, { env = env{ CLOUDFLARE_ACCOUNT_ID = false } })
    expect(r, 64, "", "cfaccess: CLOUDFLARE_ACCOUNT_ID is not set (or CLOUDFLARE_ZONE_ID for a zone)\n")
    assert.are.equal(0, mock:count())
    no_token(r)
  end)
end)

-- --------------------------------------------------------- README.md

describe("README.md's Command line section", function()
  it("has a row, with exit codes, for every command cfaccess --help lists", function()
    local r = cfaccess{ "--help" }
    expect(r, 0, nil, "")
    local readme = assert(read_file(ROOT .. "/README.md"))
    local s = assert(readme:find("\n## Command line\n", 1, true), "no Command line section")
    local text = readme:sub(s, (readme:find("\n## ", s + 1, true)))
    local names, missing = {}, {}
    for name in r.out:gmatch("\n   (%l+)  ") do
      names[#names + 1] = name
      if not text:find("\n| `cfaccess " .. name .. "[^\n]-| [^\n]-| [^\n]*0[^\n]*|\n") then missing[#missing + 1] = name end
    end
    assert.is_true(#names >= 7, r.out)
    assert.are.same({}, missing)
  end)
end)

describe("README.md's command-line session", function()
  it("runs as written: each $ line's output and exit status", function()
    local md = assert(read_file(ROOT .. "/README.md"))
    local block = md:match("\n```console\n(.-)\n```\n")
    assert.is_string(block, "README.md has no ```console block")
    -- { command =, expected output lines }
    local steps = {}
    for line in (block .. "\n"):gmatch("([^\n]*)\n") do
      local cmd = line:match("^%$ (.*)$")
      if cmd then steps[#steps + 1] = { command = cmd, out = {} }
      else steps[#steps].out[#steps[#steps].out + 1] = line end
    end
    assert.is_true(#steps >= 4)
    local last_code
    for _, step in ipairs(steps) do
      local want = table.concat(step.out, "\n") .. "\n"
      if step.command == "echo $?" then
        assert.are.equal(want, tostring(last_code) .. "\n", "after the command before it")
      else
        local args = step.command:match("^cfaccess (.*)$")
        assert.is_string(args, "README.md: only cfaccess commands and echo $? in the session: " .. step.command)
        local words = {}
        for w in args:gmatch("%S+") do words[#words + 1] = w end
        local r = cfaccess(words, { cwd = ROOT })
        last_code = r.code
        assert.are.equal(want, r.out .. r.err, "$ " .. step.command)
      end
    end
  end)
end)

-- ---------------------------------------------------------- make demo

describe("make demo (examples/demo.sh)", function()
  it("runs the command: validate with mistakes (exit 1), then the right state (exit 0)", function()
    local out, errf = os.tmpname(), os.tmpname()
    local ok = os.execute(("cd %s && timeout 120 sh examples/demo.sh >%s 2>%s"):format(q(ROOT), q(out), q(errf)))
    local stdout, stderr = read_file(out), read_file(errf)
    os.remove(out)
    os.remove(errf)
    assert.is_true(ok == true, stdout .. stderr)
    assert.are.equal("", stderr)
    local from = assert(stdout:find("demo: the cfaccess command\n", 1, true), stdout)
    local part = stdout:sub(from)
    assert.matches("\n%$ cfaccess validate examples/mistakes%.json\nexamples/mistakes%.json: policies%[1%]%.sesion_duration: "
      .. "[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*\n%(exit 1%)\n%$ cfaccess validate examples/access%.lua\n"
      .. "examples/access%.lua: valid\n%(exit 0%)\n", part)
    assert.matches("\n%$ cfaccess plan examples/access%.lua\n.-\n%(exit 2%)\n%$ cfaccess apply %-%-yes examples/access%.lua\n"
      .. ".-\n%(exit 0%)\n%$ cfaccess plan examples/access%.lua\n.-No changes%.\n%(exit 0%)\n%$ cfaccess export ", part)
    assert.matches("\ndemo: OK\n$", part)
  end)
end)

-- ------------------------------------------------------------ register

describe("cfaccess.cli.register", function()
  it("adds a command that main parses, runs and takes the exit code of", function()
    local cli = require("cfaccess.cli")
    cli.register{ name = "hello", summary = "Say hello.", setup = function(cmd) cmd:argument("who") end,
      run = function(args, ctx) ctx.out:write("hello ", args.who, "\n") return 7 end }
    local out, err = io.tmpfile(), io.tmpfile()
    local ctx = { out = out, err = err, out_tty = false, err_tty = false, in_tty = false }
    local code = cli.main({ "hello", "world" }, ctx)
    local usage = cli.main({ "hello" }, ctx)
    for i = #cli.commands, 1, -1 do
      if cli.commands[i].name == "hello" then table.remove(cli.commands, i) end
    end
    out:seek("set")
    err:seek("set")
    assert.are.same({ 7, "hello world\n" }, { code, out:read("a") })
    assert.are.equal(64, usage)
    assert.matches("Usage: cfaccess hello .*Error: missing argument 'who'", err:read("a"))
  end)

  it("registers cfaccess test from cfaccess.cli_test when it is installed", function()
    local cli = require("cfaccess.cli")
    local names = {}
    for _, c in ipairs(cli.commands) do names[c.name] = true end
    assert.are.equal(package.searchpath("cfaccess.cli_test", package.path) ~= nil, names.test == true)
    assert.is_true(names.validate and names.fmt and names.plan and names.apply and names.export and names.list)
  end)
end)

-- ---------------------------------------------------------------- render

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

  it("draws the progress line, with the wait and its reason", function()
    assert.are.equal("[----------] 0/4  0:00", render.progress(0, 4, 0, nil, 10))
    assert.are.equal("[#####-----] 2/4  1:05  waiting 42 s: rate limit",
      render.progress(2, 4, 65.4, { waiting = 41.2, reason = "rate limit" }, 10))
    assert.are.equal("[####################] 3/3  0:09", render.progress(3, 3, 9))
  end)
end)
