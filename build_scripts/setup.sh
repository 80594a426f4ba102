#!/usr/bin/env bash
# Prepare a Debian 12 machine (as root) or an existing checkout for tests and
# the demo: system packages, .venv, Python packages, dist/.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*"; }

apt_updated=0
apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        log "error: missing system packages ($*); run as root or install them with apt-get"
        exit 1
    fi
    if [[ $apt_updated -eq 0 ]]; then
        apt-get update -q
        apt_updated=1
    fi
    apt-get install -y -q "$@"
}

# Chromium runs the browser tests and Node the Pyodide tests. npm fetches
# Pyodide from the npm registry on a machine without the download cache.
if [[ ! -x /usr/bin/chromium ]]; then
    log "installing chromium"
    apt_install chromium chromium-driver
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing nodejs and npm"
    apt_install nodejs npm
fi

find_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ ! -x .venv/bin/python ]]; then
    python=$(find_python) || {
        log "error: no python3.11 or python3 >= 3.11 on PATH"
        exit 1
    }
    log "creating .venv with $($python --version)"
    "$python" -m venv .venv
fi

# The stamp contains a hash of everything that decides the installed packages,
# so an unchanged checkout skips pip entirely.
stamp=.venv/.sona-setup-stamp
wanted=$(cat requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]] || ! .venv/bin/python -c 'import sona_web' 2>/dev/null; then
    log "installing Python packages into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
    # hatchling comes from requirements-dev.txt, so the editable install
    # needs no isolated build environment.
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e .
    echo "$wanted" >"$stamp"
else
    log ".venv is up to date"
fi

if [[ -f package.json ]]; then
    npm_stamp=node_modules/.sona-setup-stamp
    npm_wanted=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [[ ! -f $npm_stamp || $(cat "$npm_stamp") != "$npm_wanted" ]]; then
        log "installing npm packages"
        if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
        echo "$npm_wanted" >"$npm_stamp"
    fi
fi

log "building dist/"
.venv/bin/python build_scripts/build_site.py
