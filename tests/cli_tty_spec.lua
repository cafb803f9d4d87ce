-- The cfaccess command in a real terminal (tmux): colour, the progress
-- bar during the mock's rate-limit waits, the apply prompt.
-- luacheck: no max line length
local clitest = require("clitest")
local mockctl = require("mockctl")

local ROOT, LUA = clitest.ROOT, clitest.LUA
local q, ACCT, BAD_LIST, CF_VARS = clitest.q, clitest.ACCT, clitest.BAD_LIST, clitest.CF_VARS
local expect = clitest.expect

local T = clitest.new()
local TOKEN = T.token
local path, write, cfaccess = T.path, T.write, T.run
setup(T.setup)
teardown(T.teardown)

local mock

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
  local words = { "cd", q(T.dir()), "&&", "env" }
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
    -- display; the 2nd create is answered 429 with Retry-After: 2.
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
                  { action = "rate_limit", retry_after = 2, method = "POST" } }
    end

    it("shows done/total while a batch waits on the mock's rate limit, and the wait's reason", function()
      assert(tmux_available(), "tmux is not installed (make deps installs it)")
      write("driver.lua", DRIVER)
      queue_faults()
      local envs = T.env(mock, { NO_PROXY = "127.0.0.1" })
      local captures, screen, rc = in_terminal(command_line({ path("driver.lua") }, envs))
      assert.are.equal(0, rc, screen)
      assert.is_truthy(screen:find("driver: 4 created", 1, true), screen)
      -- during the 2 s wait the screen showed the bar at 1 of 4
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
      local envs = T.env(mock, { NO_PROXY = "127.0.0.1" })
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
      local envs = T.env(mock, { NO_PROXY = "127.0.0.1" })
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
        env = T.env(mock) })
      expect(r, 0, nil, "")
      assert.matches("^driver: 4 created", r.out)
    end)
  end)
end)
