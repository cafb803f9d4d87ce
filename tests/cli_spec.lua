-- The cfaccess command (API.md section 9), run as a subprocess: stdout,
-- stderr and exit codes of every command, against the mock where it talks
-- to the API; README.md's command-line session and table. In a terminal:
-- cli_tty_spec.lua; installed: cli_install_spec.lua.
-- Expected output lines are kept whole, so that they read as the output does.
-- luacheck: no max line length
local state = require("cfaccess.state")
local cjson = require("cjson").new()
local clitest = require("clitest")
local mockctl = require("mockctl")

local ROOT, read_file = clitest.ROOT, clitest.read_file
local ACCT, ZONE, APP = clitest.ACCT, clitest.ZONE, clitest.APP
local GOOD, BAD_LIST, BROKEN = clitest.GOOD, clitest.BAD_LIST, clitest.BROKEN
local show, expect = clitest.show, clitest.expect

local T = clitest.new()
local TOKEN = T.token
local path, write, cfaccess, no_token = T.path, T.write, T.run, T.no_token
setup(T.setup)
teardown(T.teardown)

local mock
local function env(extra) return T.env(mock, extra) end

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

  it("checks a state as a zone client's with --kind zone, as cfaccess plan does", function()
    write("zstate.json", '{"policies":[' .. GOOD:sub(1, -2) .. '],"apps":{"' .. APP .. '":["staff"]}}')
    expect(cfaccess{ "validate", "zstate.json" }, 0, "zstate.json: valid\n", "")
    local r = cfaccess{ "validate", "--kind", "zone", "zstate.json" }
    expect(r, 1, nil, "")
    assert.matches("^zstate%.json: policies: a zone client has no reusable policies", r.out)
    assert.matches('\nzstate%.json: apps%["' .. APP:gsub("%-", "%%-") .. '"%]: a zone client\'s apps take legacy policies only', r.out)
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
    assert.are.equal(0, (mock:writes()))
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

  it("plans a state without policies whose app list names a live policy", function()
    local c = mock:client(ACCT, TOKEN, {})
    local live = assert(c:create_policy{ name = "live staff", decision = "allow", include = { { everyone = {} } } })
    c:close()
    write("links.json", '{"apps":{"' .. APP .. '":["live staff"]}}')
    local r = cfaccess({ "plan", "links.json" }, { env = env() })
    expect(r, 2, nil, "")
    assert.matches("+live staff", r.out, 1, true)
    r = cfaccess({ "apply", "--yes", "links.json" }, { env = env() })
    expect(r, 0, nil, "")
    c = mock:client(ACCT, TOKEN, {})
    assert.are.equal(live.id, assert(c:get_app(APP)).policies[1].id)
    c:close()
  end)

  it("reports a state's problems before reading anything", function()
    write("bad_state.json", '{"policies":[{"name":"a","decision":"allow","include":[{"email":{"email":1}}]}]}')
    local r = cfaccess({ "plan", "bad_state.json" }, { env = env() })
    expect(r, 1, "bad_state.json: policies[1].include[1].email.email: expected a string, got number\n", "")
    assert.are.equal(0, mock:count())
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
