#!/bin/sh
# Run every tests/*_spec.lua with busted against the module built in $O,
# print the TAP stream, then one summary line "N passed, N failed".
# CFACCESS_VALGRIND=1 runs the interpreter under valgrind memcheck.
set -u
O=${O:-.}
LUA=${LUA:-lua5.4}
BUSTED=${BUSTED:-busted}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
bustedbin=$(command -v "$BUSTED") || { echo "run.sh: busted not found (make deps)" >&2; exit 1; }
. "$top/tests/env.sh"
out=$(mktemp)
trap 'rm -f "$out" "$out.rc"' EXIT
[ $# -gt 0 ] || set -- tests
# --ignore-lua: this is already the interpreter .busted's `lua` names.
set -- "$bustedbin" --ignore-lua --output=TAP --lpath= --cpath= "$@"
if [ "${CFACCESS_VALGRIND:-}" = 1 ]; then
  set -- valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --suppressions="$top/tests/valgrind.supp" "$LUA" "$@"
else
  set -- "$LUA" "$@"
fi
{ "$@" 2>&1; echo $? >"$out.rc"; } | tee "$out"
rc=$(cat "$out.rc")
passed=$(grep -c '^ok ' "$out")
failed=$(grep -c '^not ok ' "$out")
echo "$passed passed, $failed failed"
[ "$rc" = 0 ] || { echo "run.sh: the test run exited with status $rc" >&2; exit 1; }
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] || exit 1
exit 0
