#!/usr/bin/env bash
# Installs a C compiler (Debian's gcc) and util-linux's setpriv and prlimit for the cgroup and capability
# tests (test/hardening/tenant-cgroups.test.ts compiles a program that forks a daemon as its very
# first action; arr starts instances through setpriv), unless both are there. Needs root (apt-get).
set -euo pipefail

if command -v cc >/dev/null && [ -x /usr/bin/setpriv ] && [ -x /usr/bin/prlimit ]; then
  command -v cc
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-cc: apt-get is needed to install gcc" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install-cc: run as root (apt-get install -y gcc libc6-dev util-linux)" >&2
  exit 1
fi

echo "install-cc: installing Debian's gcc, libc6-dev and util-linux packages" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev util-linux; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-cc: apt-get failed" >&2
  exit 1
fi
command -v cc >/dev/null || { echo "install-cc: cc missing after the install" >&2; exit 1; }
command -v cc
