#!/bin/sh
# Run each libFuzzer harness named on the command line for FUZZ_SECONDS:
# first replay tests/fuzz/regress/<name>/* (every past crash must stay fixed),
# then fuzz a scratch copy of the committed seeds (tests/fuzz/corpus/<name>)
# in $FUZZ_O/corpus/<name>. Prints one line per target with the number of
# executions; then runs the differential oracle over the grown corpus.
# Fails on the first crash; the reproducer is left in $FUZZ_O/crash-<name>-*.
set -u
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_O=${FUZZ_O:-build/fuzz}
PYTHON=${PYTHON:-python3}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
# cjson (and any other C module) is found the normal way by require.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=""
status=0
for name in "$@"; do
  bin="$FUZZ_O/bin/$name"
  seeds="tests/fuzz/corpus/$name"
  work="$FUZZ_O/corpus/$name"
  mkdir -p "$work" "$seeds"
  if [ -d "tests/fuzz/regress/$name" ] && [ -n "$(ls -A "tests/fuzz/regress/$name")" ]; then
    # in name order, in one process (some need the state an earlier one left)
    if "$bin" -runs=0 -rss_limit_mb=2048 -malloc_limit_mb=1024 tests/fuzz/regress/$name/* >"$FUZZ_O/$name.regress.log" 2>&1; then
      summary="$summary
fuzz: $name: $(ls "tests/fuzz/regress/$name" | wc -l) regression inputs pass"
    else
      echo "fuzz: $name: a regression input fails:"
      grep -a -E '^Running:|ERROR|SUMMARY|unexpected|leaked| in cf_| in [a-z_]+ /work' \
        "$FUZZ_O/$name.regress.log" | head -20
      summary="$summary
fuzz: $name: REGRESSION INPUT FAILS (see $FUZZ_O/$name.regress.log)"
      status=1
    fi
  fi
  log="$FUZZ_O/$name.log"
  echo "fuzz: $name for ${FUZZ_SECONDS}s"
  "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$FUZZ_O/crash-$name-" \
    "$work" "$seeds" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ "$rc" != 0 ]; then
    echo "fuzz: $name FAILED (exit $rc); the end of $log:"
    tail -60 "$log"
    status=1
  fi
  summary="$summary
fuzz: $name: ${runs:-?} executions in ${FUZZ_SECONDS}s, ${cov:-cov ?}, corpus $(ls "$work" | wc -l) files, exit $rc"
done
if [ -x "$FUZZ_O/bin/formats_cli" ]; then
  "$PYTHON" tests/fuzz/oracle.py "$FUZZ_O/bin/formats_cli" \
    tests/fuzz/corpus/fuzz_formats "$FUZZ_O/corpus/fuzz_formats" || status=1
fi
echo "$summary"
exit $status
