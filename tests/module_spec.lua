-- The `cfaccess` module as a whole: what it exports, that it leaves the
-- global table and the standard streams alone, that its version is the C
-- header's, and that the rockspec builds every source file and module.
local ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."
local LUA = os.getenv("LUA") or "lua5.4"

local function readfile(path) return assert(require("mockctl").read_file(path)) end

-- File names in a directory matching a Lua pattern, sorted.
local function ls(dir, pattern)
  local p = assert(io.popen("ls -1 '" .. dir .. "'"))
  local out = {}
  for name in p:lines() do
    if name:match(pattern) then out[#out + 1] = name end
  end
  p:close()
  table.sort(out)
  return out
end

local function shquote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function globals()
  local keys = {}
  for k in pairs(_G) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

describe("cfaccess module", function()
  it("re-exports every core function and adds rules", function()
    local core = require("cfaccess.core")
    local cfaccess = require("cfaccess")
    local n = 0
    for k, v in pairs(core) do
      assert.are.equal(v, cfaccess[k], "cfaccess." .. tostring(k))
      n = n + 1
    end
    assert.is_true(n >= 3)
    assert.is_function(cfaccess.encode)
    assert.is_function(cfaccess.validate)
    assert.is_string(cfaccess._VERSION)
    assert.are.equal(require("cfaccess.rules"), cfaccess.rules)
    assert.is_function(cfaccess.rules.email)
  end)

  it("exports the client constructor", function()
    local cfaccess = require("cfaccess")
    assert.is_function(cfaccess.client, "cfaccess.client (src/client.c) is missing")
  end)

  it("_VERSION is \"cfaccess \" .. CFACCESS_VERSION from src/cfaccess.h", function()
    local header = readfile(ROOT .. "/src/cfaccess.h")
    local v = header:match('#define%s+CFACCESS_VERSION%s+"([^"]+)"')
    assert.is_string(v, "CFACCESS_VERSION not found in src/cfaccess.h")
    assert.matches("^%d+%.%d+%.%d+$", v)
    assert.are.equal("cfaccess " .. v, require("cfaccess")._VERSION)
    assert.are.equal("cfaccess " .. v, require("cfaccess.core")._VERSION)
  end)

  it("requiring and using it writes nothing to _G", function()
    -- Drop the Lua parts so they really load again (the C core cannot be
    -- unloaded, but its luaopen runs again through package.loadlib).
    local saved = {}
    for _, name in ipairs({ "cfaccess", "cfaccess.rules", "cfaccess.core" }) do
      saved[name] = package.loaded[name]
      package.loaded[name] = nil
    end
    local before = globals()
    local cfaccess = require("cfaccess")
    local r = cfaccess.rules
    local policy = { name = "x", decision = "allow",
      include = { r.email("a@example.com"), r.everyone() },
      exclude = r.countries({ "US" }) }
    cfaccess.encode(policy)
    cfaccess.validate(policy, { kind = "reusable" })
    local _, err = cfaccess.encode({ name = 1 })
    local _ = tostring(err)
    if cfaccess.client then
      pcall(cfaccess.client, { account_id = "not-hex" })
    end
    local after = globals()
    for name, mod in pairs(saved) do package.loaded[name] = mod end
    assert.are.same(before, after)
  end)

  it("prints nothing and sets no global in a fresh interpreter", function()
    local script = [[
local before = {}
for k in pairs(_G) do before[k] = true end
local cfaccess = require("cfaccess")
local r = cfaccess.rules
local p = { name = "x", decision = "allow", include = { r.email("a@example.com") } }
assert(cfaccess.encode(p))
assert(cfaccess.validate(p))
local _, err = cfaccess.encode({ name = 1, include = { { geo = 3 } } })
assert(err, "a broken policy must fail")
local _ = tostring(err)
if cfaccess.client then
  local c, cerr = cfaccess.client({ account_id = "../x", api_token = "secret-token-xyz" })
  if c then c:close() end
  local _ = cerr and tostring(cerr)
end
collectgarbage()
collectgarbage()
local added = 0
for k in pairs(_G) do if not before[k] then added = added + 1 end end
os.exit(added == 0 and 0 or 3)
]]
    local out, errf = os.tmpname(), os.tmpname()
    local cmd = ("%s -e %s >%s 2>%s"):format(LUA, shquote(script),
      shquote(out), shquote(errf))
    local ok, how, code = os.execute(cmd)
    local stdout, stderr = readfile(out), readfile(errf)
    os.remove(out)
    os.remove(errf)
    assert.are.equal("", stderr)
    assert.are.equal("", stdout)
    assert.are.same({ true, "exit", 0 }, { ok, how, code })
  end)

  describe("rockspec", function()
    local spec
    setup(function()
      local files = ls(ROOT, "^cfaccess%-.*%.rockspec$")
      assert.are.equal(1, #files, "expected exactly one cfaccess-*.rockspec")
      local env = {}
      local chunk = assert(load(readfile(ROOT .. "/" .. files[1]), "=rockspec", "t", env))
      chunk()
      spec = env
    end)

    it("names the package, its version and Lua 5.4", function()
      assert.are.equal("cfaccess", spec.package)
      assert.is_string(spec.version)
      -- scm-1 (the development rockspec) or CFACCESS_VERSION-<revision>
      local v = readfile(ROOT .. "/src/cfaccess.h"):match('#define%s+CFACCESS_VERSION%s+"([^"]+)"')
      if spec.version ~= "scm-1" then
        assert.matches("^" .. v:gsub("%.", "%%.") .. "%-%d+$", spec.version)
      end
      local lua_dep
      for _, d in ipairs(spec.dependencies) do
        if d:match("^lua%s") then lua_dep = d end
      end
      assert.matches("5%.4", lua_dep)
    end)

    -- The rockspec builds and installs through the Makefile (build.type
    -- "make"), whose wildcards are the one list of src/*.c and
    -- lua/cfaccess/ files; tests/cli_spec.lua checks that `make install`
    -- installs every one of them and the command.
    it("builds through the Makefile and installs the command", function()
      assert.are.equal("make", spec.build.type)
      assert.are.equal("luarocks-install", spec.build.install_target)
      assert.are.equal("bin/cfaccess", spec.build.install.bin.cfaccess)
      local mk = readfile(ROOT .. "/Makefile")
      assert.is_truthy(mk:find("SRCS%s*:=%s*%$%(sort %$%(wildcard src/%*%.c%)%)"), "Makefile: SRCS from src/*.c")
      assert.is_truthy(mk:find("\nluarocks%-install:"), "Makefile: no luarocks-install target")
    end)
  end)
end)

-- issue 9: without a usable lua-cjson, `require "cfaccess.core"` fails at
-- once with a message naming it (it used to load and fail every response
-- later as `decode`). Each case runs in a fresh interpreter whose cjson is
-- hidden or replaced through package.cpath / package.preload.
describe("cfaccess.core without a usable lua-cjson", function()
  -- Runs `setup` then requires the core in a fresh lua5.4; returns what
  -- the script printed: "ok" or "error: <message>".
  local function require_core(setup)
    local script = [[
local core_path = assert(package.searchpath("cfaccess.core", package.cpath))
local core_dir = core_path:gsub("cfaccess/core%.so$", "")
]] .. setup .. [[

local ok, err = pcall(require, "cfaccess.core")
if ok then
  io.write(type(err) == "table" and type(err.client) == "function" and "ok" or "not a module")
else
  io.write("error: ", tostring(err))
end
]]
    local out = os.tmpname()
    local cmd = ("%s -e %s >%s 2>&1"):format(LUA, shquote(script), shquote(out))
    os.execute(cmd)
    local text = readfile(out)
    os.remove(out)
    return text
  end

  it("loads when cjson is there (the control case)", function()
    assert.are.equal("ok", require_core(""))
  end)

  it("fails at require when cjson cannot be found", function()
    local out = require_core([[package.cpath = core_dir .. "?.so"]])
    assert.matches("^error: cfaccess.core needs lua%-cjson", out)
    assert.matches('require "cjson" failed', out, 1, true)
  end)

  it("fails at require when cjson has no new()", function()
    local out = require_core([[package.preload.cjson = function()
  return { decode = function() return {} end, encode = function() return "" end }
end]])
    assert.matches("^error: cfaccess.core needs lua%-cjson", out)
    assert.truthy(out:find("cjson.new is missing", 1, true), out)
  end)

  it("fails at require when cjson.new() raises", function()
    local out = require_core([[package.preload.cjson = function()
  return { new = function() error("no instance today", 0) end }
end]])
    assert.matches("^error: cfaccess.core needs lua%-cjson", out)
    assert.truthy(out:find("cjson.new() failed: no instance today", 1, true), out)
  end)

  it("fails at require when cjson.new() gives no decoder", function()
    local out = require_core([[package.preload.cjson = function()
  return { new = function() return { encode = function() return "" end } end }
end]])
    assert.matches("^error: cfaccess.core needs lua%-cjson", out)
    assert.truthy(out:find("no decode function", 1, true), out)
  end)
end)
