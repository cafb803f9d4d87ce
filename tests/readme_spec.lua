-- README.md's examples run as written: every fenced block whose info string
-- is exactly `lua` is run, in order, in one fresh environment, in a
-- separate lua5.4 process configured only by the environment variables the
-- README tells users to set, against the local mock API.
local mockctl = require("mockctl")

local ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."
local LUA = os.getenv("LUA") or "lua5.4"
local q = mockctl.shell_quote

local function readfile(path) return assert(mockctl.read_file(path)) end

-- The file's text, or "" when it does not exist.
local function readopt(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- The fenced blocks of a markdown text: list of { info =, code =, line = }
-- (line: where the code starts in the file).
local function fenced_blocks(md)
  local blocks, cur, n = {}, nil, 0
  for line in (md .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if cur then
      if line:match("^```%s*$") then
        blocks[#blocks + 1] = cur
        cur = nil
      else
        cur.lines[#cur.lines + 1] = line
      end
    else
      local info = line:match("^```(.*)$")
      if info then cur = { info = info:match("^%s*(.-)%s*$"), lines = {}, line = n + 1 } end
    end
  end
  assert(cur == nil, "README.md: a fenced block is not closed")
  for _, b in ipairs(blocks) do b.code = table.concat(b.lines, "\n") end
  return blocks
end

-- The runner for the subprocess: loads every block as its own chunk (so a
-- block's locals are its own, as when a user pastes it) with one shared
-- environment table whose `print` writes a marked line to stdout.
local RUNNER = [[
local path = ...
local blocks = dofile(path)
local env = {}
for k, v in pairs(_G) do env[k] = v end
env._G = env
env.print = function(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  io.stdout:write(table.concat(t, "\t", 1, t.n), "\n")
end
for i, b in ipairs(blocks) do
  io.stdout:write("--- block ", i, " (README.md line ", b.line, ")\n")
  local chunk, err = load(b.code, "=README.md:" .. b.line, "t", env)
  if not chunk then io.stderr:write(err, "\n"); os.exit(3) end
  local ok, rerr = xpcall(chunk, debug.traceback)
  if not ok then io.stderr:write(tostring(rerr), "\n"); os.exit(4) end
end
io.stdout:write("--- all ", #blocks, " blocks ran\n")
]]

describe("make demo (examples/demo.sh), as the Quick start describes it", function()
  it("runs the quickstart against a fresh mock and succeeds", function()
    local out, errf = os.tmpname(), os.tmpname()
    local cmd = ("cd %s && timeout 120 sh examples/demo.sh >%s 2>%s"):format(q(ROOT), q(out), q(errf))
    local ok, how, code = os.execute(cmd)
    local stdout, stderr = readfile(out), readfile(errf)
    os.remove(out)
    os.remove(errf)
    assert.are.same({ true, "exit", 0 }, { ok, how, code }, stdout .. stderr)
    assert.are.equal("", stderr)
    for _, want in ipairs{
      "demo: mock Cloudflare API on http://127.0.0.1:",
      "1. A policy built with cfaccess.rules",
      '"include":[{"email_domain":{"domain":"example.com"}}',
      "2. A policy with mistakes",
      "- sesion_duration: unknown field",
      "3. Created reusable policies ",
      "4. Attached them to the application in that order",
      '[reusable]',
      "6. Reordered in one write",
      "7. delete_policy of an attached policy is refused (conflict)",
      "9. Deleted the three reusable policies",
      "10. Created application policy ",
      "11. The application has 1 policy:",
      "12. Updated it (PUT)",
      "session_duration 4h",
      "14. Deleted application policy ",
      "Done: every step succeeded.",
      "demo: OK",
    } do
      assert.is_truthy(stdout:find(want, 1, true), ("%q not in:\n%s"):format(want, stdout))
    end
    -- the token it made up is not printed (it is 48 hex characters; no
    -- such run may appear besides the 32-hex account id)
    for run in stdout:gmatch("%x+") do
      assert.is_true(#run < 48, "a long hex string was printed: " .. run)
    end
  end)
end)

describe("README.md", function()
  local md, blocks, luablocks

  setup(function()
    md = readfile(ROOT .. "/README.md")
    blocks = fenced_blocks(md)
    luablocks = {}
    for _, b in ipairs(blocks) do
      if b.info == "lua" then luablocks[#luablocks + 1] = b end
    end
  end)

  it("has runnable lua examples, and every other block says what it is", function()
    assert.is_true(#luablocks >= 8, "only " .. #luablocks .. " lua blocks")
    for _, b in ipairs(blocks) do
      assert.is_true(b.info ~= "", "README.md line " .. b.line .. ": a fenced block without an info string")
    end
  end)

  it("shows the main commands", function()
    for _, cmd in ipairs{ "make demo", "make test", "make asan", "make valgrind", "make lint",
                          "make bench", "make luarocks-check", "make mock" } do
      assert.is_truthy(md:find(cmd, 1, true), cmd)
    end
  end)

  it("documents every public function, option, variable and error kind", function()
    local names = {
      -- core
      "cfaccess.encode", "cfaccess.validate", "cfaccess.client", "_VERSION", "allow_unknown",
      -- client options
      "account_id", "zone_id", "api_token", "api_key", "api_email", "base_url", "timeout",
      "connect_timeout", "max_retries", "max_retry_wait", "deadline", "rate_limit", "max_response_bytes",
      "cafile", "proxy", "user_agent", "on_log",
      -- methods
      "create_app_policy", "list_app_policies", "get_app_policy", "update_app_policy",
      "delete_app_policy", "create_policy", "list_policies", "get_policy", "update_policy",
      "delete_policy", ":close()", "<close>",
      "list_apps", "get_app", "set_app_policies", "attach_policy", "detach_policy", "make_reusable",
      "create_group", "list_groups", "get_group", "update_group", "delete_group", "allow_empty", "expect",
      -- environment
      "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY", "CLOUDFLARE_EMAIL", "CLOUDFLARE_BASE_URL",
      "CLOUDFLARE_ACCOUNT_ID", "CFACCESS_APP_ID",
      -- errors
      '"invalid"', '"api"', '"network"', '"timeout"', '"decode"', '"usage"', '"conflict"',
      "problems", "ray_id", "attempts", "retry_after",
      -- embedding
      "luaopen_cfaccess_core", "luaL_requiref",
    }
    -- every rule builder and list helper (the one list of them: rulespec)
    local spec = require("cfaccess.rulespec")
    for _, e in ipairs(spec) do names[#names + 1] = e.builder end
    for _, l in ipairs(spec.lists) do names[#names + 1] = l.builder end
    for _, name in ipairs(names) do
      assert.is_truthy(md:find(name, 1, true), "README.md does not mention " .. name)
    end
    for _, kind in ipairs{ '"app"', '"zone"', '"reusable"', '"infrastructure"' } do
      assert.is_truthy(md:find(kind, 1, true), "README.md does not mention kind " .. kind)
    end
  end)

  it("has an embedding example that compiles and runs against the static core", function()
    local c
    for _, blk in ipairs(blocks) do
      if blk.info == "c" then c = blk.code end
    end
    assert.is_string(c, "no ```c block")
    local dir = os.tmpname()
    os.remove(dir)
    assert.is_true(os.execute("mkdir " .. q(dir)))
    local f = assert(io.open(dir .. "/host.c", "wb"))
    f:write(c)
    f:close()
    -- the plain build's objects (O=.: what `make` made, so nothing is
    -- compiled twice; built if missing), archived in a directory of its
    -- own: the sanitizer runtimes of `make asan` must not leak into this
    -- compile
    local cmd = table.concat({
      "cd", q(ROOT), "&&", "env -u LD_PRELOAD -u O make --no-print-directory",
      "O=.", "LIBA=" .. q(dir .. "/build/libcfaccess.a"), "static >", q(dir .. "/make.log"), "2>&1",
      "&& env -u LD_PRELOAD sh -c", q("cc -std=c99 -Wall -Wextra -pedantic -Werror -Isrc "
        .. "$(pkg-config --cflags lua5.4) -o " .. q(dir .. "/host") .. " " .. q(dir .. "/host.c")
        .. " " .. q(dir .. "/build/libcfaccess.a") .. " $(pkg-config --libs lua5.4) -lcurl -lm -ldl"),
      ">>", q(dir .. "/make.log"), "2>&1",
      "&& env -u LD_PRELOAD LUA_PATH_5_4=" .. q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua"),
      -- no core.so on the path (the host registers the core itself), but
      -- lua-cjson, which the core requires when it opens (issue 9)
      "LUA_CPATH_5_4=" .. q((assert(package.searchpath("cjson", package.cpath)):gsub("cjson%.so$", "?.so"))),
      q(dir .. "/host"), ">", q(dir .. "/out"), "2>&1",
    }, " ")
    local ok = os.execute(cmd)
    local log, out = readopt(dir .. "/make.log"), readopt(dir .. "/out")
    os.execute("rm -rf " .. q(dir))
    assert.is_true(ok == true, log .. out)
    assert.matches("^cfaccess %d+%.%d+%.%d+\n$", out)
  end)

  describe("lua examples", function()
    local mock, token, account, app, result

    setup(function()
      token = "readme-" .. string.format("%08x%08x", math.random(0, 0x7fffffff), os.time())
      account = "0123456789abcdef0123456789abcdef"
      app = "3f2d1c7e-8a9b-4c5d-9e0f-1a2b3c4d5e6f"
      mock = mockctl.start{ token = token }
      mock:app("accounts", account, app)

      -- the blocks, as a Lua file the runner can dofile
      local list = {}
      for _, b in ipairs(luablocks) do
        list[#list + 1] = ("{ line = %d, code = %q }"):format(b.line, b.code)
      end
      local blocks_file, runner_file = os.tmpname(), os.tmpname()
      local out_file, err_file = os.tmpname(), os.tmpname()
      local f = assert(io.open(blocks_file, "wb"))
      f:write("return {\n", table.concat(list, ",\n"), "\n}\n")
      f:close()
      f = assert(io.open(runner_file, "wb"))
      f:write(RUNNER)
      f:close()

      -- exactly the variables the README asks users to set (one auth scheme)
      local cmd = table.concat({
        "cd", q(ROOT), "&&", "env -u CLOUDFLARE_API_KEY -u CLOUDFLARE_EMAIL",
        "CLOUDFLARE_API_TOKEN=" .. q(token),
        "CLOUDFLARE_ACCOUNT_ID=" .. q(account),
        "CFACCESS_APP_ID=" .. q(app),
        "CLOUDFLARE_BASE_URL=" .. q(mock.base_url),
        "NO_PROXY=127.0.0.1,localhost",
        "timeout 120", q(LUA), q(runner_file), q(blocks_file),
        ">" .. q(out_file), "2>" .. q(err_file),
      }, " ")
      local ok, how, code = os.execute(cmd)
      result = { ok = ok, how = how, code = code, stdout = readfile(out_file),
                 stderr = readfile(err_file), log = mock:log(), state = mock:state() }
      for _, p in ipairs{ blocks_file, runner_file, out_file, err_file } do os.remove(p) end
    end)

    teardown(function()
      if mock then mock:stop() end
    end)

    it("all run without an error", function()
      assert.are.equal("", result.stderr)
      assert.are.same({ true, "exit", 0 }, { result.ok, result.how, result.code })
      assert.is_truthy(result.stdout:find("--- all " .. #luablocks .. " blocks ran", 1, true),
        result.stdout)
    end)

    it("print what the README says they print", function()
      -- `print(...) --> text`, or a line `--> text` under it, promises that
      -- text appears in that block's output, in the order of the promises
      -- (runs of blanks compare equal, so the tabs print puts between
      -- values may be written as spaces)
      local function squash(s) return (s:gsub("[ \t]+", " ")) end
      local outputs, cur = {}, nil
      for line in result.stdout:gmatch("([^\n]*)\n") do
        local i = line:match("^%-%-%- block (%d+) ")
        if i then
          cur = {}
          outputs[tonumber(i)] = cur
        elseif cur and not line:match("^%-%-%- all %d+ blocks ran$") then
          cur[#cur + 1] = line
        end
      end
      for i, lines in pairs(outputs) do outputs[i] = squash(table.concat(lines, "\n")) end
      local checked = 0
      for bi, b in ipairs(luablocks) do
        local out, pos = outputs[bi] or "", 1
        for i, line in ipairs(b.lines) do
          local want = line:match("^%s*%-%-> (.-)%s*$") or line:match("print%(.*%-%-> (.-)%s*$")
          if want then
            checked = checked + 1
            local s, e = out:find(squash(want), pos, true)
            assert.is_truthy(s, ("README.md line %d: %q not in the block's output (after what came before):\n%s")
              :format(b.line + i - 1, want, out))
            pos = e + 1
          end
        end
      end
      assert.is_true(checked >= 20, "only " .. checked .. " output lines checked")
    end)

    it("talk to the API through the environment's settings only", function()
      local paths = {}
      for _, r in ipairs(result.log) do paths[#paths + 1] = r.method .. " " .. r.path end
      assert.is_true(#result.log >= 10, table.concat(paths, "\n"))
      for _, r in ipairs(result.log) do
        assert.matches("^/client/v4/", r.path)
        assert.are.equal("[redacted]", r.headers.authorization)
      end
      -- the examples clean up after themselves
      assert.are.same({}, result.state)
    end)

    it("never print the token", function()
      assert.is_falsy(result.stdout:find(token, 1, true))
      assert.is_falsy(result.stderr:find(token, 1, true))
    end)
  end)
end)
