#!/bin/sh
# cfaccess benchmark (make bench): one table, every row measured side by
# side in the same run, ROUNDS rounds each (min / median / max).
#
# Starts nginx (Debian nginx-light) on 127.0.0.1 with a canned Cloudflare
# API (bench/nginx.conf.in: 201 for create, 200 for list, 202 for delete),
# pinned to core 0, and runs every client pinned to core 1:
#   encode     cfaccess validate+encode vs bare cjson.encode vs a plain-Lua
#              validator + cjson.encode (bench/plain_validate.lua)
#   seq        client:create_app_policy in a loop vs the honest floor
#              (bench/hfloor.c: one reused libcurl handle, each response
#              decoded by the same lua-cjson into Lua tables, in the same
#              lua5.4) and, as information, bench/floor.c (plain C, no
#              decoding)
#   batch      client:batch at concurrency 8 vs the honest multi floor
#              (hfloor.c driving curl multi, 8 in flight, decoding each)
#              and floor.c's curl multi
#   others     the curl command spawned per request; LuaSocket socket.http
#   rss        VmRSS growth of one process over a batch of 100,000 ops
#   scale      encode cost per rule (1 to 1000 rules); listing 1, 100 and
#              1000 policies (requests, time, heap held): bench/scale.lua
# `bench/run.sh instr` (make bench-instr) prints instead the userland
# instructions per request of seq and batch against the honest floors
# (and the two C floors).
# `bench/run.sh peers` (make bench-peers) adds the official TypeScript SDK
# (bench/peers.sh) to the seq/batch rows.
# Knobs: ROUNDS (5), N (3000 sequential requests), NB (10000 batched ops),
# NCLI (100 curl spawns), NSOCK (500), NRSS (100000), CONC (8), SCALE (1;
# 0 leaves the scale rows out).
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
SCALE=${SCALE:-1}
export LUA_PATH_5_4="$top/lua/?.lua;$top/lua/?/init.lua;$top/bench/?.lua;;"
export LUA_CPATH_5_4="$top/?.so;;"

command -v nginx >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
command -v nginx >/dev/null 2>&1 || { echo "bench: nginx not found (make deps)" >&2; exit 1; }
pin0="" pin1="" pinned="not pinned (fewer than 2 cores or no taskset)"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  pin0="taskset -c 0" pin1="taskset -c 1" pinned="nginx on core 0, clients on core 1"
fi

dir=$(mktemp -d)
chmod 755 "$dir"   # nginx workers (nobody) read the scale rows' list pages
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
# shellcheck disable=SC2046
$CC -O2 -std=c99 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -fPIC -shared -o "$dir/hfloor.so" bench/hfloor.c \
  $(pkg-config --cflags lua5.4 2>/dev/null) $(pkg-config --cflags --libs libcurl 2>/dev/null || echo -lcurl)
export HFLOOR_SO="$dir/hfloor.so"

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
    per_op hfloor "$LUA" bench/client.lua hfloor "$url" "$dir/body.json" @N@
    per_op seq "$LUA" bench/client.lua seq "$base" @N@
    per_op floor_multi "$dir/floor" "$url" "$dir/body.json" @N@ "$CONC"
    per_op hfloor_multi "$LUA" bench/client.lua hfloor "$url" "$dir/body.json" @N@ "$CONC"
    per_op batch "$LUA" bench/client.lua batch "$base" @N@ "$CONC"
  } | awk -v conc="$CONC" '{ v[$1] = $2 }
    END {
      r1 = v["seq"] / v["hfloor"]; r2 = v["batch"] / v["hfloor_multi"]
      printf "| %-46s | %12s | %-34s |\n", "benchmark", "instr/op", "ratio [target]"
      printf "|%s|%s|%s|\n", "------------------------------------------------", "--------------", "------------------------------------"
      printf "| %-46s | %12d | %-34s |\n", "sequential create_app_policy", v["seq"], sprintf("%.2fx honest floor [<= 1.20] %s", r1, r1 <= 1.2 ? "ok" : "MISS")
      printf "| %-46s | %12d | %-34s |\n", "honest floor: one handle + lua-cjson decode", v["hfloor"], sprintf("client adds %d", v["seq"] - v["hfloor"])
      printf "| %-46s | %12d | %-34s |\n", "C floor: one reused handle, no decoding", v["floor"], sprintf("info: client %.2fx", v["seq"] / v["floor"])
      printf "| %-46s | %12d | %-34s |\n", sprintf("client:batch, concurrency %d", conc), v["batch"], sprintf("%.2fx honest multi [<= 1.25] %s", r2, r2 <= 1.25 ? "ok" : "MISS")
      printf "| %-46s | %12d | %-34s |\n", sprintf("honest floor: curl multi %d + lua-cjson", conc), v["hfloor_multi"], sprintf("client adds %d", v["batch"] - v["hfloor_multi"])
      printf "| %-46s | %12d | %-34s |\n", sprintf("C floor: curl multi, %d in flight", conc), v["floor_multi"], sprintf("info: client %.2fx", v["batch"] / v["floor_multi"])
    }'
  exit 0
fi

mode=${1:-all}
if [ "$mode" = scale ]; then
  "$LUA" bench/client.lua scalegen "$dir"
  $pin1 "$LUA" bench/client.lua scale "$base" "$dir/list.log"
  exit 0
fi
if [ "$mode" = peers ]; then
  # The official TypeScript SDK, installed into a throwaway directory; the
  # whole target is skipped (exit 0, with a message) when that is impossible.
  if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "bench-peers: skipped (npm or node not found)"
    exit 0
  fi
  mkdir -p "$dir/npm"
  cp bench/peers.mjs "$dir/npm/"
  echo "bench-peers: npm install cloudflare (into $dir/npm)" >&2
  if ! (cd "$dir/npm" && npm init -y &&
        timeout 300 npm install --no-audit --no-fund --loglevel=error cloudflare) >"$dir/npm.log" 2>&1; then
    echo "bench-peers: skipped (npm install cloudflare failed; its last lines:)"
    tail -n 5 "$dir/npm.log" || true
    exit 0
  fi
  tsver=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).version)' "$dir/npm/node_modules/cloudflare/package.json")
  ROUNDS=${PEER_ROUNDS:-3}
  NTS=${NTS:-1000}
  echo "bench-peers: cloudflare $tsver on node $(node --version)"
fi
echo "bench: nginx 127.0.0.1:$port; $pinned; $ROUNDS rounds; libcurl $(curl-config --version 2>/dev/null | cut -d' ' -f2)"
"$dir/floor" "$url" "$dir/body.json" 200 >/dev/null             # warm up
out="$dir/results.txt"
: >"$out"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  printf 'bench: round %s of %s\r' "$r" "$ROUNDS" >&2
  [ "$mode" = peers ] || $pin1 "$LUA" bench/client.lua encode 20000 >>"$out"
  $pin1 "$dir/floor" "$url" "$dir/body.json" "$N" | awk '{ print "floor", $6, "req/s", $8 }' >>"$out"
  $pin1 "$LUA" bench/client.lua hfloor "$url" "$dir/body.json" "$N" >>"$out"
  $pin1 "$LUA" bench/client.lua seq "$base" "$N" >>"$out"
  $pin1 "$dir/floor" "$url" "$dir/body.json" "$NB" "$CONC" | awk '{ print "floor_multi", $6, "req/s", $8 }' >>"$out"
  $pin1 "$LUA" bench/client.lua hfloor "$url" "$dir/body.json" "$NB" "$CONC" >>"$out"
  $pin1 "$LUA" bench/client.lua batch "$base" "$NB" "$CONC" >>"$out"
  if [ "$mode" = peers ]; then
    $pin1 node "$dir/npm/peers.mjs" "$base" "$NTS" 1 >>"$out"
    $pin1 node "$dir/npm/peers.mjs" "$base" "$NTS" "$CONC" >>"$out"
  else
    $pin1 "$LUA" bench/client.lua curlcli "$url" "$dir/body.json" "$NCLI" >>"$out"
    $pin1 "$LUA" bench/client.lua socket "$url" "$NSOCK" >>"$out"
  fi
  r=$((r + 1))
done
echo >&2
[ "$mode" = peers ] || $pin1 "$LUA" bench/client.lua rss "$base" "$NRSS" >>"$out"

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
  split("encode_cfaccess encode_cjson encode_plain floor hfloor seq floor_multi hfloor_multi batch curl_cli luasocket ts_seq ts_conc", ks, " ")
  for (i in ks) if (n[ks[i]] > 0) stats(ks[i])
  printf "| %-44s | %-6s | %10s | %10s | %10s | %9s | %-28s |\n", "benchmark", "unit", "min", "median", "max", "CPU us/op", "ratio (medians) [target]"
  printf "|%s|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------------", "--------", "------------", "------------", "------------", "-----------", "------------------------------"
  if (n["encode_cfaccess"] > 0) {
    r1 = md["encode_cfaccess"] / md["encode_cjson"]; r2 = md["encode_cfaccess"] / md["encode_plain"]
    row("validate+encode (cfaccess.encode)", "encode_cfaccess", sprintf("%.2fx cjson [<= 1.1] %s", r1, r1 <= 1.1 ? "ok" : "MISS"))
    row("bare cjson.encode (no validation)", "encode_cjson", "")
    row("plain-Lua validate + cjson.encode", "encode_plain", sprintf("cfaccess is %.2fx of it", r2))
  }
  r3 = md["seq"] / md["hfloor"]
  row("sequential create_app_policy", "seq", sprintf("%.2f of honest, CPU %.2fx", r3, cpu["seq"] / cpu["hfloor"]))
  row("honest floor: one handle + lua-cjson decode", "hfloor", "")
  row("C floor: one handle, no decoding (info)", "floor", sprintf("client %.2f of it", md["seq"] / md["floor"]))
  r4 = md["batch"] / md["hfloor_multi"]; r5 = md["batch"] / md["seq"]
  row(sprintf("client:batch, concurrency %d", conc), "batch", sprintf("%.2f of honest, CPU %.2fx", r4, cpu["batch"] / cpu["hfloor_multi"]))
  row(sprintf("honest floor: curl multi %d + lua-cjson", conc), "hfloor_multi", sprintf("info: batch/seq %.2fx", r5))
  row(sprintf("C floor: curl multi, %d in flight (info)", conc), "floor_multi", sprintf("batch %.2f of it", md["batch"] / md["floor_multi"]))
  if (n["curl_cli"] > 0) row("curl command spawned per request", "curl_cli", sprintf("cfaccess seq is %.0fx faster", md["seq"] / md["curl_cli"]))
  if (n["luasocket"] > 0) row("LuaSocket socket.http + cjson", "luasocket", sprintf("cfaccess seq is %.1fx faster", md["seq"] / md["luasocket"]))
  if (n["ts_seq"] > 0) row("TypeScript SDK (npm cloudflare), sequential", "ts_seq", sprintf("cfaccess seq is %.1fx faster", md["seq"] / md["ts_seq"]))
  if (n["ts_conc"] > 0) row(sprintf("TypeScript SDK, %d concurrent", conc), "ts_conc", sprintf("cfaccess batch is %.1fx faster", md["batch"] / md["ts_conc"]))
  if (n["rss_growth"] == 0) {
    printf "per round (same-round pairs, so slow drift in the machine cancels):\n  seq/honest floor:"
    for (i = 1; i <= n["seq"] && i <= n["hfloor"]; i++) printf " %.2f", v["seq", i] / v["hfloor", i]
    printf "\n  batch/honest multi floor:"
    for (i = 1; i <= n["batch"] && i <= n["hfloor_multi"]; i++) printf " %.2f", v["batch", i] / v["hfloor_multi", i]
    printf "\n"
    exit
  }
  g = after - before
  printf "| %-44s | %-6s | %10s | %10d | %10s | %9s | %-28s |\n", sprintf("RSS growth: %d ops, batches of 1000", nrss), "KB", "", g, "", "", sprintf("[< 5120] %s", g < 5120 ? "ok" : "MISS")
  printf "| %-44s | %-6s | %10s | %10d | %10s | %9s | %-28s |\n", sprintf("RSS growth: one batch of %d, all held", nrss), "KB", "", held, "", "", sprintf("results take %d KB of Lua heap", heap)
  printf "\nRSS: %d KB before and %d KB after %d ops in batches of 1,000 (results dropped);\none batch of %d deletes grows RSS by %d KB while its results (%d KB of Lua heap) are held.\n", before, after, nrss, nrss, held, heap
  printf "per round (same-round pairs, so slow drift in the machine cancels):\n  seq/honest floor:"
  for (i = 1; i <= n["seq"] && i <= n["hfloor"]; i++) printf " %.2f", v["seq", i] / v["hfloor", i]
  printf "\n  batch/honest multi floor:"
  for (i = 1; i <= n["batch"] && i <= n["hfloor_multi"]; i++) printf " %.2f", v["batch", i] / v["hfloor_multi", i]
  printf "\n"
  printf "req/s: higher is better; us/op and KB: lower is better. CPU is user+system of the client process\n(curl command: with its children). Rows run alternately in each round, so they share the machine'"'"'s noise.\n"
}' "$out"

if [ "$mode" = all ] && [ "$SCALE" != 0 ]; then
  echo
  "$LUA" bench/client.lua scalegen "$dir"
  $pin1 "$LUA" bench/client.lua scale "$base" "$dir/list.log"
fi

# Offline evaluation (API.md section 10): an app with 50 policies, per
# request (target: well under 50 us on this machine).
if [ "$mode" = all ]; then
  echo
  $pin1 "$LUA" bench/evaluate.lua 1
fi
