#!/bin/sh
# make embed: run the static host on embed_test.lua, then the threaded host
# (4 pthreads, 4 lua_States) under ThreadSanitizer, against the mock API when
# it can be started. Exit status 0 only when both succeed with no TSan report.
set -u
host=${1:-build/embed/host}
threads=${2:-build/tsan/threads}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
export LUA_PATH_5_4="$top/lua/?.lua;$top/lua/?/init.lua;;"
export LUA_CPATH_5_4="/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"
"$host" tests/embed/embed_test.lua || { echo "embed: host FAILED"; exit 1; }

mockpid=""
url=""
out=$(mktemp)
cleanup() { [ -n "$mockpid" ] && kill "$mockpid" 2>/dev/null; rm -f "$out"; }
trap cleanup EXIT
if [ -f tests/mock/cfmock.py ]; then
  python3 tests/mock/cfmock.py --port 0 --token embed-T0KEN-for-hosts >"$out" 2>/dev/null &
  mockpid=$!
  i=0
  while [ $i -lt 100 ] && ! grep -q "listening" "$out"; do sleep 0.1; i=$((i + 1)); done
  port=$(sed -n 's/^cfmock listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
  if [ -n "$port" ]; then
    url="http://127.0.0.1:$port"
    for t in 1 2 3 4; do
      app=$(printf '%08x-0000-4000-8000-%012x' "$t" "$t")
      curl -s -m 5 -o /dev/null -X POST -H 'Content-Type: application/json' \
        -d "{\"scope\":\"accounts\",\"scope_id\":\"023e105f4ecef8ad9ca31a8372d0c353\",\"app_id\":\"$app\",\"type\":\"self_hosted\"}" \
        "$url/__mock/apps" || { echo "embed: cannot register app $app"; exit 1; }
    done
  else
    echo "embed: the mock did not start"; exit 1
  fi
fi
TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
  "$threads" "$url" || { echo "embed: threads FAILED (exit $?)"; exit 1; }
echo "embed: ok"
