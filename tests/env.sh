# Sourced by tests/run.sh and tests/lua.sh (not run on its own): the
# environment every spec and every child interpreter a spec starts needs.
# Expects $top (the repository root) and $O (the build directory holding
# cfaccess/core.so, relative to $top; "." by default).
O=${O:-.}
export LUA_PATH_5_4="$top/lua/?.lua;$top/lua/?/init.lua;$top/tests/?.lua;;"
if [ "$O" = "." ]; then
  export LUA_CPATH_5_4="$top/?.so;;"
else
  export LUA_CPATH_5_4="$top/$O/?.so;;"
fi
export CFACCESS_TEST_ROOT="$top"
