#!/usr/bin/env bash
# Installs Debian's curl for the tests that run the README's curl lines (test/cli/readme.test.ts)
# and curl's HTTP/2 and gRPC checks (test/h2, test/grpc, test/acme), unless curl is already there.
# Needs root (apt-get).
set -euo pipefail
exec bash "$(dirname "$0")/apt-install.sh" install-curl curl curl
