#!/usr/bin/env bash
# Installs Python's grpcio (the second gRPC implementation of test/grpc) from PyPI into a
# virtual environment of its own, ~/.cache/arr/grpcio (kept between runs), unless it is there.
set -euo pipefail

venv="${HOME}/.cache/arr/grpcio"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import grpc' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
command -v python3 >/dev/null || { echo "install-grpcio: python3 is needed" >&2; exit 1; }
echo "install-grpcio: installing grpcio from PyPI into $venv" >&2
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'grpcio>=1.60' >&2
"$venv/bin/python" -c 'import grpc' || { echo "install-grpcio: grpc does not import after the install" >&2; exit 1; }
echo "$venv/bin/python"
