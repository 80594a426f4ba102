"""Serve a folder over HTTP on 127.0.0.1 with the MIME types Pyodide needs.

Usage: ``python build_scripts/serve_site.py [--dir dist/site] [--port 8000]``

Browsers compile ``.wasm`` with streaming only when it is sent as
``application/wasm``, and load ``.mjs`` modules only with a JavaScript MIME
type. The system MIME table does not always list them. Every response is sent
with ``Cache-Control: no-cache`` so that a rebuilt site is never mixed with a
cached older one.
"""

from __future__ import annotations

import argparse
import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["MIME_TYPES", "SiteRequestHandler", "create_server", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".ts": "text/plain",
    ".map": "application/json",
}


class SiteRequestHandler(SimpleHTTPRequestHandler):
    """Static file handler with MIME_TYPES and no-cache headers, logging requests only when verbose."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    verbose = False

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if self.verbose:
            super().log_message(format, *args)


def create_server(directory: Path, port: int = 0, *, verbose: bool = False) -> ThreadingHTTPServer:
    """Return a server for ``directory`` bound to 127.0.0.1; port 0 picks a free port.

    Call ``serve_forever()`` on it (in a thread for tests) and ``shutdown()``
    plus ``server_close()`` to stop it.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"site folder {directory} not found: run build_scripts/build_site.py first")
    handler_class = type("Handler", (SiteRequestHandler,), {"verbose": verbose})
    handler = functools.partial(handler_class, directory=str(directory))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=REPO_ROOT / "dist" / "site", help="folder to serve (default: dist/site)"
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (default: 8000)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)

    try:
        server = create_server(args.dir, args.port, verbose=not args.quiet)
    except (FileNotFoundError, OSError) as error:
        print(f"serve_site: error: {error}", file=sys.stderr)
        return 1

    host, port = server.server_address[:2]
    print(f"serve_site: serving {args.dir} at http://{host}:{port}/ (Ctrl+C stops)", flush=True)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
