#!/usr/bin/env bash
# Pebble (Let's Encrypt's ACME test server) and pebble-challtestsrv, for test/acme: Debian's
# package when they are missing. Needs root (CI runs as root) or sudo.
set -euo pipefail
if command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null; then
  echo "pebble: $(command -v pebble)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq pebble openssl curl
command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null
echo "pebble: $(command -v pebble)"
