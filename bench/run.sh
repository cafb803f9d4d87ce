#!/bin/sh
# cfaccess client benchmark (make bench). Starts nginx (Debian nginx-light)
# on 127.0.0.1 with a canned Cloudflare API (bench/nginx.conf.in), pinned to
# core 0; then, pinned to core 1, alternates rounds of
#   bench/floor.c   plain C: one reused libcurl handle POSTing the same body
#   bench/client.lua cfaccess client:create_app_policy (rate_limit = false)
# and prints min/median requests/s of each, the ratio client/floor (target
# >= 0.85) and CPU microseconds per request. Then runs bench/encode.lua if
# present. Knobs: ROUNDS (5), N (2000 requests per round).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
LUA=${LUA:-lua5.4}
CC=${CC:-cc}
ROUNDS=${ROUNDS:-5}
N=${N:-2000}
export LUA_PATH_5_4="$top/lua/?.lua;$top/lua/?/init.lua;;"
export LUA_CPATH_5_4="$top/?.so;;"

command -v nginx >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
command -v nginx >/dev/null 2>&1 || { echo "bench: nginx not found (make deps)" >&2; exit 1; }
pin0="" pin1=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  pin0="taskset -c 0" pin1="taskset -c 1"
fi

dir=$(mktemp -d)
stop_nginx() {
  if [ -s "$dir/nginx.pid" ]; then
    kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    i=0
    while [ -s "$dir/nginx.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  rm -rf "$dir"
}
trap stop_nginx EXIT
trap 'exit 1' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" bench/nginx.conf.in >"$dir/nginx.conf"
$pin0 nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -q
i=0
until [ -s "$dir/nginx.pid" ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$dir/nginx.pid" ] || { echo "bench: nginx did not start" >&2; cat "$dir/error.log" >&2; exit 1; }

$CC -O2 -o "$dir/floor" bench/floor.c $(pkg-config --cflags --libs libcurl 2>/dev/null || echo -lcurl)

acct=023e105f4ecef8ad9ca31a8372d0c353
app=f174e90a-fafe-4643-bbbc-4a0ed4fc8415
base="http://127.0.0.1:$port/client/v4"
url="$base/accounts/$acct/access/apps/$app/policies"
"$LUA" bench/client.lua "$base" 1 "$dir/body.json"   # the same canonical body

echo "bench: nginx on 127.0.0.1:$port (core 0), clients on core 1; $ROUNDS rounds of $N creates"
"$dir/floor" "$url" "$dir/body.json" 200 >/dev/null            # warm up
r=1
while [ $r -le "$ROUNDS" ]; do
  $pin1 "$dir/floor" "$url" "$dir/body.json" "$N" | tee -a "$dir/floor.txt"
  $pin1 "$LUA" bench/client.lua "$base" "$N" | tee -a "$dir/client.txt"
  r=$((r + 1))
done

# field 6 = req/s, field 8 = CPU us/req; print "min median max" of a column
stats() { awk -v f="$2" '{ print $f }' "$1" | sort -n | awk '
  { v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR] }'; }
set -- $(stats "$dir/floor.txt" 6); f_min=$1 f_med=$2 f_max=$3
set -- $(stats "$dir/client.txt" 6); c_min=$1 c_med=$2 c_max=$3
set -- $(stats "$dir/floor.txt" 8); fu_min=$1 fu_med=$2
set -- $(stats "$dir/client.txt" 8); cu_min=$1 cu_med=$2
echo "floor  (C + libcurl):        min $f_min req/s, median $f_med req/s, best $f_max req/s; CPU median $fu_med us/req (min $fu_min)"
echo "client (cfaccess, Lua 5.4):  min $c_min req/s, median $c_med req/s, best $c_max req/s; CPU median $cu_med us/req (min $cu_min)"
awk -v c="$c_med" -v f="$f_med" 'BEGIN { r = c / f; printf "ratio client/floor (median req/s): %.3f (target >= 0.85): %s\n", r, (r >= 0.85) ? "ok" : "BELOW TARGET" }'
# The cores are shared with other work, so wall-clock rounds are noisy: the
# best rounds and the CPU cost per request are the steadier figures.
awk -v c="$c_max" -v f="$f_max" 'BEGIN { printf "ratio client/floor (best req/s):   %.3f\n", c / f }'
awk -v c="$cu_med" -v f="$fu_med" 'BEGIN { printf "client CPU overhead over the floor: %+.1f us/req (validation + canonical JSON + decoding the response with lua-cjson)\n", c - f }'

if [ -f bench/encode.lua ]; then
  echo "bench: lua5.4 bench/encode.lua"
  "$LUA" bench/encode.lua
fi
