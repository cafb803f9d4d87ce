-- The cfaccess command as installed (make install, the throwaway LuaRocks
-- tree) and as `make demo` runs it.
-- luacheck: no max line length
local clitest = require("clitest")
local mockctl = require("mockctl")

local ROOT, LUA, O = clitest.ROOT, clitest.LUA, clitest.O
local q, read_file = clitest.q, clitest.read_file
local ACCT, APP = clitest.ACCT, clitest.APP
local GOOD, BAD_LIST, BROKEN = clitest.GOOD, clitest.BAD_LIST, clitest.BROKEN
local expect = clitest.expect

local T = clitest.new()
local TOKEN = T.token
local path, write, cfaccess, no_token = T.path, T.write, T.run, T.no_token
setup(T.setup)
teardown(T.teardown)

local mock
local function env(extra) return T.env(mock, extra) end

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
        :format(q(T.dir()), q(LUA), q(cmd), args, q(out)))
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
  it("plan 2, apply refused without --yes, apply --yes 0, plan 0, export round trip, list", function()
    write("state.lua", STATE)
    local r = run({ "plan", "state.lua" }, { env = env() })
    expect(r, 2, nil, "")
    assert.matches('%+ [^\n]*"staff"', r.out)
    r = run({ "apply", "state.lua" }, { env = env() })
    expect(r, 1, nil, "cfaccess: not applied: no terminal to ask on; run with --yes to apply\n")
    assert.are.equal(0, (mock:writes()))
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

