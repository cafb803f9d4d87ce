-- `busted` run by itself from the repository root works as `make test`
-- does: .busted re-runs it under Lua 5.4 (tests/lua.sh) with the module
-- paths tests/run.sh sets, so a spec and the interpreters it starts find
-- lua/, tests/ and the built core. Checked by running a small spec file
-- that way, with none of run.sh's environment.
local q = require("mockctl").shell_quote

local ROOT = os.getenv("CFACCESS_TEST_ROOT") or "."

describe("busted alone from the repository root", function()
  it("runs specs under Lua 5.4 with the suite's module paths", function()
    local so = io.open(ROOT .. "/cfaccess/core.so", "rb")
    if not so then
      pending("no " .. ROOT .. "/cfaccess/core.so: plain busted needs a `make` first")
      return
    end
    so:close()
    local spec = os.tmpname() .. "_spec.lua"
    local f = assert(io.open(spec, "w"))
    f:write([[
describe("inner", function()
  it("is Lua 5.4 with the core, the Lua modules and the test helpers", function()
    assert.equal("Lua 5.4", _VERSION)
    assert.is_function(require("cfaccess.core").encode)
    assert.is_table(require("cfaccess").rules)
    assert.is_string(require("testutil").ACCOUNT)
  end)
  it("gives a child interpreter the same paths", function()
    local p = assert(io.popen((os.getenv("LUA") or "lua5.4") ..
      [=[ -e 'require("cfaccess"); require("mockctl"); io.write("child ok")' 2>&1]=]))
    local out = p:read("a")
    p:close()
    assert.equal("child ok", out)
  end)
end)
]])
    f:close()
    -- none of run.sh's variables, no sanitizer preload (this checks the
    -- plain build in the root)
    local cmd = "cd " .. q(ROOT) .. " && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u CFACCESS_TEST_ROOT" ..
      " -u LD_PRELOAD -u O -u LUA_PATH -u LUA_CPATH busted -o TAP " .. q(spec) .. " 2>&1; echo \"rc=$?\""
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    os.remove(spec)
    os.remove(spec:sub(1, -10))
    assert.truthy(out:find("rc=0\n", 1, true), out)
    local oks, fails = 0, 0
    for line in out:gmatch("[^\n]+") do
      if line:find("^ok ") then oks = oks + 1 end
      if line:find("^not ok ") then fails = fails + 1 end
    end
    assert.equal(0, fails, out)
    assert.equal(2, oks, out)
  end)
end)
