#!/usr/bin/env bash
# Set up (see setup.sh), then run every test once in one pytest session:
# host tests, the Pyodide tests in Node against dist/pyodide, and the browser
# tests in Chromium. Extra arguments go to pytest, e.g. `-k router -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash build_scripts/setup.sh

# An explicit --dist-dir makes the Pyodide tests fail, not skip, if dist/pyodide
# is missing.
exec .venv/bin/python -m pytest tests --dist-dir=dist/pyodide --rt node "$@" </dev/null
