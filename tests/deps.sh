#!/bin/sh
# Install the Debian packages cfaccess needs to build, test, demo and bench,
# only those that are missing. As root it runs apt-get; otherwise it prints
# the exact command to run and fails.
set -u
PKGS="lua5.4 liblua5.4-dev universal-ctags lua-cjson libcurl4-openssl-dev pkg-config lua-busted lua-check lua-socket lua-argparse lua-term tmux luarocks python3 curl make gcc nginx-light valgrind clang libclang-rt-14-dev openssl"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
    echo "deps: apt-get failed; run: apt-get update && apt-get install -y$missing" >&2; exit 1; }
else
  echo "deps: missing packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
