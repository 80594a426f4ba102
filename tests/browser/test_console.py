"""The Python console (web/console.js) in Chromium: on its own page and inside the chat page.

Code runs in the Pyodide worker through the RUN_PYTHON message; output,
results and tracebacks must appear as text.
"""

from __future__ import annotations

import pytest
from chat_helpers import CONSOLE_PAGE, chat_turns, open_chat, save_screenshot

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

LOAD_TIMEOUT_MS = 60_000


def run_line(page, code: str) -> None:
    """Type one line into the console and press Enter."""
    field = page.locator(".console-input")
    field.fill(code)
    field.press("Enter")


def wait_idle(page) -> None:
    expect(page.locator(".console-prompt")).to_have_text(">>>")
    expect(page.locator(".console-input")).to_be_enabled()


def test_console_page_runs_sona_web(page, site_url):
    page.goto(site_url + CONSOLE_PAGE)
    expect(page.locator("#console-status")).to_have_text("Ready.", timeout=LOAD_TIMEOUT_MS)
    output = page.locator(".console-output")
    expect(output.locator(".console-banner")).to_contain_text("router")

    run_line(page, "import sona_web, numpy")
    wait_idle(page)
    run_line(page, "sona_web.__name__, numpy.__version__")
    expect(output.locator(".console-result").last).to_contain_text("('sona_web', '2.0.2')")

    # A learning call: five thumbs up for one message, then the router's count.
    field = page.locator(".console-input")
    field.fill("x = embedder.embed(['what is my account balance'])[0]")
    field.press("Shift+Enter")
    field.press_sequentially("for _ in range(5): router.record_outcome(x, 'concise', 1.0)")
    field.press("Shift+Enter")
    field.press_sequentially("router.stats()['models']['concise']['count']")
    field.press("Enter")
    wait_idle(page)
    expect(output.locator(".console-result").last).to_have_text("5")

    # An unfinished block continues on the next line instead of running.
    run_line(page, "for i in range(3):")
    expect(field).to_have_value("for i in range(3):\n    ")
    field.press_sequentially("print(i * i)")
    field.press("Enter")
    wait_idle(page)
    expect(output.locator(".console-stdout").last).to_have_text("0\n1\n4\n")

    run_line(page, "1 / 0")
    wait_idle(page)
    error = output.locator(".console-error").last
    expect(error).to_contain_text("ZeroDivisionError: division by zero")
    expect(error).to_contain_text('File "<console-')

    run_line(page, "print('<b>not bold</b><img src=x onerror=alert(1)>')")
    wait_idle(page)
    expect(output.locator(".console-stdout").last).to_have_text("<b>not bold</b><img src=x onerror=alert(1)>\n")
    assert output.locator("b, img").count() == 0

    # ArrowUp walks back through the history, ArrowDown returns to the draft.
    field.press("ArrowUp")
    expect(field).to_have_value("print('<b>not bold</b><img src=x onerror=alert(1)>')")
    field.press("ArrowUp")
    expect(field).to_have_value("1 / 0")
    field.press("ArrowDown")
    field.press("ArrowDown")
    expect(field).to_have_value("")

    save_screenshot(page, "console.png")


def test_chat_console_uses_live_router(page, site_url):
    open_chat(page, site_url)
    chat_turns(page, [("what is my credit score", True), ("tell me a joke", False), ("book a table for two", True)])

    page.click("#dev-console summary")
    output = page.locator("#console .console-output")
    expect(output.locator(".console-banner")).to_contain_text("live AdaptiveRouter")
    run_line(page, "router.stats()['outcomes']")
    expect(output.locator(".console-result").last).to_have_text("3")

    # A change made in the console is the page's change: stats and saves see it.
    run_line(page, "router.record_outcome(embedder.embed(['hello'])[0], 'empathetic', 1.0)")
    wait_idle(page)
    page.evaluate("window.sonaDemo.whenSaved()")
    assert page.evaluate("window.sonaDemo.stats()")["outcomes"] == 4
    expect(page.locator('[data-stat="outcomes"]')).to_have_text("4")
