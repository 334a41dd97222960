#!/usr/bin/env bash
# Installs Debian's nghttp2-client (nghttp, h2load) for the HTTP/2 tests (test/h2) and the
# benchmark's HTTP/2 rows, unless h2load is already there. Needs root (apt-get).
set -euo pipefail
exec bash "$(dirname "$0")/apt-install.sh" install-nghttp2 nghttp2-client h2load nghttp
