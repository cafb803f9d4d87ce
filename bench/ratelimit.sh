#!/bin/sh
# make bench-ratelimit: Cloudflare's rate limit as the real bound (issue 13).
# bench/rlserver.py models the budget and the lockout on 127.0.0.1, scaled
# (RL_BUDGET requests per RL_WINDOW s, 429 + Retry-After until the lockout
# ends, Ratelimit/Ratelimit-Policy headers, RL_LATENCY s per answer), and
# RL_N creates run against it in each configuration (bench/ratelimit.lua):
#   default   no rate options (the client paces on the Ratelimit header)
#   explicit  rate_limit = { requests = RL_BUDGET, per = RL_WINDOW }
#   off       rate_limit = false (429s and Retry-After only)
#   shared    two processes with default options and one token, RL_N/2 each
# each sequential (create_app_policy in a loop) and batched (client:batch,
# concurrency 8). Each configuration gets a token of its own, so a fresh
# budget. Printed: wall time against the physical floor (the first window's
# burst counted: full windows * RL_WINDOW + the rest at the latency), the
# 429s the server sent, failed creates and duplicates (by policy name).
# Time: each run takes about its floor, (RL_N-1)/RL_BUDGET windows; with the
# defaults (150 creates, 60 per 15 s, 80 ms) 8 runs of ~32 s, ~4.5 minutes
# in all. Every run is killed after RL_TIMEOUT s (default 4x its floor +
# 30). Knobs: RL_N, RL_BUDGET, RL_WINDOW, RL_LATENCY, RL_LOCKOUT (window, or
# seconds after the exceeding request), RL_CONFIGS, RL_MODES.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
LUA=${LUA:-lua5.4}
PYTHON=${PYTHON:-python3}
RL_N=${RL_N:-150}
RL_BUDGET=${RL_BUDGET:-60}
RL_WINDOW=${RL_WINDOW:-15}
RL_LATENCY=${RL_LATENCY:-0.08}
RL_LOCKOUT=${RL_LOCKOUT:-window}
RL_CONFIGS=${RL_CONFIGS:-default explicit off shared}
RL_MODES=${RL_MODES:-seq batch}
export LUA_PATH_5_4="$top/lua/?.lua;$top/lua/?/init.lua;$top/bench/?.lua;;"
export LUA_CPATH_5_4="$top/?.so;;"

dir=$(mktemp -d)
spid=""
stop() {
  if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 1' INT TERM

$PYTHON bench/rlserver.py --budget "$RL_BUDGET" --window "$RL_WINDOW" --latency "$RL_LATENCY" \
  --lockout "$RL_LOCKOUT" --port-file "$dir/port" &
spid=$!
i=0
until [ -s "$dir/port" ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$dir/port" ] || { echo "bench-ratelimit: the model server did not start" >&2; exit 1; }
port=$(cat "$dir/port")
base="http://127.0.0.1:$port/client/v4"

# floor N CONC: the least wall time any client can take
floor() {
  awk -v n="$1" -v c="$2" -v b="$RL_BUDGET" -v w="$RL_WINDOW" -v l="$RL_LATENCY" 'BEGIN {
    full = int((n - 1) / b); m = n - full * b
    f = full * w + int((m + c - 1) / c) * l; g = int((n + c - 1) / c) * l
    printf "%.3f", (f > g ? f : g) }'
}
stats() {   # stats TOKEN: requests created r429 duplicates
  curl -s "http://127.0.0.1:$port/__stats/$1" |
    $PYTHON -c 'import json,sys; s=json.load(sys.stdin); print(s["requests"], s["created"], s["r429"], s["duplicates"])'
}

echo "bench-ratelimit: model on 127.0.0.1:$port: $RL_BUDGET requests per $RL_WINDOW s, lockout $RL_LOCKOUT, $RL_LATENCY s per answer; $RL_N creates per run"
printf '| %-30s | %8s | %8s | %-28s | %5s | %6s | %5s | %8s |\n' run "wall s" "floor s" "ratio [target]" 429s failed dups requests
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' -------------------------------- ---------- ---------- ------------------------------ ------- -------- ------- ----------
misses=0
errs="$dir/errors.txt"
: >"$errs"
for cfg in $RL_CONFIGS; do
  for mode in $RL_MODES; do
    tok="rl-token-$cfg-$mode-$$"
    conc=1; [ "$mode" = batch ] && conc=8
    if [ "$cfg" = shared ]; then conc=$((conc * 2)); fi
    fl=$(floor "$RL_N" "$conc")
    limit=${RL_TIMEOUT:-$(awk -v f="$fl" 'BEGIN { printf "%d", 4 * f + 30 }')}
    if [ "$cfg" = shared ]; then
      half=$((RL_N / 2))
      timeout "$limit" "$LUA" bench/ratelimit.lua "$base" "$tok" "$mode" "$half" default "$RL_BUDGET" "$RL_WINDOW" a >"$dir/a.out" 2>&1 &
      pa=$!
      timeout "$limit" "$LUA" bench/ratelimit.lua "$base" "$tok" "$mode" $((RL_N - half)) default "$RL_BUDGET" "$RL_WINDOW" b >"$dir/b.out" 2>&1 &
      pb=$!
      wait "$pa" || true
      wait "$pb" || true
      cat "$dir/a.out" "$dir/b.out" >"$dir/run.out"
    else
      timeout "$limit" "$LUA" bench/ratelimit.lua "$base" "$tok" "$mode" "$RL_N" "$cfg" "$RL_BUDGET" "$RL_WINDOW" x >"$dir/run.out" 2>&1 || true
    fi
    # wall: earliest start to latest end; a process that did not finish
    # (killed by timeout, or crashed) counts all of its creates as failed
    line=$(awk -v n="$RL_N" -v parts="$([ "$cfg" = shared ] && echo 2 || echo 1)" '
      $1 == "rl" { k++; if (s == "" || $2 < s) s = $2; if ($3 > e) e = $3; ok += $4; bad += $5 }
      END { if (k < parts) { print "- " n - ok; exit } printf "%.3f %d\n", e - s, bad }' "$dir/run.out")
    wall=${line% *}; failed=${line#* }
    grep -v '^rl ' "$dir/run.out" | head -n 3 | sed "s/^/  $cfg $mode: /" >>"$errs" || true
    awk '$1 == "rl" && $6 != "-" { $1 = $2 = $3 = $4 = $5 = ""; print "  first error:" $0; exit }' "$dir/run.out" |
      sed "s/^/  $cfg $mode/" >>"$errs"
    # shellcheck disable=SC2046
    set -- $(stats "$tok")
    reqs=$1 r429=$3 dups=$4
    label="$cfg, $mode"
    [ "$cfg" = shared ] && label="shared token (2 procs), $mode"
    ratio=$(awk -v w="$wall" -v f="$fl" -v cfg="$cfg" -v r="$r429" -v bad="$failed" -v d="$dups" 'BEGIN {
      if (w == "-") { printf "did not finish MISS"; exit }
      x = w / f; t = ""
      if (cfg == "default") t = (x <= 1.04 && r == 0 && bad == 0 && d == 0) ? " [<=1.04,0 429] ok" : " [<=1.04,0 429] MISS"
      else t = (bad == 0 && d == 0) ? " [0 failed] ok" : " [0 failed] MISS"
      printf "%.3fx%s", x, t }')
    case "$ratio" in *MISS*) misses=$((misses + 1)) ;; esac
    printf '| %-30s | %8s | %8s | %-28s | %5s | %6s | %5s | %8s |\n' "$label" "$wall" "$fl" "$ratio" "$r429" "$failed" "$dups" "$reqs"
  done
done
if [ -s "$errs" ]; then echo "errors:"; cat "$errs"; fi
echo "floor: full windows x $RL_WINDOW s + the last window's creates at $RL_LATENCY s each, $([ "$RL_MODES" = seq ] || echo "8 (16 for two processes) at a time batched, ")1 (2) sequentially."
echo "targets (issue 13): default options <= 1.04x the floor with 0 429s; no failed or duplicated create anywhere. $misses missed."
