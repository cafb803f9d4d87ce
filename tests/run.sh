#!/bin/sh
# Run every tests/*_spec.lua with busted against the module built in $O,
# print the TAP stream, then one summary line "N passed, N failed".
# CFACCESS_VALGRIND=1 runs the interpreter under valgrind memcheck.
#
# With no arguments the spec files are shared round-robin between $JOBS
# busted processes run side by side (default 2; 1 under valgrind or a
# sanitizer build, which are CPU-bound). Most of the suite's wall time is
# waiting on sockets, child processes and the timeouts under test, so two
# processes nearly halve it. The specs are independent (each starts its own
# mock on a free port); JOBS=1 runs them in one process, as plain `busted`
# does. The first process's TAP is shown as it runs, the others' after it
# (each with its own numbering and plan line); the summary counts them all.
# With arguments (spec files, busted options) there is one process.
set -u
O=${O:-.}
LUA=${LUA:-lua5.4}
BUSTED=${BUSTED:-busted}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
bustedbin=$(command -v "$BUSTED") || { echo "run.sh: busted not found (make deps)" >&2; exit 1; }
. "$top/tests/env.sh"
if [ "${CFACCESS_VALGRIND:-}" = 1 ] || [ "$O" != "." ]; then
  JOBS=${JOBS:-1}
else
  JOBS=${JOBS:-2}
fi
case $JOBS in ''|*[!0-9]*|0) echo "run.sh: JOBS must be a positive integer" >&2; exit 1 ;; esac
out=$(mktemp)
trap 'rm -f "$out" "$out".*' EXIT

# One busted process over the given files/options: TAP on stdout, exit
# status into file $1.
run_busted() {
  rcfile=$1
  shift
  # --ignore-lua: this is already the interpreter .busted's `lua` names.
  set -- "$bustedbin" --ignore-lua --output=TAP --lpath= --cpath= "$@"
  if [ "${CFACCESS_VALGRIND:-}" = 1 ]; then
    set -- valgrind --quiet --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite --show-leak-kinds=definite \
      --suppressions="$top/tests/valgrind.supp" "$LUA" "$@"
  else
    set -- "$LUA" "$@"
  fi
  "$@" 2>&1
  echo $? >"$rcfile"
}

if [ $# -gt 0 ] || [ "$JOBS" -eq 1 ]; then
  [ $# -gt 0 ] || set -- tests
  run_busted "$out.1.rc" "$@" | tee "$out.1"
  jobs_run=1
else
  # Spec file k (in name order) goes to process (k - 1) % JOBS + 1.
  k=0
  for f in tests/*_spec.lua; do
    printf '%s\n' "$f" >>"$out.list$((k % JOBS + 1))"
    k=$((k + 1))
  done
  jobs_run=1
  while [ "$jobs_run" -lt "$JOBS" ] && [ -s "$out.list$((jobs_run + 1))" ]; do
    jobs_run=$((jobs_run + 1))
    # the lists hold plain tests/*_spec.lua names: word splitting is safe
    run_busted "$out.$jobs_run.rc" $(cat "$out.list$jobs_run") >"$out.$jobs_run" &
  done
  run_busted "$out.1.rc" $(cat "$out.list1") | tee "$out.1"
  wait
  j=2
  while [ "$j" -le "$jobs_run" ]; do
    cat "$out.$j"
    j=$((j + 1))
  done
fi

passed=0 failed=0 rc=0
j=1
while [ "$j" -le "$jobs_run" ]; do
  passed=$((passed + $(grep -c '^ok ' "$out.$j")))
  failed=$((failed + $(grep -c '^not ok ' "$out.$j")))
  r=$(cat "$out.$j.rc")
  [ "$r" = 0 ] || rc=$r
  j=$((j + 1))
done
echo "$passed passed, $failed failed"
[ "$rc" = 0 ] || { echo "run.sh: the test run exited with status $rc" >&2; exit 1; }
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] || exit 1
exit 0
