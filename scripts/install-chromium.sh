#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the browser end-to-end tests (test/browser),
# unless /usr/bin/chromium is already there. Needs root (apt-get); prints the binary's path.
set -euo pipefail
bin=/usr/bin/chromium

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-chromium: apt-get is needed to install chromium" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium: run as root (apt-get install -y chromium)" >&2
  exit 1
fi

echo "install-chromium: installing Debian's chromium package (a few minutes the first time)" >&2
export DEBIAN_FRONTEND=noninteractive
# apt's and dpkg's chatter goes to a log, shown only when the install fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-chromium: apt-get failed" >&2
  exit 1
fi
[ -x "$bin" ] || { echo "install-chromium: $bin missing after the install" >&2; exit 1; }
echo "$bin"
