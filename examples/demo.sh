#!/bin/sh
# `make demo`: run examples/quickstart.lua against the local mock
# Cloudflare API (tests/mock/cfmock.py), configured only through the
# environment variables a user would set for the real API.
#   1. start the mock on a free 127.0.0.1 port with a random token
#   2. register an Access application in it (control API)
#   3. export CLOUDFLARE_API_TOKEN / CLOUDFLARE_ACCOUNT_ID / CFACCESS_APP_ID /
#      CLOUDFLARE_BASE_URL and run the quickstart with the repo's module
#   4. run the cfaccess command (bin/cfaccess): validate a state file with
#      deliberate mistakes, then the right one; then, where this build has
#      client:plan/apply/export, plan (changes), apply, plan again (no
#      changes) and export
#   5. stop the mock (also on failure or Ctrl-C) and exit with the
#      quickstart's status, or the command's
set -u
LUA=${LUA:-lua5.4}
PYTHON=${PYTHON:-python3}
O=${O:-.}            # the build directory holding cfaccess/core.so (make O=...)
# Under `make asan` the sanitizer runtimes are preloaded for the Lua
# interpreter: keep them for it alone (python and curl must not inherit them).
preload=${LD_PRELOAD:-}
unset LD_PRELOAD
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

[ -f "$O/cfaccess/core.so" ] || { echo "demo: $O/cfaccess/core.so is not built (run make)" >&2; exit 1; }

# Random secrets and ids from the kernel, so no two runs share them.
hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
token=$(hex 24)
account=$(hex 16)
app=$(cat /proc/sys/kernel/random/uuid)

tmp=$(mktemp -d) || exit 1
mockpid=""
cleanup() {
  if [ -n "$mockpid" ]; then
    kill "$mockpid" 2>/dev/null
    # bounded wait for the mock to exit (5 s)
    i=0
    while kill -0 "$mockpid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$mockpid" 2>/dev/null; then kill -9 "$mockpid" 2>/dev/null; fi
    wait "$mockpid" 2>/dev/null   # reap it (it is gone by now: bounded)
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. the mock, in the background; its first stdout line says where it is.
"$PYTHON" tests/mock/cfmock.py --port 0 --token "$token" >"$tmp/mock.out" 2>"$tmp/mock.err" &
mockpid=$!
port=""
i=0
while [ $i -lt 100 ]; do                  # at most 10 s
  line=$(head -n 1 "$tmp/mock.out" 2>/dev/null)
  case $line in
    "cfmock listening on 127.0.0.1:"*)
      port=$(echo "$line" | sed -n 's/^cfmock listening on 127\.0\.0\.1:\([0-9]*\) pid \([0-9]*\).*$/\1/p')
      break ;;
  esac
  kill -0 "$mockpid" 2>/dev/null || break
  sleep 0.1
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "demo: the mock API ($PYTHON tests/mock/cfmock.py) did not start within 10 s:" >&2
  if [ -s "$tmp/mock.err" ]; then cat "$tmp/mock.err" >&2; else echo "  (no output)" >&2; fi
  exit 1
fi
echo "demo: mock Cloudflare API on http://127.0.0.1:$port (pid $mockpid)"

# Never route the loopback requests through a proxy from the environment.
NO_PROXY=127.0.0.1,localhost; no_proxy=$NO_PROXY; export NO_PROXY no_proxy

# 2. an Access application for the quickstart to attach policies to.
if ! curl -s -f --noproxy '*' --max-time 5 -o "$tmp/app.out" -X POST \
    "http://127.0.0.1:$port/__mock/apps" \
    -d "{\"scope\":\"accounts\",\"scope_id\":\"$account\",\"app_id\":\"$app\",\"type\":\"self_hosted\"}"; then
  echo "demo: could not register the application with the mock" >&2
  exit 1
fi
echo "demo: registered Access application $app in account $account"
echo "demo: running examples/quickstart.lua"
echo

# 3. exactly the variables a user sets for the real API (one auth scheme).
unset CLOUDFLARE_API_KEY CLOUDFLARE_EMAIL
CLOUDFLARE_API_TOKEN=$token
CLOUDFLARE_ACCOUNT_ID=$account
CFACCESS_APP_ID=$app
CLOUDFLARE_BASE_URL="http://127.0.0.1:$port/client/v4"
export CLOUDFLARE_API_TOKEN CLOUDFLARE_ACCOUNT_ID CFACCESS_APP_ID CLOUDFLARE_BASE_URL
LUA_PATH_5_4="$top/lua/?.lua;$top/lua/?/init.lua;;"
LUA_CPATH_5_4="$top/$O/?.so;;"
[ "$O" = . ] && LUA_CPATH_5_4="$top/?.so;;"
export LUA_PATH_5_4 LUA_CPATH_5_4

if [ -n "$preload" ]; then
  LD_PRELOAD=$preload "$LUA" examples/quickstart.lua
else
  "$LUA" examples/quickstart.lua
fi
status=$?
echo
if [ "$status" -ne 0 ]; then
  echo "demo: the quickstart failed (exit status $status)" >&2
  exit "$status"
fi

# 4. the command line, with the same environment.
run() {   # run the command, its stderr too, and print its exit status
  echo "\$ cfaccess $*"
  if [ -n "$preload" ]; then
    LD_PRELOAD=$preload "$LUA" bin/cfaccess "$@" 2>&1
  else
    "$LUA" bin/cfaccess "$@" 2>&1
  fi
  rc=$?
  echo "(exit $rc)"
  return 0
}
expect() {   # the last run's exit status must be $1
  if [ "$rc" -ne "$1" ]; then
    echo "demo: cfaccess exited $rc, expected $1" >&2
    exit 1
  fi
}
echo "demo: the cfaccess command"
run validate examples/mistakes.json; expect 1
run validate examples/access.lua; expect 0

# plan/apply/export: where this build has them (client:plan, client:apply,
# client:export, and the core's set_app_policies/get_app for the app's list)
# (with the sanitizer runtimes under make asan, as every Lua run here: without
# them the asan-built core does not load and the probe would say "no")
if LD_PRELOAD=$preload "$LUA" -e 'local c = assert(require("cfaccess").client{ account_id = os.getenv("CLOUDFLARE_ACCOUNT_ID") })
  for _, m in ipairs{ "plan", "apply", "export", "set_app_policies", "get_app" } do
    if type(c[m]) ~= "function" then os.exit(1) end
  end' 2>/dev/null
then
  state_app=f174e90a-fafe-4643-bbbc-4a0ed4fc8415   # the application examples/access.lua names
  if ! curl -s -f --noproxy '*' --max-time 5 -o "$tmp/app2.out" -X POST \
      "http://127.0.0.1:$port/__mock/apps" \
      -d "{\"scope\":\"accounts\",\"scope_id\":\"$account\",\"app_id\":\"$state_app\",\"type\":\"self_hosted\"}"; then
    echo "demo: could not register the state's application with the mock" >&2
    exit 1
  fi
  run plan examples/access.lua; expect 2
  run apply --yes examples/access.lua; expect 0
  run plan examples/access.lua; expect 0
  run export --app "$state_app"; expect 0
else
  echo "demo: this build has no client:plan/apply/export (or set_app_policies) yet: plan, apply and export skipped"
fi
echo
echo "demo: OK"
exit 0
