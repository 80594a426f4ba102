"""Launch settings of Debian's Chromium for the tests and benchmarks (through Playwright).

Without the networking flags Chromium keeps trying to reach outside hosts for
component updates, sync and field trials. With them, a headless page talks
only to the server it was pointed at.
"""

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
