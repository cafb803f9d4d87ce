#!/bin/sh
# `make luarocks-check`: build and install cfaccess with LuaRocks from the
# rockspec into a throwaway tree, exactly as README.md's LuaRocks section
# says (`--deps-mode=none`: the dependencies come from apt), then
#   - check that `luarocks make` left its working directory as it found it
#     (no cfaccess/core.so overwritten, no src/*.o, no build/ left behind);
#   - run the installed command from the tree: `cfaccess --version` and
#     `cfaccess validate` on a valid and an invalid file (exit codes 0, 1);
#   - require the module from that tree only and encode a policy.
# `luarocks make` runs on a copy of the checkout, so that a parallel build
# in the checkout is never disturbed while the check runs.
# LUAROCKS_CHECK_TREE=DIR installs into DIR (new or empty) and keeps it, for
# cli_spec to run every command from the installed tree.
set -u
LUA=${LUA:-lua5.4}
top=$(cd "$(dirname "$0")/.." && pwd)

fail() { echo "luarocks-check: FAILED: $*" >&2; exit 1; }

command -v luarocks >/dev/null 2>&1 || fail "luarocks is not installed (make deps)"
command -v "$LUA" >/dev/null 2>&1 || fail "$LUA is not installed (make deps)"

# libcurl's headers live in the multiarch include directory on Debian
# (curl/curl.h is /usr/include/<triplet>/curl/curl.h), where LuaRocks does
# not look by itself: hence CURL_INCDIR.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
[ -n "$multiarch" ] || fail "cannot tell the multiarch triplet (dpkg-architecture / gcc -print-multiarch)"
curl_incdir=/usr/include/$multiarch
[ -f "$curl_incdir/curl/curl.h" ] || [ -f /usr/include/curl/curl.h ] ||
  fail "curl/curl.h not found (install libcurl4-openssl-dev)"

set -- "$top"/cfaccess-*.rockspec
[ $# -eq 1 ] && [ -f "$1" ] || fail "expected exactly one cfaccess-*.rockspec in $top"
rockspec=$(basename "$1")

work=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$work"' EXIT
tree=${LUAROCKS_CHECK_TREE:-$work/tree}
mkdir -p "$work/src" "$tree" || fail "mkdir"
cp -R "$top/src" "$top/lua" "$top/bin" "$top/Makefile" "$top/$rockspec" "$work/src/" || fail "copying the sources"
[ -f "$top/README.md" ] && cp "$top/README.md" "$work/src/"
# the checkout's own build too, if there is one: luarocks make must not touch it
[ -f "$top/cfaccess/core.so" ] && { mkdir -p "$work/src/cfaccess" && cp "$top/cfaccess/core.so" "$work/src/cfaccess/"; }
# what the working directory holds before: every file with its checksum
listing() { (cd "$work/src" && find . -type f | LC_ALL=C sort | xargs sha256sum); }
listing >"$work/before"

echo "luarocks-check: luarocks make $rockspec into a temporary tree"
if ! (cd "$work/src" && luarocks --lua-version=5.4 make --deps-mode=none \
      --tree="$tree" "$rockspec" CURL_INCDIR="$curl_incdir") >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  fail "luarocks make did not succeed"
fi
listing >"$work/after"
if ! cmp -s "$work/before" "$work/after"; then
  diff "$work/before" "$work/after" >&2
  fail "luarocks make changed its working directory (files above)"
fi
[ -d "$work/src/build" ] && fail "luarocks make left build/ behind"
echo "luarocks-check: the working directory is as it was (no core.so overwritten, no objects left)"

# The command, as LuaRocks installed it (its wrapper, then bin/cfaccess
# finding the tree's modules), from a directory outside the checkout.
cmd=$tree/bin/cfaccess
[ -x "$cmd" ] || fail "$cmd was not installed (build.install.bin)"
printf '%s\n' '{"name":"ok","decision":"allow","include":[{"email":{"email":"a@example.com"}}]}' >"$work/good.json"
printf '%s\n' '{"name":"bad","decision":"allow","include":[{"email":{"email":5}}]}' >"$work/bad.json"
version=$(cd "$work" && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_PATH -u LUA_CPATH "$cmd" --version) ||
  fail "cfaccess --version failed"
case $version in "cfaccess "[0-9]*.[0-9]*.[0-9]*) ;; *) fail "cfaccess --version printed: $version" ;; esac
echo "luarocks-check: $cmd --version: $version"
out=$(cd "$work" && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_PATH -u LUA_CPATH "$cmd" validate good.json) ||
  fail "cfaccess validate good.json failed: $out"
[ "$out" = "good.json: valid" ] || fail "cfaccess validate good.json printed: $out"
out=$(cd "$work" && env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_PATH -u LUA_CPATH "$cmd" validate bad.json)
rc=$?
[ "$rc" = 1 ] || fail "cfaccess validate bad.json exited $rc (expected 1)"
[ "$out" = "bad.json: include[1].email.email: expected a string, got number" ] ||
  fail "cfaccess validate bad.json printed: $out"
echo "luarocks-check: $cmd validate: exit 0 for a valid file, 1 and the problem for an invalid one"

# lua-cjson comes from the system (a Debian package): find its directory
# and allow only that one besides the tree.
cjson=$("$LUA" -e 'io.write(package.searchpath("cjson", package.cpath) or "")')
[ -n "$cjson" ] || fail "lua-cjson is not installed (make deps)"
cjsondir=$(dirname "$cjson")

LUA_PATH_5_4="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua"
LUA_CPATH_5_4="$tree/lib/lua/5.4/?.so;$cjsondir/?.so"
export LUA_PATH_5_4 LUA_CPATH_5_4 CHECK_TREE="$tree"

# Run from the tree so that nothing in the repository can be picked up.
(cd "$tree" && "$LUA" -e '
local tree = os.getenv("CHECK_TREE")
local core_path = package.searchpath("cfaccess.core", package.cpath)
local lua_path = package.searchpath("cfaccess", package.path)
assert(core_path and core_path:sub(1, #tree) == tree, "cfaccess.core not in the tree: " .. tostring(core_path))
assert(lua_path and lua_path:sub(1, #tree) == tree, "cfaccess not in the tree: " .. tostring(lua_path))
local cfaccess = require("cfaccess")
local r = cfaccess.rules
local json, err = cfaccess.encode{ name = "rock", decision = "allow", include = { r.email("a@example.com") } }
assert(json, tostring(err))
assert(json:find("\"include\":[{\"email\":{\"email\":\"a@example.com\"}}]", 1, true), json)
assert(type(cfaccess.validate) == "function" and type(cfaccess._VERSION) == "string")
io.write("luarocks-check: ", cfaccess._VERSION, " from ", core_path, "\n")
io.write("luarocks-check: encoded ", json, "\n")
') || fail "the installed module did not load or encode"
echo "luarocks-check: OK"
