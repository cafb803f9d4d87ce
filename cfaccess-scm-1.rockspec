rockspec_format = "3.0"
package = "cfaccess"
version = "scm-1"
source = {
  url = "git+https://example.invalid/cfaccess.git",
}
description = {
  summary = "Validated Cloudflare Access policy payloads and a careful API client for Lua 5.4",
  detailed = [[
cfaccess turns Lua tables into validated, canonical Cloudflare Access policy
JSON (every rule type, every field, errors with exact paths) and manages
policies over HTTPS with libcurl: retries, pacing, pagination and a create
that is never duplicated.
]],
  license = "MIT",
}
-- On Debian 12 these come from apt (lua-cjson, lua-argparse, lua-term),
-- which LuaRocks does not see: install with --deps-mode=none there (see
-- README.md, "LuaRocks"). Online, LuaRocks fetches them from luarocks.org.
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1.0",
  "argparse >= 0.7",
  "lua-term >= 0.7",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
-- Built by the Makefile (one list of sources: src/*.c and lua/cfaccess/,
-- so nothing here goes stale when files are added), in its own directory
-- build/luarocks, which `make luarocks-install` removes again after
-- installing: `luarocks make` in a checkout neither overwrites the
-- checkout's cfaccess/core.so nor leaves object files behind.
build = {
  type = "make",
  build_target = "all",
  build_variables = {
    O = "build/luarocks",
    CFLAGS = "$(CFLAGS)",
    LUA_CFLAGS = "-I$(LUA_INCDIR)",
    CURL_CFLAGS = "-I$(CURL_INCDIR)",
    CURL_LIBS = "-L$(CURL_LIBDIR) -lcurl",
    LUA = "$(LUA)",
  },
  install_target = "luarocks-install",
  install_variables = {
    O = "build/luarocks",
    PREFIX = "$(PREFIX)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    BINDIR = "$(BINDIR)",
  },
  -- the command: LuaRocks installs it with a wrapper that sets the paths
  install = {
    bin = { cfaccess = "bin/cfaccess" },
  },
}
