#!/bin/sh
# The interpreter `busted` runs the specs under when started by itself from
# the repository root: .busted says `lua = "sh tests/lua.sh"`, so busted
# (installed for Lua 5.1) re-runs itself here under $LUA (default lua5.4)
# with the same module paths tests/run.sh sets, and the specs' child
# interpreters inherit them. `make test` / tests/run.sh do not go through
# this file (they start busted under $LUA themselves, with --ignore-lua).
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/env.sh"
exec "${LUA:-lua5.4}" "$@"
