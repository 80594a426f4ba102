"""The chat demo (web/index.html) in Chromium: learning from feedback, the UI, untrusted text, export and import, CSP.

Needs the built site (build_scripts/build_site.py); the learning test also
needs CLINC150 under ../shared/data and skips without it.
"""

from __future__ import annotations

import re
import statistics

import pytest
from chat_helpers import (
    CHAT_PAGE,
    PREFERRED_STRATEGY,
    chat_turns,
    clinc_queries,
    notice_texts,
    open_chat,
    save_screenshot,
    snapshot,
)

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

# Loading Pyodide in the worker takes seconds, far beyond expect()'s 5 s default on a busy machine.
LOAD_TIMEOUT_MS = 60_000

STRATEGY_LABELS = {"Concise", "Step by step", "Empathetic", "With examples"}

# Messages the scripted user sends in the learning test, and the windows compared.
LEARNING_MESSAGES = 600
WINDOW = 50
# Thumbs-up rate of a router that picks one of the four strategies at random.
RANDOM_RATE = 0.25
# Required rise of the last window's rate over the first's. The run is
# deterministic (seeded query order and router, ticks paused), so the margin
# guards against learning that stopped working rather than against noise.
MIN_RISE = 0.15


def test_thumbs_up_rate_rises(page, site_url, shared_data_dir):
    open_chat(page, site_url)
    queries = clinc_queries(shared_data_dir, "test", LEARNING_MESSAGES, seed=7)

    ups = page.evaluate(
        """async (queries) => {
            const ups = [];
            for (const [text, preferred] of queries) {
                const answer = await window.sonaDemo.send(text);
                const up = answer.strategy === preferred;
                await window.sonaDemo.feedback(answer.id, up);
                ups.push(up);
            }
            return ups;
        }""",
        [[text, PREFERRED_STRATEGY[domain]] for text, domain in queries],
    )
    stats = page.evaluate("window.sonaDemo.stats()")

    first = statistics.fmean(ups[:WINDOW])
    last = statistics.fmean(ups[-WINDOW:])
    windows = [round(statistics.fmean(ups[i : i + WINDOW]), 2) for i in range(0, len(ups), WINDOW)]
    print(f"thumbs-up rate per {WINDOW} messages: {windows}; first {first:.2f}, last {last:.2f}")

    save_screenshot(page, "chat-after-learning.png")
    assert len(ups) == LEARNING_MESSAGES
    assert stats["outcomes"] == LEARNING_MESSAGES
    assert stats["patterns"] > 0
    assert stats["backgroundCycles"] >= LEARNING_MESSAGES // 10
    # Saves happen during a steady stream of feedback, not only when it stops.
    assert stats["version"] >= 3
    assert last > RANDOM_RATE + MIN_RISE, f"last {WINDOW} messages: {last:.2f}, windows {windows}"
    assert last >= first + MIN_RISE, f"first {first:.2f}, last {last:.2f}, windows {windows}"


def test_chat_through_the_ui(page, site_url):
    page.goto(site_url + CHAT_PAGE)
    # The progress bar moves while Pyodide loads in the worker, and the
    # page's main thread keeps running scripts meanwhile.
    # wait_for_function would evaluate a string, which this page's CSP forbids.
    expect(page.locator("#load-progress")).to_have_attribute("value", re.compile("[1-9]"), timeout=LOAD_TIMEOUT_MS)
    assert page.evaluate("1 + 1") == 2
    expect(page.locator("#message-input")).to_be_enabled(timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#loading")).to_be_hidden()
    page.evaluate("window.sonaDemo.pauseTicks()")

    page.fill("#message-input", "how do I transfer money to my savings account")
    page.press("#message-input", "Enter")
    answer = page.locator("li.message-bot").last
    expect(answer).to_be_visible()
    assert answer.locator(".strategy-chip").inner_text() in STRATEGY_LABELS
    expect(page.locator("#message-input")).to_have_value("")

    answer.locator(".vote-up").click()
    expect(page.locator('[data-stat="outcomes"]')).to_have_text("1")
    expect(answer.locator(".vote-up")).to_be_disabled()
    expect(answer.locator(".vote-up")).to_have_attribute("aria-pressed", "true")
    expect(answer.locator(".feedback-status")).to_contain_text("learned")

    answer.locator("details.why summary").click()
    expect(answer.locator(".why-scores tr")).to_have_count(5)
    expect(answer.locator(".why-summary")).to_contain_text("probability")

    page.locator(".suggestion", has_text="tell me a joke").click()
    expect(page.locator("li.message-bot")).to_have_count(2)
    page.locator("li.message-bot").last.locator(".vote-down").click()
    expect(page.locator('[data-stat="outcomes"]')).to_have_text("2")
    expect(page.locator('[data-stat="rate"]')).to_have_text("50%")
    expect(page.locator("#rate-chart polyline")).to_have_count(1)

    page.evaluate("window.sonaDemo.whenSaved()")
    save_screenshot(page, "chat.png")


PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>window.__injected = 1</script>",
    '"><svg onload=alert(2)><b>bold</b>',
]


def test_html_payload_shown_as_text(page, site_url, request_log):
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    open_chat(page, site_url)

    for count, payload in enumerate(PAYLOADS, start=1):
        page.fill("#message-input", payload)
        page.press("#message-input", "Enter")
        expect(page.locator("li.message-bot")).to_have_count(count)

    user_texts = page.locator("li.message-user .message-text").all_text_contents()
    assert user_texts == PAYLOADS
    answers = " ".join(page.locator("li.message-bot .message-text").all_text_contents())
    assert "<img src=x" in answers
    messages = page.locator("#messages")
    assert messages.locator("img").count() == 0
    assert messages.locator("script").count() == 0
    assert messages.locator("b").count() == 0
    # The only SVGs are the thumb icons of the vote buttons.
    assert messages.locator("svg").count() == messages.locator(".vote svg").count()
    assert page.evaluate("window.__injected") is None
    assert dialogs == []
    assert not [url for url in request_log if url.rstrip("/").endswith("/x")]


def test_export_import_round_trip(page, site_url):
    open_chat(page, site_url)
    chat_turns(page, [(f"how do i pay my {bill} bill", index % 3 != 0) for index, bill in enumerate(
        ["water", "phone", "power", "gas", "internet", "card", "rent", "cable", "insurance", "tax"]
    )])
    before = snapshot(page)
    exported = bytes(page.evaluate("async () => Array.from(await window.sonaDemo.exportState())"))

    with page.expect_download() as download_info:
        page.click("#export-button")
    download = download_info.value
    assert download.suggested_filename.endswith(".sona")
    embedder = page.evaluate("window.sonaDemo.stats()")["embedder"]
    assert download.suggested_filename.startswith(f"sona-chat-{embedder}-")
    assert open(download.path(), "rb").read() == exported

    page.evaluate("window.sonaDemo.reset()")
    assert page.evaluate("window.sonaDemo.stats()")["outcomes"] == 0

    page.set_input_files("#import-file", files=[{"name": "learned.sona", "mimeType": "application/octet-stream", "buffer": exported}])
    expect(page.locator(".notice-info", has_text="Imported learned.sona")).to_be_visible()
    after = snapshot(page)
    for key in ("outcomes", "models", "patterns", "background_cycles", "trajectories", "probe"):
        assert after[key] == before[key], key

    bad_files = {"garbage.sona": b"this is not a state", "truncated.sona": exported[: len(exported) // 2]}
    for name, data in bad_files.items():
        page.set_input_files("#import-file", files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
        notice = page.locator(".notice-error", has_text=f"{name} is not a saved state of this chat")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("Nothing was changed")
        unchanged = snapshot(page)
        assert unchanged == after, name

    with pytest.raises(playwright_api.Error, match="is not a saved state of this chat"):
        page.evaluate("window.sonaDemo.importState(new Uint8Array([1, 2, 3]), 'three-bytes.sona')")
    assert snapshot(page) == after


def test_content_security_policy(page, site_url):
    open_chat(page, site_url)
    policy = page.get_attribute('meta[http-equiv="Content-Security-Policy"]', "content")
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy
    assert "unsafe-inline" not in policy
    assert "http" not in policy

    violations = page.evaluate(
        """() => new Promise((resolve) => {
            const seen = [];
            document.addEventListener("securitypolicyviolation", (event) => seen.push(event.violatedDirective));
            const script = document.createElement("script");
            script.textContent = "window.__inline = 1";
            document.body.append(script);
            setTimeout(() => resolve(seen), 200);
        })"""
    )
    assert page.evaluate("window.__inline") is None
    assert any(directive.startswith("script-src") for directive in violations), violations
    # Pyodide runs under this policy: the router returned a decision.
    assert page.evaluate("window.sonaDemo.send('hello there')")["strategy"]
    assert not [text for text in notice_texts(page) if "could not start" in text]


def test_embedder_switch_and_fallback(page, site_url, site_dir):
    if not (site_dir / "models" / "wordllama" / "manifest.json").is_file():
        pytest.skip(f"no WordLlama model files under {site_dir / 'models'}: the site was built without models")
    # WordLlama is the default; without its files the page starts on the hashed embedder.
    page.route("**/models/wordllama/**", lambda route: route.fulfill(status=404, body="not found"))
    open_chat(page, site_url)
    select = page.locator("#embedder-select")
    expect(page.locator(".notice", has_text="wordllama embedder could not be loaded")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(select).to_have_value("hashed")

    # Switching to it while its files are still missing fails and keeps the hashed embedder.
    select.select_option("wordllama")
    expect(page.locator(".notice-error", has_text="wordllama embedder could not be loaded")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(select).to_have_value("hashed")
    expect(select).to_be_enabled()
    assert page.evaluate("window.sonaDemo.send('what is my balance')")["strategy"]
    assert page.evaluate("window.sonaDemo.stats()")["embedder"] == "hashed"

    page.unroute("**/models/wordllama/**")
    select.select_option("wordllama")
    expect(page.locator(".message-system", has_text="Switched to the WordLlama")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    chat_turns(page, [("how do i reset my card pin", True)])
    stats = page.evaluate("window.sonaDemo.stats()")
    assert stats["embedder"] == "wordllama"
    assert stats["outcomes"] == 1
    assert stats["storage"] == "indexeddb"
