#!/bin/sh
# cfaccess benchmark (make bench): one table, every row measured side by
# side in the same run, ROUNDS rounds each (min / median / max).
#
# Starts nginx (Debian nginx-light) on 127.0.0.1 with a canned Cloudflare
# API (bench/nginx.conf.in: 201 for create, 200 for list, 202 for delete),
# pinned to core 0, and runs every client pinned to core 1:
#   encode     cfaccess validate+encode vs bare cjson.encode vs a plain-Lua
#              validator + cjson.encode (bench/plain_validate.lua)
#   seq        client:create_app_policy in a loop vs bench/floor.c (plain C,
#              one reused libcurl handle, the same body)
#   batch      client:batch at concurrency 8 vs floor.c driving curl multi
#              with 8 in flight
#   others     the curl command spawned per request; LuaSocket socket.http
#   rss        VmRSS growth of one process over a batch of 100,000 ops
# `bench/run.sh instr` (make bench-instr) prints instead the userland
# instructions per request of seq and batch against the two C floors.
# Knobs: ROUNDS (5), N (3000 sequential requests), NB (10000 batched ops),
# NCLI (100 curl spawns), NSOCK (500), NRSS (100000), CONC (8).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
LUA=${LUA:-lua5.4}
CC=${CC:-cc}
ROUNDS=${ROUNDS:-5}
N=${N:-3000}
NB=${NB:-10000}
NCLI=${NCLI:-100}
NSOCK=${NSOCK:-500}
NRSS=${NRSS:-100000}
CONC=${CONC:-8}
export LUA_PATH_5_4="$top/lua/?.lua;$top/lua/?/init.lua;$top/bench/?.lua;;"
export LUA_CPATH_5_4="$top/?.so;;"

command -v nginx >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
command -v nginx >/dev/null 2>&1 || { echo "bench: nginx not found (make deps)" >&2; exit 1; }
pin0="" pin1="" pinned="not pinned (fewer than 2 cores or no taskset)"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  pin0="taskset -c 0" pin1="taskset -c 1" pinned="nginx on core 0, clients on core 1"
fi

dir=$(mktemp -d)
stop_nginx() {
  if [ -s "$dir/nginx.pid" ]; then
    pid=$(cat "$dir/nginx.pid")
    kill "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
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

# shellcheck disable=SC2046
$CC -O2 -o "$dir/floor" bench/floor.c $(pkg-config --cflags --libs libcurl 2>/dev/null || echo -lcurl)

app=f174e90a-fafe-4643-bbbc-4a0ed4fc8415
base="http://127.0.0.1:$port/client/v4"
url="$base/accounts/023e105f4ecef8ad9ca31a8372d0c353/access/apps/$app/policies"
"$LUA" bench/client.lua body "$dir/body.json"   # floor.c and curl send the same bytes

if [ "${1:-}" = instr ]; then
  # Userland instructions per request under valgrind (the same count on
  # every run, unlike req/s on a shared machine): each program runs twice,
  # with 200 and 1200 requests, and the difference / 1000 leaves out start-up.
  command -v valgrind >/dev/null 2>&1 || { echo "bench: valgrind not found (make deps)" >&2; exit 1; }
  irefs() {   # irefs N CMD...: the instruction count of CMD with @N@ -> N
    n=$1; shift
    for a in "$@"; do shift; [ "$a" = @N@ ] && a=$n; set -- "$@" "$a"; done
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
      awk '/refs:/ { gsub(",", "", $4); print $4 }'
  }
  per_op() {   # per_op LABEL CMD...
    label=$1; shift
    a=$(irefs 200 "$@") b=$(irefs 1200 "$@")
    echo "$label $(( (b - a) / 1000 ))"
  }
  echo "bench: userland instructions per request (valgrind); libcurl $(curl-config --version 2>/dev/null | cut -d' ' -f2)"
  {
    per_op floor "$dir/floor" "$url" "$dir/body.json" @N@
    per_op seq "$LUA" bench/client.lua seq "$base" @N@
    per_op floor_multi "$dir/floor" "$url" "$dir/body.json" @N@ "$CONC"
    per_op batch "$LUA" bench/client.lua batch "$base" @N@ "$CONC"
  } | awk -v conc="$CONC" '{ v[$1] = $2 }
    END {
      printf "| %-36s | %12s | %-22s |\n", "benchmark", "instr/op", "client / floor"
      printf "|%s|%s|%s|\n", "--------------------------------------", "--------------", "------------------------"
      printf "| %-36s | %12d | %-22s |\n", "sequential create_app_policy", v["seq"], sprintf("%.2fx", v["seq"] / v["floor"])
      printf "| %-36s | %12d | %-22s |\n", "C floor: one reused libcurl handle", v["floor"], ""
      printf "| %-36s | %12d | %-22s |\n", sprintf("client:batch, concurrency %d", conc), v["batch"], sprintf("%.2fx", v["batch"] / v["floor_multi"])
      printf "| %-36s | %12d | %-22s |\n", sprintf("C floor: curl multi, %d in flight", conc), v["floor_multi"], ""
    }'
  exit 0
fi

echo "bench: nginx 127.0.0.1:$port; $pinned; $ROUNDS rounds; libcurl $(curl-config --version 2>/dev/null | cut -d' ' -f2)"
"$dir/floor" "$url" "$dir/body.json" 200 >/dev/null             # warm up
out="$dir/results.txt"
: >"$out"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  printf 'bench: round %s of %s\r' "$r" "$ROUNDS" >&2
  $pin1 "$LUA" bench/client.lua encode 20000 >>"$out"
  $pin1 "$dir/floor" "$url" "$dir/body.json" "$N" | awk '{ print "floor", $6, "req/s", $8 }' >>"$out"
  $pin1 "$LUA" bench/client.lua seq "$base" "$N" >>"$out"
  $pin1 "$dir/floor" "$url" "$dir/body.json" "$NB" "$CONC" | awk '{ print "floor_multi", $6, "req/s", $8 }' >>"$out"
  $pin1 "$LUA" bench/client.lua batch "$base" "$NB" "$CONC" >>"$out"
  $pin1 "$LUA" bench/client.lua curlcli "$url" "$dir/body.json" "$NCLI" >>"$out"
  $pin1 "$LUA" bench/client.lua socket "$url" "$NSOCK" >>"$out"
  r=$((r + 1))
done
echo >&2
$pin1 "$LUA" bench/client.lua rss "$base" "$NRSS" >>"$out"

# The table: per label min / median / max of the value and the median CPU.
awk -v conc="$CONC" -v nrss="$NRSS" '
function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
function med(a, n) { return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
{
  k = $1; n[k]++; v[k, n[k]] = $2; c[k, n[k]] = $4; unit[k] = $3
  if (k == "rss_growth") { before = $4; after = $5; held = $6; heap = $7 }
}
function stats(k,   i, a, b) {
  for (i = 1; i <= n[k]; i++) { a[i] = v[k, i]; b[i] = c[k, i] }
  sort(a, n[k]); sort(b, n[k])
  mn[k] = a[1]; md[k] = med(a, n[k]); mx[k] = a[n[k]]; cpu[k] = med(b, n[k])
}
function row(name, k, ref, target, ok) {
  printf "| %-44s | %-6s | %10.1f | %10.1f | %10.1f | %9.1f | %-28s |\n", name, unit[k], mn[k], md[k], mx[k], cpu[k], ref
}
END {
  split("encode_cfaccess encode_cjson encode_plain floor seq floor_multi batch curl_cli luasocket", ks, " ")
  for (i in ks) if (n[ks[i]] > 0) stats(ks[i])
  printf "| %-44s | %-6s | %10s | %10s | %10s | %9s | %-28s |\n", "benchmark", "unit", "min", "median", "max", "CPU us/op", "ratio (medians) [target]"
  printf "|%s|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------------", "--------", "------------", "------------", "------------", "-----------", "------------------------------"
  r1 = md["encode_cfaccess"] / md["encode_cjson"]; r2 = md["encode_cfaccess"] / md["encode_plain"]
  row("validate+encode (cfaccess.encode)", "encode_cfaccess", sprintf("%.2fx cjson [<= 1.5] %s", r1, r1 <= 1.5 ? "ok" : "MISS"))
  row("bare cjson.encode (no validation)", "encode_cjson", "")
  row("plain-Lua validate + cjson.encode", "encode_plain", sprintf("cfaccess is %.2fx of it", r2))
  r3 = md["seq"] / md["floor"]
  row("sequential create_app_policy", "seq", sprintf("%.2f of floor [>= 0.85] %s", r3, r3 >= 0.85 ? "ok" : "MISS"))
  row("C floor: one reused libcurl handle", "floor", "")
  r4 = md["batch"] / md["floor_multi"]; r5 = md["batch"] / md["seq"]
  row(sprintf("client:batch, concurrency %d", conc), "batch", sprintf("%.2f of C multi [>= 0.80] %s", r4, r4 >= 0.8 ? "ok" : "MISS"))
  row(sprintf("C floor: curl multi, %d in flight", conc), "floor_multi", sprintf("batch/seq %.2fx [>= 3] %s", r5, r5 >= 3 ? "ok" : "MISS"))
  row("curl command spawned per request", "curl_cli", sprintf("cfaccess seq is %.0fx faster", md["seq"] / md["curl_cli"]))
  row("LuaSocket socket.http + cjson", "luasocket", sprintf("cfaccess seq is %.1fx faster", md["seq"] / md["luasocket"]))
  g = after - before
  printf "| %-44s | %-6s | %10s | %10d | %10s | %9s | %-28s |\n", sprintf("RSS growth: %d ops, batches of 1000", nrss), "KB", "", g, "", "", sprintf("[< 5120] %s", g < 5120 ? "ok" : "MISS")
  printf "| %-44s | %-6s | %10s | %10d | %10s | %9s | %-28s |\n", sprintf("RSS growth: one batch of %d, all held", nrss), "KB", "", held, "", "", sprintf("results take %d KB of Lua heap", heap)
  printf "\nRSS: %d KB before and %d KB after %d ops in batches of 1,000 (results dropped);\none batch of %d deletes grows RSS by %d KB while its results (%d KB of Lua heap) are held.\n", before, after, nrss, nrss, held, heap
  printf "per round (same-round pairs, so slow drift in the machine cancels):\n  seq/floor:"
  for (i = 1; i <= n["seq"] && i <= n["floor"]; i++) printf " %.2f", v["seq", i] / v["floor", i]
  printf "\n  batch/C multi:"
  for (i = 1; i <= n["batch"] && i <= n["floor_multi"]; i++) printf " %.2f", v["batch", i] / v["floor_multi", i]
  printf "\n"
  printf "req/s: higher is better; us/op and KB: lower is better. CPU is user+system of the client process\n(curl command: with its children). Rows run alternately in each round, so they share the machine'"'"'s noise.\n"
}' "$out"
