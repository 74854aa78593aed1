#!/usr/bin/env bash
# System packages the test suite needs beyond Python: PostgreSQL's server binaries, for
# tests/test_team_tracking.py (without them its PostgreSQL case is skipped). Idempotent: installs
# only what is missing; needs root (as CI runs) or sudo. Debian/Ubuntu (apt-get) only.
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

if have_postgres; then
    echo "ci_system_packages: PostgreSQL already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "ci_system_packages: no apt-get; install PostgreSQL (initdb, pg_ctl) yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
# Through env: sudo would drop an exported DEBIAN_FRONTEND.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_postgres || { echo "ci_system_packages: PostgreSQL install failed" >&2; exit 1; }
echo "ci_system_packages: installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
