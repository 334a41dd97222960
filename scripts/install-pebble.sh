#!/usr/bin/env bash
# Builds Pebble (Let's Encrypt's ACME test server) and pebble-challtestsrv (its DNS with a
# management API) for test/acme, from the Go module proxy, unless cached binaries are there.
# Debian's Pebble 2.4 has no ACME Renewal Information (ARI): the tests need 2.10 or newer.
# Prints the directory of the two binaries on its last line.
# Cache: $ARR_PEBBLE_CACHE (default ~/.cache/arr), kept between runs.
set -euo pipefail
version=v2.10.3
cache=${ARR_PEBBLE_CACHE:-"$HOME/.cache/arr"}
dir="$cache/pebble-$version"

if [ -x "$dir/pebble" ] && [ -x "$dir/pebble-challtestsrv" ]; then
  echo "$dir"
  exit 0
fi
command -v go >/dev/null || { echo "install-pebble: Go is needed to build Pebble" >&2; exit 1; }
command -v openssl >/dev/null || { echo "install-pebble: openssl is needed (the tests make Pebble's API certificate)" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "install-pebble: building Pebble $version (a minute the first time)" >&2
GOBIN="$work/bin" GOFLAGS=-mod=mod go install -trimpath \
  "github.com/letsencrypt/pebble/v2/cmd/pebble@$version" \
  "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$version" >&2
mkdir -p "$dir.tmp"
install -m 0755 "$work/bin/pebble" "$work/bin/pebble-challtestsrv" "$dir.tmp/"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir"
