#!/usr/bin/env bash
# Installs Debian's nghttp2-client (nghttp, h2load) for the HTTP/2 tests (test/h2) and the
# benchmark's HTTP/2 rows, unless h2load is already there. Needs root (apt-get).
set -euo pipefail

if command -v h2load >/dev/null && command -v nghttp >/dev/null; then
  command -v h2load
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-nghttp2: apt-get is needed to install nghttp2-client" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install-nghttp2: run as root (apt-get install -y nghttp2-client)" >&2
  exit 1
fi

echo "install-nghttp2: installing Debian's nghttp2-client package" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends nghttp2-client; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-nghttp2: apt-get failed" >&2
  exit 1
fi
command -v h2load >/dev/null || { echo "install-nghttp2: h2load missing after the install" >&2; exit 1; }
command -v h2load
