-- Run by tests/embed/host (make embed): the core must come from the static
-- library registered with luaL_requiref, never from a core.so on cpath.
local preloaded = package.loaded["cfaccess.core"]
assert(type(preloaded) == "table", "luaL_requiref did not register cfaccess.core")
package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"   -- system modules only
assert(package.searchpath("cfaccess.core", package.cpath) == nil)
local cfaccess = require("cfaccess")                         -- lua/cfaccess/init.lua
local core = require("cfaccess.core")
assert(core == preloaded, "require returned another copy of the core")
assert(cfaccess.encode == core.encode)
assert(core._VERSION:match("^cfaccess %d+%.%d+%.%d+$"), core._VERSION)

local policy = {
  name = "embedded", decision = "allow", precedence = 1,
  include = { { email = { email = "alice@example.com" } } },
  exclude = { { ip = { ip = "10.0.0.0/8" } } },
}
local json = assert(core.encode(policy))
assert(json:find('"name":"embedded"', 1, true), json)
assert(core.validate(policy) == true)
local ok, err = core.validate({ name = 1 })
assert(ok == nil and err.kind == "invalid", "an invalid policy passed")
-- a client can be created and closed from the host (no network here)
if core.client then
  local c = assert(core.client{ account_id = "023e105f4ecef8ad9ca31a8372d0c353",
    api_token = "embed-T0KEN-for-hosts", base_url = "http://127.0.0.1:9/client/v4" })
  c:close()
  c:close()                                                   -- idempotent
end
print("embed: host ok (" .. core._VERSION .. ", static core)")
