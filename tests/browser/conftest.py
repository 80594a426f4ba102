"""Fixtures for tests that drive the built site in the system Chromium.

- ``site_dir``: the built site (``dist/site``, or ``$SONA_SITE_DIR``); tests
  skip when it is missing.
- ``serve_directory``: a context manager that serves any folder on
  127.0.0.1 in a background thread; ``site_url`` serves ``site_dir`` once per
  session.
- ``browser``: Chromium launched once per session with the flags that stop it
  from contacting outside hosts.
- ``request_log``, ``browser_context`` and ``page``: a fresh browser context
  per test that records every request URL (from the page and its workers)
  and aborts any request to a host other than 127.0.0.1.
  ``request_log.assert_only_local()`` checks that nothing left the machine,
  and the context fixture runs the same check after every test.
- ``blank_page_url``: a same-origin empty HTML page, fulfilled by Playwright
  itself, for tests that import modules with ``page.evaluate``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_SITE_PATH = REPO_ROOT / "build_scripts" / "serve_site.py"
DEFAULT_SITE_DIR = REPO_ROOT / "dist" / "site"

def _load_chromium_settings():
    spec = importlib.util.spec_from_file_location("chromium", REPO_ROOT / "build_scripts" / "chromium.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CHROMIUM = _load_chromium_settings()
CHROMIUM_PATH = _CHROMIUM.CHROMIUM_PATH
CHROMIUM_ARGS = _CHROMIUM.CHROMIUM_ARGS
LOCAL_HOSTS = {"127.0.0.1"}
BLANK_PAGE = "__blank__.html"

# Loading Pyodide takes about 3 s on an idle machine. Playwright's default
# timeout is 30 s, and 60 s leaves room for a busy two-core machine while a
# hung page still fails.
DEFAULT_TIMEOUT_MS = 60_000


def _load_serve_site():
    spec = importlib.util.spec_from_file_location("serve_site", SERVE_SITE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    server = _load_serve_site().create_server(Path(directory), 0)
    thread = threading.Thread(target=server.serve_forever, name=f"serve {directory}", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def is_local_url(url: str) -> bool:
    """Tell whether ``url`` stays on this machine (127.0.0.1, or a data:/blob: URL)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


class RequestLog(list):
    """Request URLs in the order the browser context made them."""

    def outside(self) -> list[str]:
        return sorted({url for url in self if not is_local_url(url)})

    def assert_only_local(self) -> None:
        """Fail with the offending URLs if any request went to a host other than 127.0.0.1."""
        assert not self.outside(), f"requests left 127.0.0.1: {self.outside()}"


@pytest.fixture(scope="session")
def site_dir() -> Path:
    """Return the built site folder, or skip when it has not been built."""
    path = Path(os.environ.get("SONA_SITE_DIR", DEFAULT_SITE_DIR)).resolve()
    if not (path / "sona.js").is_file() or not (path / "pyodide" / "pyodide.asm.wasm").is_file():
        pytest.skip(f"built site not found at {path}: run build_scripts/build_site.py")
    return path


@pytest.fixture(scope="session")
def serve_directory() -> Callable[[Path], contextlib.AbstractContextManager[str]]:
    """Return a context manager that serves a folder on 127.0.0.1 and yields its base URL."""
    return _serve


@pytest.fixture(scope="session")
def site_url(site_dir: Path) -> Iterator[str]:
    """Serve the built site for the whole session; yields ``http://127.0.0.1:PORT/``."""
    with _serve(site_dir) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Launch the system Chromium once per session."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM_PATH).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM_PATH}")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def request_log() -> RequestLog:
    """Every request URL that the test's browser context made."""
    return RequestLog()


@pytest.fixture
def browser_context(browser, request_log: RequestLog):
    """A fresh context that records requests and aborts those leaving 127.0.0.1.

    After the test it also fails the test (as a teardown error) if any request
    was for another host, so no browser test can pass while reaching out.
    """
    context = browser.new_context()
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.on("request", lambda request: request_log.append(request.url))

    def guard(route) -> None:
        if is_local_url(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    try:
        yield context
    finally:
        context.close()
    request_log.assert_only_local()


@pytest.fixture
def console_messages() -> list[str]:
    """Console output of the test's pages, for failure messages."""
    return []


@pytest.fixture
def page(browser_context, console_messages: list[str]):
    """A page of ``browser_context``; its console and page errors go to ``console_messages``."""
    page = browser_context.new_page()
    page.on("console", lambda message: console_messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console_messages.append(f"pageerror: {error}"))
    return page


@pytest.fixture
def blank_page_url(page, site_url: str) -> str:
    """URL of an empty same-origin page on the site server, fulfilled by Playwright."""
    url = site_url + BLANK_PAGE
    page.route(
        url,
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body="<!doctype html><meta charset=utf-8><title>sona-web test</title>",
        ),
    )
    return url
