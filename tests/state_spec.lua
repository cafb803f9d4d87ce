-- cfaccess.state: load (.lua sandboxed, .json with line:column), dump
-- (Lua with builder calls, pretty canonical JSON), problems/validate with
-- paths from the file's top.
-- Expected output lines are kept whole, so that they read as the output does.
-- luacheck: no max line length
local cfaccess = require("cfaccess")
local state = require("cfaccess.state")
local testutil = require("testutil")
local mockctl = require("mockctl")
local r = cfaccess.rules

local APP1 = "f174e90a-fafe-4643-bbbc-4a0ed4fc8415"
local APP2 = "0b1c2d3e-0000-4000-8000-000000000001"

local tmpdir
local function write(name, text)
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

setup(function()
  tmpdir = os.tmpname()
  os.remove(tmpdir)
  assert(os.execute("mkdir " .. mockctl.shell_quote(tmpdir)))
end)
teardown(function()
  if tmpdir then os.execute("rm -rf " .. mockctl.shell_quote(tmpdir)) end
end)

-- A valid value for a rule field of this format (core.schema's formats).
local SAMPLE = {
  email = "alice@example.com", domain = "example.com", ip = "203.0.113.0/24",
  url = "https://eval.example.com/check", country = "DE", hex32 = "0123456789abcdef0123456789abcdef",
}

-- One rule of every type, made with its builder (every argument given, the
-- optional ones too), from lua/cfaccess/rulespec.lua and core.schema.
local function every_rule()
  local spec = require("cfaccess.rulespec")
  local schema = cfaccess.core and cfaccess.core.schema or require("cfaccess.core").schema
  local list = {}
  for _, s in ipairs(spec) do
    local fields = {}
    for _, f in ipairs(schema.rules[s.key].fields) do fields[f.name] = f end
    local args = {}
    for i, a in ipairs(s.args) do
      if s.list and s.list[a] then args[i] = { "high", "low" }
      elseif a == "auth_method" then args[i] = "mfa"
      else args[i] = SAMPLE[fields[a].format] or ("v-" .. s.key .. "-" .. a) end
    end
    list[#list + 1] = r[s.builder](table.unpack(args, 1, #s.args))
  end
  return list
end

-- A state with every rule type, legacy and reusable apps, odd strings.
local function full_state()
  local rules = every_rule()
  return {
    policies = {
      { name = "every rule", decision = "non_identity", include = rules, exclude = { r.geo("US") },
        require = { r.auth_method("mfa") }, session_duration = "4h" },
      { name = "quote \" back\\slash\nnewline / slash é", decision = "deny", include = { r.everyone() } },
      { name = "team optional", decision = "allow", include = { r.github_org("acme", "idp-1") } },
    },
    apps = {
      [APP1] = { "every rule", "team optional", "3a4b5c6d-0000-4000-8000-00000000000a" },
      [APP2] = { legacy = {
        { name = "old allow", decision = "allow", include = { r.ip("10.0.0.1") } },
        { name = "old deny", decision = "deny", include = { r.everyone() } },
      } },
    },
  }
end

describe("cfaccess.state.load", function()
  it("reads a .json state, integers as integers", function()
    local path = write("s.json", '{"policies":[{"name":"a","decision":"allow","include":[{"everyone":{}}]}],'
      .. '"apps":{"' .. APP2 .. '":{"legacy":[{"name":"l","decision":"allow","include":[{"everyone":{}}],"precedence":3}]}}}')
    local s, err = state.load(path)
    assert.is_nil(err)
    assert.are.same({ policies = { { name = "a", decision = "allow", include = { { everyone = {} } } } },
      apps = { [APP2] = { legacy = { { name = "l", decision = "allow", include = { { everyone = {} } }, precedence = 3 } } } } }, s)
    assert.are.equal("integer", math.type(s.apps[APP2].legacy[1].precedence))
  end)

  it("reports a JSON syntax error with line and column", function()
    local path = write("broken.json", '{\n  "name": "x",\n  "include": [\n    {"email": {"email": "a@x"}},,\n  ]\n}\n')
    local s, err = state.load(path)
    assert.is_nil(s)
    assert.are.equal("invalid", err.kind)
    assert.are.equal(4, err.line)
    assert.are.equal(33, err.column)
    assert.are.equal(path .. ":4:33: JSON syntax error: expected a value but found ','", err.message)
    assert.are.equal(err.message, tostring(err))
  end)

  it("counts columns in characters and reports the end of the file", function()
    local path = write("end.json", '{"name": "é",\n "x": [1, 2')
    local _, err = state.load(path)
    assert.are.same({ 2, 12 }, { err.line, err.column })
    assert.matches("expected ',' or ']' but found the end of the file$", err.message)
    assert.are.same({ 1, 4 }, { state.line_column("ééé\nabc", 7) }, "3 two-byte characters on line 1")
    assert.are.same({ 2, 3 }, { state.line_column("ééé\nabc", 10) })
  end)

  it("skips a UTF-8 byte order mark", function()
    assert.are.same({ name = "a" }, state.load(write("bom.json", '\239\187\191{"name": "a"}')))
    assert.are.same({ name = "b" }, state.load(write("bom.lua", '\239\187\191return { name = "b" }')))
    local _, err = state.load(write("bom2.json", '\239\187\191{"name" "a"}'))
    assert.are.same({ 1, 9 }, { err.line, err.column })
  end)

  it("reads a .lua state with the rule builders", function()
    local path = write("s.lua", [[
local r = rules
return {
  policies = { { name = "staff", decision = "allow", include = r.emails{ "a@example.com", "b@example.com" } } },
  apps = { ["]] .. APP1 .. [["] = { "staff" } },
}
]])
    local s, err = state.load(path)
    assert.is_nil(err)
    assert.are.same({ policies = { { name = "staff", decision = "allow",
      include = { r.email("a@example.com"), r.email("b@example.com") } } }, apps = { [APP1] = { "staff" } } }, s)
  end)

  it("refuses a .lua file that tries os.execute, and runs nothing of it", function()
    local marker = tmpdir .. "/pwned"
    local path = write("evil.lua", "os.execute('touch " .. marker .. "')\nreturn {}\n")
    local s, err = state.load(path)
    assert.is_nil(s)
    assert.are.equal("invalid", err.kind)
    assert.matches("^" .. path:gsub("%p", "%%%0") .. ":1: os is not available in a state file %(it may use only rules and the safe basics", err.message)
    assert.is_nil(io.open(marker, "r"), "the command ran")
  end)

  for _, name in ipairs{ "io", "os", "require", "load", "loadfile", "dofile", "debug", "package",
                         "collectgarbage", "getmetatable", "print" } do
    it("gives a state file no " .. name, function()
      local path = write("no_" .. name .. ".lua", "local x = " .. name .. "\nreturn { x = x }\n")
      local s, err = state.load(path)
      assert.is_nil(s)
      assert.matches(":1: " .. name .. " is not available in a state file", err.message)
    end)
  end

  it("gives it copies of the safe libraries, without string.dump", function()
    local path = write("libs.lua", [[
string.upper = nil
table.insert = nil
return { has_dump = string.dump ~= nil, rep = ("ab"):rep(2), max = math.max(1, 5), n = utf8.len("é") }
]])
    local s = assert(state.load(path))
    assert.are.same({ has_dump = false, rep = "abab", max = 5, n = 1 }, s)
    assert.are.equal("X", string.upper("x"), "the host's string table was changed")
    assert.is_function(table.insert)
  end)

  it("stops a .lua file that never ends", function()
    local saved = state.MAX_INSTRUCTIONS
    state.MAX_INSTRUCTIONS = 200000
    local path = write("loop.lua", "local n = 0\nwhile true do n = n + 1 end\n")
    local s, err = state.load(path)
    state.MAX_INSTRUCTIONS = saved
    assert.is_nil(s)
    assert.matches(":2: gave up after 200000 instructions %(an endless loop%?%)", err.message)
  end)

  it("round-trips session_duration = cfaccess.null through a Lua dump (written as null, not nil)", function()
    local s = { policies = { { name = "n", decision = "allow", include = { r.everyone() }, session_duration = cfaccess.null } } }
    local text = assert(state.dump(s, "lua"))
    assert.truthy(text:find("session_duration = null,", 1, true), text)
    local back = assert(state.load(write("null.lua", text)))
    assert.are.equal(cfaccess.null, back.policies[1].session_duration)
    assert.are.equal(state.dump(s, "json"), state.dump(back, "json"))
  end)

  it("stops a file that catches the instruction limit with pcall and goes on", function()
    local saved = state.MAX_INSTRUCTIONS
    state.MAX_INSTRUCTIONS = 200000
    local path = write("pcall_loop.lua", "while true do\n  pcall(function() while true do end end)\nend\n")
    local s, err = state.load(path)
    state.MAX_INSTRUCTIONS = saved
    assert.is_nil(s)
    assert.matches("gave up after 200000 instructions", err.message)
  end)

  it("gives a state file a copy of rules: the host's builders stay as they are", function()
    local path = write("rules_swap.lua", "rules.email = function() return { everyone = {} } end\nreturn { x = rules.email('a@b.co') }\n")
    local s = assert(state.load(path))
    assert.are.same({ x = { everyone = {} } }, s)
    assert.are.same({ email = { email = "a@example.com" } }, r.email("a@example.com"))
    assert.are.same({ email = { email = "a@example.com" } }, require("cfaccess.rules").email("a@example.com"))
  end)

  it("refuses memory bombs in one call: string.rep, its method form, gsub, format, pack, table.move", function()
    for name, text in pairs{
      rep = 'return { ("x"):rep(2^40) }', rep2 = 'return { string.rep("x", 2^40) }',
      gsub = 'local s = string.rep("x", 100000) return { (s:gsub(".", s)) }',
      format = 'local s = ("x"):rep(8*1024*1024) return { string.format("%s%s%s", s, s, s) }',
      move = 'return table.move({ 1 }, 1, 2^40, 1, {})',
    } do
      local s, err = state.load(write("bomb_" .. name .. ".lua", text))
      assert.is_nil(s, name)
      assert.matches("a state file is limited", err.message, 1, true)
    end
    local _, err = state.load(write("bomb_pack.lua", 'return { string.pack("c2000000000", "") }'))
    assert.matches("attempt to call a nil value %(field 'pack'%)", err.message)
    assert.are.equal(string.rep, getmetatable("").__index.rep, "the host's string methods are its own again")
    assert.are.equal("xx", ("x"):rep(2))
  end)

  it("stops a file whose memory keeps growing (s = s .. s)", function()
    local s, err = state.load(write("bomb_double.lua", 'local s = "x"\nfor i = 1, 40 do s = s .. s end\nreturn {}\n'))
    assert.is_nil(s)
    assert.matches("gave up: the file used more than 64 MiB of memory", err.message, 1, true)
  end)

  -- the process's peak RSS so far (KiB), for the memory bombs below
  local function peak_kb()
    local f = assert(io.open("/proc/self/status"))
    local kb = tonumber(f:read("a"):match("VmHWM:%s*(%d+)"))
    f:close()
    return kb
  end

  -- one concatenation of 40 operands of 16 MiB asks for 640 MiB at once,
  -- between two hooks: the allocator refuses it before it is made (the
  -- process's peak RSS stays far below it), and the host goes on
  it("stops one instruction that would allocate far past the limit (s .. s .. s ...), before it allocates", function()
    local before = peak_kb()
    local text = 'local s = ("x"):rep(16 * 1024 * 1024)\nreturn { s' .. (" .. s"):rep(39) .. " }\n"
    local s, err = state.load(write("bomb_concat.lua", text))
    assert.is_true(s == nil, "the file loaded")   -- not is_nil(s): it would print 640 MiB
    assert.matches("gave up: the file used more than 64 MiB of memory", err.message, 1, true)
    assert.is_true(peak_kb() - before < 300 * 1024, ("peak RSS grew by %d KiB"):format(peak_kb() - before))
    assert.are.equal(10, #(("x"):rep(5) .. ("y"):rep(5)), "the host allocates as before")
    local t = {}
    for i = 1, 100000 do t[i] = { i } end
    assert.are.equal(100000, #t)
  end)

  it("refuses patterns that would backtrack for hours in one call, and runs ordinary ones", function()
    local s, err = state.load(write("bomb_pattern.lua", 'local s = ("a"):rep(40)\nreturn { s:find((".-"):rep(12) .. "b") }\n'))
    assert.is_nil(s)
    assert.matches("string.find: the pattern has 12 quantifiers for 40 bytes of subject", err.message, 1, true)
    s = assert(state.load(write("patterns.lua",
      'local d = ("alice@example.com"):match("@(.+)$")\nlocal n = {} for w in ("a b"):gmatch("%a") do n[#n + 1] = w end\n'
      .. 'return { d = d, n = table.concat(n, "-"), g = (("a.b"):gsub("%.", "-")) }\n')))
    assert.are.same({ d = "example.com", n = "a-b", g = "a-b" }, s)
  end)

  it("runs no code of the file after it returned: no finalizers, no metamethods on the state", function()
    local s, err = state.load(write("gc.lua", "setmetatable({}, { __gc = function() while true do end end })\nreturn {}\n"))
    assert.is_nil(s)
    assert.matches("gc.lua:1: setmetatable: a __gc metamethod is not available in a state file", err.message, 1, true)
    s = assert(state.load(write("meta.lua", "return setmetatable({ name = 'n' }, { __index = function() while true do end end,\n"
      .. "  __pairs = function() while true do end end })\n")))
    assert.is_nil(getmetatable(s))
    assert.is_nil(s.decision)
    assert.are.same({ name = "n" }, s)
  end)

  it("refuses a state that contains itself, nests too deep or has too many tables, naming the path", function()
    local _, err = state.load(write("cycle.lua", "local t = { name = 'a' }\nt.include = { t }\nreturn t\n"))
    assert.matches("cycle%.lua: include%[1%]: the table contains itself$", err.message)
    _, err = state.load(write("deep.lua", "local t = {} local c = t for i = 1, 1000 do c.x = {} c = c.x end\nreturn t\n"))
    assert.matches("deep%.lua: x%.x[.x]*: nested deeper than 200 levels$", err.message)
    _, err = state.load(write("dag.lua", "local t = {} for i = 1, 60 do t = { a = t, b = t } end\nreturn { t }\n"))
    assert.matches("more than 200000 tables", err.message, 1, true)
  end)

  -- review findings F6-F11: the sandbox's holes after the capped allocator
  local BIG = 'local s = ("x"):rep(16 * 1024 * 1024)\n'

  it("stops a file that catches refused allocations in a loop at the first failure, not at the instruction limit", function()
    local saved = state.MAX_INSTRUCTIONS
    state.MAX_INSTRUCTIONS = 5000000
    -- before: each refusal cost a full collection and the file went on
    local s, err = state.load(write("memloop.lua", BIG .. "local f = function() return s .. s .. s .. s .. s end\n"
      .. "for i = 1, 200 do pcall(f) end\nreturn { policies = {} }\n"))
    state.MAX_INSTRUCTIONS = saved
    assert.is_true(s == nil, "the file loaded")
    assert.are.equal("gave up: the file used more than 64 MiB of memory", err.message)
  end)

  it("gives the file's own error when a refused allocation succeeded after the collection", function()
    local text = 'local keep = ("y"):rep(16 * 1024 * 1024)\nlocal k2, k3 = keep .. "a", ("z"):rep(8 * 1024 * 1024)\nfor i = 1, 30 do local g = keep .. i end\n'
    local s, err = state.load(write("retry_err.lua", text .. 'error("the real mistake")\n'))
    assert.is_true(s == nil, "the file loaded")
    assert.matches("retry_err%.lua:4: the real mistake$", err.message)
    assert.are.same({ policies = {} }, state.load(write("retry_ok.lua", text .. "return { policies = {} }\n")))
  end)

  it("gives a file no allowance from the host's garbage freed while it runs", function()
    collectgarbage("stop")
    -- 128 MiB of host garbage, the GC stopped (a host's choice)
    for i = 1, 8 do local g = ("g"):rep(16 * 1024 * 1024) .. i; assert(#g > 0) end
    local s, err = state.load(write("credit.lua", BIG .. "local big = s .. s .. s .. s .. s\nreturn { n = #big }\n"))
    collectgarbage("restart")
    assert.is_true(s == nil, "the file loaded")
    assert.matches("gave up: the file used more than 64 MiB of memory", err.message, 1, true)
  end)

  it("runs no metamethod of an error value in the host and cuts a long message", function()
    local s, err = state.load(write("errobj.lua", "error(setmetatable({}, { __tostring = function() return string.rep('x', 2^20) end }))\n"))
    assert.is_nil(s)
    assert.is_true(err.message == "the file raised an error that is not a message (a table)", "the message is " .. #err.message .. " bytes")
    s, err = state.load(write("errlong.lua", BIG .. "error(s)\n"))
    assert.is_nil(s)
    assert.is_true(#err.message < 2000, "the message is " .. #err.message .. " bytes")
    assert.is_truthy(err.message:find("^.-errlong%.lua:2: xxxx+%.%.%. %(%d+ bytes%)$"), "the message is not cut")
  end)

  it("refuses string.rep counts above the string limit even for empty strings (one C call would loop for ages)", function()
    -- a child with a timeout: before the fix this call never returns
    local code = mockctl.shell_quote("local _, e = require('cfaccess.state').load(os.getenv('P'))\n"
      .. "io.write(e and e.message or 'loaded')")
    for name, text in pairs{ rep = 'return { (""):rep(math.maxinteger) }', sep = 'return { string.rep("", 2^40, "") }' } do
      local p = io.popen("P=" .. mockctl.shell_quote(write("rephang_" .. name .. ".lua", text)) .. " timeout 60 lua5.4 -e " .. code)
      local out = p:read("a")
      p:close()
      assert.matches("string.rep: %d+ repetitions %(a state file is limited%)", out, nil, name)
    end
  end)

  it("copies a returned state in memory proportional to it, naming long keys in paths shortened", function()
    local before = peak_kb()
    local text = 'local K = ("k"):rep(16 * 1024 * 1024 - 16)\nlocal t = {}\nlocal cur = t\n'
      .. "for i = 1, 12 do local n = {}; cur[K] = n; cur = n end\n"
    local s = state.load(write("longkeys.lua", text .. "return t\n"))
    assert.is_true(s ~= nil, "the file did not load")
    assert.is_true(peak_kb() - before < 300 * 1024, ("peak RSS grew by %d KiB"):format(peak_kb() - before))
    local _, err = state.load(write("longkeys_fn.lua", text .. "cur.f = rules.email\nreturn t\n"))
    assert.is_true(#err.message < 2000, "the message is " .. #err.message .. " bytes")
    assert.matches("^.-longkeys_fn%.lua: kkkk+%.%.%.%(16777200 bytes%)%.kk.*%.f: expected data, got a function$", err.message)
  end)

  it("reports Lua syntax errors, runtime errors and non-tables with the file", function()
    local _, err = state.load(write("syntax.lua", "return {\n  name = \n"))
    assert.are.equal("invalid", err.kind)
    assert.matches("syntax%.lua:3: unexpected symbol near <eof>", err.message)
    _, err = state.load(write("builder.lua", "return { include = { rules.email(5) } }\n"))
    assert.matches("builder%.lua:1: cfaccess%.rules%.email: argument #1 %(address%)", err.message)
    _, err = state.load(write("number.lua", "return 5\n"))
    assert.matches("number%.lua: expected a table %(a state, a policy or a list of policies%), got number$", err.message)
    _, err = state.load(write("number.json", "5"))
    assert.matches("number%.json: expected a table", err.message)
  end)

  it("reads only .lua and .json, and says why a file cannot be read", function()
    local s, err = state.load(write("x.yaml", "a: 1"))
    assert.is_nil(s)
    assert.are.equal("usage", err.kind)
    assert.matches("x%.yaml: expected a %.lua or %.json file$", err.message)
    s, err = state.load(tmpdir .. "/missing.json")
    assert.is_nil(s)
    assert.are.equal("usage", err.kind)
    assert.matches("^cannot read .*missing%.json: No such file or directory$", err.message)
    assert.has_error(function() state.load(5) end, "cfaccess.state.load: argument #1 (path) expected a string, got number")
  end)
end)

-- JSON text without the whitespace outside strings.
local function compact_json(text)
  local out, i, instr = {}, 1, false
  while i <= #text do
    local c = text:sub(i, i)
    if instr then
      out[#out + 1] = c
      if c == "\\" then out[#out + 1] = text:sub(i + 1, i + 1); i = i + 1
      elseif c == '"' then instr = false end
    elseif c == '"' then
      instr = true
      out[#out + 1] = c
    elseif not c:match("%s") then
      out[#out + 1] = c
    end
    i = i + 1
  end
  return table.concat(out)
end

describe("cfaccess.state.dump", function()
  it("round-trips a state with every rule type through Lua and JSON", function()
    local s = full_state()
    for _, fmt in ipairs{ "lua", "json" } do
      local text = assert(state.dump(s, fmt))
      local back, err = state.load(write("rt." .. fmt, text))
      assert.is_nil(err, fmt .. ": " .. tostring(err) .. "\n" .. text)
      local same, where = testutil.deep_equal(s, back)
      assert.is_true(same, fmt .. ": " .. tostring(where) .. "\n" .. text)
      -- and dumping what was read gives the same text
      assert.are.equal(text, state.dump(back, fmt))
    end
  end)

  it("writes Lua with one builder call per rule line and a comment per app", function()
    local s = full_state()
    local text = assert(state.dump(s, "lua", { apps = { [APP1] = { name = "Staff portal", domain = "portal.example.com" } } }))
    assert.matches("\n    %-%- Staff portal %(portal%.example%.com%)\n    %[\"" .. APP1:gsub("%-", "%%-") .. "\"%] = {", text)
    assert.is_truthy(text:find('\n        r.email("alice@example.com"),\n', 1, true), text)
    assert.is_truthy(text:find('\n        r.github_org("v-github-organization-name", "v-github-organization-identity_provider_id", "v-github-organization-team"),\n', 1, true), text)
    assert.is_truthy(text:find('\n        r.github_org("acme", "idp-1"),\n', 1, true), text)
    assert.is_truthy(text:find('\n        r.user_risk_score({ "high", "low" }),\n', 1, true), text)
    assert.is_truthy(text:find('\n        r.everyone(),\n', 1, true), text)
    -- every rule of the every-rule policy is a builder call on its own line
    local spec = require("cfaccess.rulespec")
    for _, sp in ipairs(spec) do
      assert.is_truthy(text:find("\n        r." .. sp.builder .. "(", 1, true), sp.builder .. " not written as a call")
    end
    assert.is_true(state.uses_builders)
  end)

  it("writes a rule its builder cannot make as a table literal", function()
    -- a 2024 okta rule (email, no name): r.okta has no email argument
    local s = { policies = { { name = "p", decision = "allow", include = {
      r.geo("US"), { okta = { email = "x@example.com", identity_provider_id = "idp" } } } } } }
    local text = assert(state.dump(s, "lua"))
    assert.is_truthy(text:find('\n        r.geo("US"),\n        { okta = { email = "x@example.com", identity_provider_id = "idp" } },\n', 1, true), text)
    local back = assert(state.load(write("okta.lua", text)))
    assert.are.same(s, back)
  end)

  it("writes JSON whose policies are the canonical encoding, pretty-printed", function()
    local s = full_state()
    local text = assert(state.dump(s, "json"))
    assert.are.equal("\n", text:sub(-1))
    assert.matches('^{\n  "policies": %[\n    {\n      "name": "every rule",\n      "decision": "non_identity",\n      "include": %[\n', text)
    -- whitespace outside strings removed, each policy is cfaccess.encode's output
    local compact = compact_json(text)
    for _, p in ipairs(s.policies) do
      local json = assert(cfaccess.encode(p, { kind = "reusable" }))
      assert.is_truthy(compact:find(json, 1, true), json)
    end
    for _, p in ipairs(s.apps[APP2].legacy) do
      assert.is_truthy(compact:find(assert(cfaccess.encode(p)), 1, true))
    end
    -- apps sorted by id, so the text never depends on pairs order
    assert.is_true(text:find(APP2, 1, true) < text:find(APP1, 1, true))
    -- a rule on one line
    assert.is_truthy(text:find('\n        { "everyone": {} }', 1, true), text)
  end)

  it("pretty-prints canonical JSON keeping key order", function()
    assert.are.equal('{\n  "b": 1,\n  "a": [ "x/y", "\\"q\\"" ],\n  "e": {},\n  "l": []\n}\n',
      state.pretty_json('{"b":1,"a":["x/y","\\"q\\""],"e":{},"l":[]}'))
  end)

  it("returns the encoder's problems for a policy it cannot encode, with the policy's path", function()
    local text, err = state.dump({ policies = { { name = "a", decision = "allow", include = { r.everyone() } },
      { name = "b", decision = "maybe", include = { r.everyone() } } } }, "json")
    assert.is_nil(text)
    assert.are.equal("invalid", err.kind)
    assert.matches("^policies%[2%]: ", err.message)
  end)

  it("raises for a wrong argument", function()
    assert.has_error(function() state.dump("x", "lua") end, "cfaccess.state.dump: argument #1 (state) expected a table, got string")
    assert.has_error(function() state.dump({}, "yaml") end, 'cfaccess.state.dump: argument #2 (format) expected "lua" or "json", got yaml')
  end)
end)

describe("cfaccess.state.problems and validate", function()
  it("finds every problem of a state, with paths from the file's top", function()
    local s = {
      policies = {
        { name = "a", decision = "allow", include = { r.everyone() } },
        { name = "b", decision = "allow", include = { { email = { email = 5 } } }, precedence = 1 },
        { name = "a", decision = "deny", include = { r.everyone() } },
      },
      apps = {
        [APP1] = { "a", "nope", "a" },
        [APP2] = { legacy = { { name = "l", decision = "allow", include = { { geo = {} } } } } },
        ["not-an-id"] = { "b" },
      },
      polices = {},
    }
    local problems, warnings, shape = state.problems(s)
    assert.are.equal("state", shape)
    assert.are.same({}, warnings)
    local lines = {}
    for i, p in ipairs(problems) do lines[i] = p.path .. ": " .. p.message end
    local want = {
      "polices: unknown field (a state has policies and apps)",
      'policies[2].precedence: not accepted in a "reusable" policy',
      "policies[2].include[1].email.email: expected a string, got number",
      'policies[3].name: "a" is used twice (also policies[1].name); names must be unique in a state',
      'apps["0b1c2d3e-0000-4000-8000-000000000001"].legacy[1].include[1].geo.country_code: required field is missing',
      'apps["f174e90a-fafe-4643-bbbc-4a0ed4fc8415"][2]: "nope" is not a policy of this state (nor a policy id)',
      'apps["f174e90a-fafe-4643-bbbc-4a0ed4fc8415"][3]: "a" is listed twice (also apps["f174e90a-fafe-4643-bbbc-4a0ed4fc8415"][1])',
      'apps["not-an-id"]: an application id is a UUID (or 32 hex characters)',
    }
    assert.are.equal(#want, #lines, table.concat(lines, "\n"))
    for i, w in ipairs(want) do
      assert.are.equal(w, lines[i]:sub(1, #w), table.concat(lines, "\n"))
    end
  end)

  it("prefixes paths of a list with [i] and leaves a policy's as they are", function()
    local problems, _, shape = state.problems({ r.everyone(), { name = "x", decision = "allow", include = { { email = { email = 1 } } } } })
    assert.are.equal("list", shape)
    assert.are.equal("[1].name", problems[1].path)
    assert.are.equal("[2].include[1].email.email", problems[#problems].path)
    problems, _, shape = state.problems({ name = "x", decision = "allow", include = { { email = { email = 1 } } } })
    assert.are.equal("policy", shape)
    assert.are.same({ { path = "include[1].email.email", message = "expected a string, got number" } }, problems)
  end)

  it("validates kinds: a state's policies are reusable, legacy ones app (or zone)", function()
    local problems = state.problems({ policies = { { name = "a", decision = "allow", include = { r.everyone() }, precedence = 2 } } })
    assert.are.equal("policies[1].precedence", problems[1].path)
    problems = state.problems({ apps = { [APP2] = { legacy = { { name = "l", decision = "allow", include = { r.everyone() },
      session_duration = "1h" } } } } }, { legacy_kind = "zone" })
    assert.are.equal('apps["' .. APP2 .. '"].legacy[1].session_duration', problems[1].path)
    problems = state.problems({ name = "z", decision = "allow", include = { r.everyone() }, session_duration = "1h" }, { kind = "zone" })
    assert.are.equal("session_duration", problems[1].path)
  end)

  it("takes a legacy app's kind (as export writes it) and round-trips it", function()
    local s = { apps = { [APP2] = { kind = "infrastructure", legacy = {
      { name = "ssh", decision = "allow", include = { r.email("a@example.com") } } } } } }
    assert.are.same({ true }, { state.validate(s) })
    s.apps[APP2].legacy[1].decision = "deny"
    local problems = state.problems(s)
    assert.are.equal('apps["' .. APP2 .. '"].legacy[1].decision', problems[1].path)
    s.apps[APP2].legacy[1].decision = "allow"
    for _, fmt in ipairs{ "lua", "json" } do
      local text = assert(state.dump(s, fmt))
      assert.are.same(s, assert(state.load(write("kind." .. fmt, text))), text)
    end
    problems = state.problems{ apps = { [APP2] = { kind = "group", legacy = {} } } }
    assert.are.same({ { path = 'apps["' .. APP2 .. '"].kind', message = 'expected "app", "zone" or "infrastructure", got "group"' } },
      problems)
  end)

  it("returns true for a valid state, else an invalid error listing every problem", function()
    assert.are.same({ true }, { state.validate(full_state()) })
    local ok, err = state.validate({ policies = { { name = "a" }, { name = "a" } } })
    assert.is_nil(ok)
    assert.are.equal("invalid", err.kind)
    assert.is_true(#err.problems >= 3)
    assert.matches("^invalid state: policies%[1%]%.decision: .* %(and %d+ more problems%)$", tostring(err))
  end)
end)
