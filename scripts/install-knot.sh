#!/usr/bin/env bash
# Installs Debian's Knot DNS (knotd, knotc) for the RFC 2136 tests of test/acme (DNS-01 through
# dynamic updates signed with TSIG), unless knotd is already there. Needs root (apt-get).
set -euo pipefail

if command -v knotd >/dev/null || [ -x /usr/sbin/knotd ]; then
  command -v knotd || echo /usr/sbin/knotd
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-knot: apt-get is needed to install knot" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install-knot: run as root (apt-get install -y knot)" >&2
  exit 1
fi

echo "install-knot: installing Debian's knot package" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends knot; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-knot: apt-get failed" >&2
  exit 1
fi
# The package starts a knot service where there is an init system; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet knot 2>/dev/null; then
  systemctl disable --now knot >/dev/null 2>&1 || true
fi
[ -x /usr/sbin/knotd ] || { echo "install-knot: knotd missing after the install" >&2; exit 1; }
echo /usr/sbin/knotd
