#!/usr/bin/env bash
# Generates the self-signed sample certificates used by apps.json and the default
# (non-SNI) certificate of arr. Sample use only: never use these for anything real.
#
# Idempotent: every run regenerates all of them (new keys) into certs/.
# Usage: bash scripts/make-certs.sh   (or: npm run certs)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/certs"
days=3650 # 10 years

command -v openssl >/dev/null || {
  echo "make-certs: openssl not found on PATH" >&2
  exit 1
}

mkdir -p "$out"
# Build everything in a scratch directory first, so a failure never leaves a
# half-written certificate/key pair in certs/.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# gen NAME CN SAN: writes NAME-cert.pem and NAME-key.pem (EC P-256, self-signed).
gen() {
  local name="$1" cn="$2" san="$3"
  # openssl req chatters ("-----") on stderr even on success: show it only on failure.
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -days "$days" \
    -subj "/O=arr sample/CN=$cn" \
    -addext "subjectAltName=$san" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$tmp/$name-key.pem" -out "$tmp/$name-cert.pem" 2>"$tmp/openssl.err"; then
    cat "$tmp/openssl.err" >&2
    echo "make-certs: failed to generate $name" >&2
    exit 1
  fi
  echo "certs/$name-cert.pem  CN=$cn  $san"
}

gen default localhost 'DNS:localhost,DNS:*.localhost,IP:127.0.0.1,IP:::1'
gen app1 app1.localhost 'DNS:app1.localhost'
gen secure-app1 secure-app1.localhost 'DNS:secure-app1.localhost'
gen ws1 ws1.localhost 'DNS:ws1.localhost'

# Same modes as a git checkout gives them: these keys are public samples, and a
# 0600 key would break a router run under a different user than the generator.
chmod 644 "$tmp"/*.pem
mv -f "$tmp"/*.pem "$out"/
