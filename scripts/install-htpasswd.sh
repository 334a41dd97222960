#!/usr/bin/env bash
# Installs Debian's apache2-utils (htpasswd) for the bcrypt hashes of the basic-auth tests
# (test/unit/policy.test.ts, test/proxy/policies.test.ts) and the policies benchmark, unless
# htpasswd is already there. Needs root (apt-get).
set -euo pipefail

if command -v htpasswd >/dev/null; then
  command -v htpasswd
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-htpasswd: apt-get is needed to install apache2-utils" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "install-htpasswd: run as root (apt-get install -y apache2-utils)" >&2
  exit 1
fi

echo "install-htpasswd: installing Debian's apache2-utils package" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends apache2-utils; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-htpasswd: apt-get failed" >&2
  exit 1
fi
command -v htpasswd >/dev/null || { echo "install-htpasswd: htpasswd missing after the install" >&2; exit 1; }
command -v htpasswd
