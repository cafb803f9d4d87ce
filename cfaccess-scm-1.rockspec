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
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1.0",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["cfaccess.core"] = {
      sources = { "src/argcheck.c", "src/batch.c", "src/buf.c", "src/client.c", "src/core.c", "src/dedupe.c", "src/engine.c", "src/error.c", "src/formats.c", "src/match.c", "src/methods.c", "src/pace.c", "src/pages.c", "src/resources.c", "src/response.c", "src/schema.c", "src/transport.c", "src/validate.c", "src/waits.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    ["cfaccess"] = "lua/cfaccess/init.lua",
    ["cfaccess.rules"] = "lua/cfaccess/rules.lua",
    ["cfaccess.plan"] = "lua/cfaccess/plan.lua",
    ["cfaccess.apply"] = "lua/cfaccess/apply.lua",
  },
}
