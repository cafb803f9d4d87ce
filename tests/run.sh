#!/bin/sh
# Run every tests/*_spec.lua with busted against the module built in $O,
# print the TAP stream, then one summary line "N passed, N failed".
# CFACCESS_VALGRIND=1 runs the interpreter under valgrind memcheck.
#
# With no arguments $JOBS workers (default 6; 1 under valgrind or a
# sanitizer build, which are CPU-bound) run the spec files side by side,
# one busted process per file. Most of the suite's wall time is waiting:
# on the mock's rate-limit windows and lockouts, on subprocesses and tmux,
# on the timeouts under test (about 85 s of waiting for 15 s of CPU), so
# six workers on two cores cut the wall time to about a fifth without
# making the CPU-bound specs wait on each other much. The specs are
# independent (each starts its own mock on a free port); JOBS=1 runs them
# all in one process, as plain `busted` does.
# Each file's TAP (its own numbering and plan line) is printed when the
# file is done; the summary counts them all.
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
  JOBS=${JOBS:-6}
fi
case $JOBS in ''|*[!0-9]*|0) echo "run.sh: JOBS must be a positive integer" >&2; exit 1 ;; esac
out=$(mktemp)
trap 'rm -f "$out" "$out".*; rmdir "$out.lock" 2>/dev/null' EXIT

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
  # A queue of spec files, the ones that wait longest first (so that none
  # of them starts last and keeps the run going alone), then the rest,
  # largest first. The list only orders the queue: a name missing from it
  # or a file not on it costs time, never a test. Each of JOBS workers
  # takes the next file, runs it in its own busted process and prints its
  # TAP when it is done (under a lock, so two files never interleave).
  for n in donewhen engine_waits pace_budget cli_tty mock cli_install client_faults cli; do
    [ -f "tests/${n}_spec.lua" ] && echo "tests/${n}_spec.lua"
  done >"$out.queue"
  ls -S tests/*_spec.lua | grep -vxF -f "$out.queue" >>"$out.queue"
  take() {   # next file of the queue into $file ("" when empty)
    until mkdir "$out.lock" 2>/dev/null; do sleep 0.01; done
    file=$(head -n 1 "$out.queue")
    sed -i 1d "$out.queue"
    rmdir "$out.lock"
  }
  worker() {
    while take && [ -n "$file" ]; do
      n=$(basename "$file" .lua)
      run_busted "$out.f.$n.rc" "$file" >"$out.f.$n"
      until mkdir "$out.lock" 2>/dev/null; do sleep 0.01; done
      cat "$out.f.$n"
      rmdir "$out.lock"
    done
  }
  j=1
  while [ "$j" -le "$JOBS" ]; do
    worker &
    j=$((j + 1))
  done
  wait
  jobs_run=0
  for f in "$out".f.*.rc; do
    jobs_run=$((jobs_run + 1))
    mv "${f%.rc}" "$out.$jobs_run"
    mv "$f" "$out.$jobs_run.rc"
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
