#!/usr/bin/env bash
# System packages the test suite needs beyond Python: PostgreSQL's server binaries, for
# tests/test_team_tracking.py and tests/test_mlflow_ui.py (without them their PostgreSQL cases are
# skipped), and Chromium at /usr/bin/chromium, the browser tests/test_mlflow_ui.py drives through
# Playwright (skipped without it), and g++ for the fused LSTM/GRU kernel (make setup compiles
# it; tests/test_fused_engine.py fails without it). Idempotent: installs only what is missing; needs root (as CI
# runs) or sudo. Debian/Ubuntu (apt-get) only.
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

have_chromium() {
    [ -x /usr/bin/chromium ]
}

have_cxx() {
    command -v g++ >/dev/null
}

missing=()
if have_postgres; then
    echo "ci_system_packages: PostgreSQL already installed"
else
    missing+=(postgresql)
fi
if have_chromium; then
    echo "ci_system_packages: Chromium already installed"
else
    missing+=(chromium)
fi
if have_cxx; then
    echo "ci_system_packages: g++ already installed"
else
    missing+=(g++)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "ci_system_packages: no apt-get; install ${missing[*]} yourself (initdb/pg_ctl, /usr/bin/chromium)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
# Through env: sudo would drop an exported DEBIAN_FRONTEND.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
have_postgres || { echo "ci_system_packages: PostgreSQL install failed" >&2; exit 1; }
have_chromium || { echo "ci_system_packages: Chromium install failed" >&2; exit 1; }
have_cxx || { echo "ci_system_packages: g++ install failed" >&2; exit 1; }
echo "ci_system_packages: installed ${missing[*]}"
