#!/usr/bin/env bash
# Installs FerretDB v1.24.2 (SQLite backend) for the MongoDB registry tests, unless a cached
# binary is already there. Prints the binary's path on its last line.
# Cache: $ARR_FERRETDB_CACHE (default ~/.cache/arr), kept between runs.
set -euo pipefail
version=v1.24.2
cache=${ARR_FERRETDB_CACHE:-"$HOME/.cache/arr"}
bin="$cache/ferretdb-$version"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "install-ferretdb: Go is needed to build FerretDB" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOFLAGS=-mod=mod
echo "install-ferretdb: building FerretDB $version (a few minutes the first time)" >&2
go mod init arr-ferretdb-build >/dev/null 2>&1
go get -tool "github.com/FerretDB/FerretDB/cmd/ferretdb@$version" >&2
# A binary built from the module cache panics at start: FerretDB reads its version from
# build/version/version.txt, which its release tooling writes and the module does not ship.
# So build from a writable copy of the module with that one file added.
src=$(go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
cp -r "$src" "$work/ferretdb"
chmod -R u+w "$work/ferretdb"
echo "$version" >"$work/ferretdb/build/version/version.txt"
(cd "$work/ferretdb" && go build -trimpath -buildvcs=false -o "$work/bin/ferretdb" ./cmd/ferretdb) >&2
"$work/bin/ferretdb" --version >&2
install -m 0755 "$work/bin/ferretdb" "$bin"
echo "$bin"
