#!/usr/bin/env bash
# Installs what the service-manager tests (test/cli/service.test.ts) use, unless it is there:
# Debian's systemd package for systemd-socket-activate (socket activation) and systemd-notify
# (which arr runs to notify), and python3 to receive the notifications (Node has no unix
# datagram sockets). Nothing is started: no systemd runs as init for the tests. Needs root.
set -euo pipefail

have() { command -v systemd-socket-activate >/dev/null && command -v systemd-notify >/dev/null && [ -x /usr/bin/python3 ]; }
if have; then
  command -v systemd-socket-activate
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-systemd: apt-get is needed to install systemd" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install-systemd: run as root (apt-get install -y systemd python3-minimal)" >&2
  exit 1
fi

echo "install-systemd: installing Debian's systemd and python3-minimal packages" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd python3-minimal; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-systemd: apt-get failed" >&2
  exit 1
fi
have || { echo "install-systemd: systemd-socket-activate, systemd-notify or python3 missing after the install" >&2; exit 1; }
command -v systemd-socket-activate
