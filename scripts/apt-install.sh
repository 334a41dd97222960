#!/usr/bin/env bash
# Installs a Debian package for the tests unless a command it brings is there already:
#   bash scripts/apt-install.sh NAME PACKAGE COMMAND...
# NAME prefixes the messages; every COMMAND must be found afterwards. Needs root (apt-get).
set -euo pipefail
name=$1 package=$2
shift 2

missing=0
for c in "$@"; do command -v "$c" >/dev/null || missing=1; done
if [ "$missing" -eq 0 ]; then
  command -v "$1"
  exit 0
fi
command -v apt-get >/dev/null || { echo "$name: apt-get is needed to install $package" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "$name: run as root (apt-get install -y $package)" >&2
  exit 1
fi

echo "$name: installing Debian's $package package" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$package"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "$name: apt-get failed" >&2
  exit 1
fi
for c in "$@"; do command -v "$c" >/dev/null || { echo "$name: $c missing after the install" >&2; exit 1; }; done
command -v "$1"
