#!/usr/bin/env bash
# Set up (see setup.sh), then serve dist/site on 127.0.0.1:$PORT (default 8000)
# until Ctrl+C.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash build_scripts/setup.sh

port=${PORT:-8000}
if [[ -f dist/site/index.html ]]; then
    page=""
else
    # Before the chat demo exists, point at the first page the site has.
    page=$(cd dist/site && find . -maxdepth 1 -name '*.html' -printf '%f\n' | sort | head -n 1)
fi
echo "run: open http://127.0.0.1:${port}/${page}"
exec .venv/bin/python build_scripts/serve_site.py --dir dist/site --port "$port"
