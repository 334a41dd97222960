#!/usr/bin/env bash
# Installs Debian's apache2-utils (htpasswd) for the bcrypt hashes of the basic-auth tests
# (test/unit/policy.test.ts, test/proxy/policies.test.ts) and the policies benchmark, unless
# htpasswd is already there. Needs root (apt-get).
set -euo pipefail
exec bash "$(dirname "$0")/apt-install.sh" install-htpasswd apache2-utils htpasswd
