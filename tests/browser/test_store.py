"""Persistence of the chat demo in IndexedDB (web/store.js, web/demo/persistence.js), in Chromium.

Covers reloads, a browser restart with a persistent profile, two tabs
learning at once, IndexedDB missing or full, a corrupt stored record, and
the atomicity and schema of the store itself.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from chat_helpers import chat_turns, notice_texts, open_chat, snapshot

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

TURNS = [
    ("how much money is in my savings account", True),
    ("tell me a joke about cats", False),
    ("what is the best way to cook rice", True),
    ("is my flight to denver on time", False),
    ("remind me to call mom at five", True),
    ("what is my credit card limit", True),
    ("how are you doing today", False),
    ("when is the next holiday at work", True),
]


def _browser_conftest():
    # The Chromium path and flags live in this folder's conftest.py; it is
    # loaded under its own name because every test folder has a conftest.
    path = Path(__file__).with_name("conftest.py")
    spec = importlib.util.spec_from_file_location("browser_conftest_flags", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reload_restores_exactly(page, site_url):
    page.add_init_script(
        """window.__persistRequests = 0;
        const persist = navigator.storage.persist.bind(navigator.storage);
        navigator.storage.persist = () => { window.__persistRequests += 1; return persist(); };"""
    )
    open_chat(page, site_url)
    chat_turns(page, TURNS * 2)
    before = snapshot(page)
    assert before["outcomes"] == len(TURNS) * 2
    assert page.evaluate("window.__persistRequests") >= 1

    page.reload()
    page.evaluate("window.sonaDemo.ready")
    page.evaluate("window.sonaDemo.pauseTicks()")
    after = snapshot(page)

    assert after == before
    assert any("Restored" in text for text in notice_texts(page))
    # The restored history is shown, without vote buttons for old answers.
    expect(page.locator("li.message-user")).to_have_count(len(TURNS) * 2)
    expect(page.locator("li.message-bot .vote-up:enabled")).to_have_count(0)


def test_restart_with_persistent_profile(browser, site_url, request_log, tmp_path):
    flags = _browser_conftest()

    def launch():
        context = browser.browser_type.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=flags.CHROMIUM_PATH, args=flags.CHROMIUM_ARGS
        )
        context.set_default_timeout(flags.DEFAULT_TIMEOUT_MS)
        context.on("request", lambda request: request_log.append(request.url))
        context.route(
            "**/*",
            lambda route: route.continue_() if flags.is_local_url(route.request.url) else route.abort("blockedbyclient"),
        )
        return context

    context = launch()
    try:
        page = context.new_page()
        open_chat(page, site_url)
        chat_turns(page, TURNS)
        before = snapshot(page)
    finally:
        context.close()

    context = launch()
    try:
        page = context.new_page()
        open_chat(page, site_url)
        after = snapshot(page)
    finally:
        context.close()

    assert before["outcomes"] == len(TURNS)
    assert after == before
    request_log.assert_only_local()


RUN_TURNS_IN_PAGE = """(turns) => {
    window.__run = (async () => {
        for (const [text, up] of turns) {
            const answer = await window.sonaDemo.send(text);
            await window.sonaDemo.feedback(answer.id, up);
        }
    })();
}"""


WAIT_FOR_OUTCOMES = """async (total) => {
    for (let i = 0; i < 100; i += 1) {
        const { outcomes } = await window.sonaDemo.stats();
        if (outcomes === total) return outcomes;
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return (await window.sonaDemo.stats()).outcomes;
}"""

READ_PENDING_COUNT = """async () => {
    const store = await import("./store.js");
    return (await store.readSnapshot(await store.openDatabase())).pending.length;
}"""


def test_two_tabs_lose_no_learning(browser_context, site_url):
    first = browser_context.new_page()
    second = browser_context.new_page()
    open_chat(first, site_url)
    open_chat(second, site_url)

    # Both tabs chat at the same time, so their saves interleave.
    first.evaluate(RUN_TURNS_IN_PAGE, [list(turn) for turn in TURNS * 2])
    second.evaluate(RUN_TURNS_IN_PAGE, [[text.upper(), not up] for text, up in TURNS * 2])
    first.evaluate("window.__run")
    second.evaluate("window.__run")
    total = len(TURNS) * 4

    # Each tab catches up with the other's learning.
    for page in (first, second):
        page.evaluate("window.sonaDemo.whenSaved()")
        assert page.evaluate(WAIT_FOR_OUTCOMES, total) == total

    # A tab that closes before its next save loses nothing: its outcomes
    # were stored on arrival, and the next tab to start folds them in.
    first.evaluate("window.sonaDemo.pauseSaves()")
    chat_turns(first, TURNS[:2])
    first.close()
    assert second.evaluate(READ_PENDING_COUNT) == 2

    third = browser_context.new_page()
    open_chat(third, site_url)
    stats = third.evaluate("window.sonaDemo.stats()")
    assert stats["outcomes"] == total + 2
    assert sum(model["count"] for model in stats["models"].values()) == total + 2
    assert third.evaluate(READ_PENDING_COUNT) == 0
    # The chart's feedback log has every feedback of both tabs once.
    assert len(stats["thumbsUp"]) == total + 2


def test_indexeddb_unavailable_uses_memory(page, site_url):
    page.add_init_script(
        """IDBFactory.prototype.open = function () {
            throw new DOMException("The user denied permission to access the database.", "SecurityError");
        };"""
    )
    open_chat(page, site_url)
    chat_turns(page, TURNS[:3])

    stats = page.evaluate("window.sonaDemo.stats()")
    assert stats["storage"] == "memory"
    assert stats["outcomes"] == 3
    notices = notice_texts(page)
    assert any("kept in memory only" in text and "IndexedDB" in text for text in notices), notices
    expect(page.locator(".notice-warning")).to_contain_text("kept in memory only")
    expect(page.locator("#storage-status")).to_contain_text("in memory only")


def test_quota_exceeded_uses_memory(page, site_url):
    page.add_init_script(
        """for (const method of ["add", "put"]) {
            IDBObjectStore.prototype[method] = function () {
                throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
            };
        }"""
    )
    open_chat(page, site_url)
    chat_turns(page, TURNS[:3])

    stats = page.evaluate("window.sonaDemo.stats()")
    assert stats["storage"] == "memory"
    assert stats["outcomes"] == 3
    notices = notice_texts(page)
    assert any("storage for this site is full" in text for text in notices), notices


CORRUPT_STORED_STATE = """async () => {
    const store = await import("./store.js");
    const db = await store.openDatabase();
    const { state } = await store.readSnapshot(db);
    const bytes = state.bytes.slice();
    for (let i = 64; i < 96; i += 1) bytes[i] ^= 0xff;
    await store.commitState(db, { ...state, bytes });
    return state.version;
}"""


def test_corrupt_record_quarantined(page, site_url):
    open_chat(page, site_url)
    chat_turns(page, TURNS[:4])
    page.evaluate("window.sonaDemo.whenSaved()")
    corrupted_lineage = page.evaluate("window.sonaDemo.stats()")["lineage"]
    page.evaluate(CORRUPT_STORED_STATE)

    page.reload()
    page.evaluate("window.sonaDemo.ready")
    page.evaluate("window.sonaDemo.pauseTicks()")

    notices = notice_texts(page)
    assert any("could not be loaded" in text and "quarantine" in text for text in notices), notices
    stats = page.evaluate("window.sonaDemo.stats()")
    assert stats["outcomes"] == 0
    assert stats["storage"] == "indexeddb"
    quarantined = page.evaluate(
        """async () => {
            const store = await import("./store.js");
            const entries = await store.listQuarantine(await store.openDatabase());
            return entries.map((entry) => ({ reason: entry.reason, bytes: entry.record.bytes.length }));
        }"""
    )
    assert len(quarantined) == 1
    assert quarantined[0]["bytes"] > 0
    assert "checksum" in quarantined[0]["reason"]

    # The fresh start is saved, under a new lineage, and keeps learning.
    chat_turns(page, TURNS[:2])
    page.evaluate("window.sonaDemo.whenSaved()")
    stored = page.evaluate(
        """async () => {
            const store = await import("./store.js");
            const { state } = await store.readSnapshot(await store.openDatabase());
            return { lineage: state.lineage, version: state.version };
        }"""
    )
    stats = page.evaluate("window.sonaDemo.stats()")
    assert stats["outcomes"] == 2
    assert stored["lineage"] == stats["lineage"]
    assert stored["lineage"] != corrupted_lineage
    assert stored["version"] == stats["version"]


def test_commit_is_one_transaction(page, blank_page_url):
    page.goto(blank_page_url)
    result = page.evaluate(
        """async () => {
            const store = await import("./store.js");
            const db = await store.openDatabase("sona-atomic-test");
            await store.commitState(db, { version: 1 });
            const key = await store.addPending(db, { quality: 1 });

            // A failure after the state was put must undo the put as well.
            const originalDelete = IDBObjectStore.prototype.delete;
            IDBObjectStore.prototype.delete = function () {
                throw new DOMException("simulated failure", "UnknownError");
            };
            let failure = null;
            try {
                await store.commitState(db, { version: 2 }, [key]);
            } catch (error) {
                failure = error.name;
            } finally {
                IDBObjectStore.prototype.delete = originalDelete;
            }
            const afterFailure = await store.readSnapshot(db);

            await store.commitState(db, { version: 3 }, [key]);
            const afterSuccess = await store.readSnapshot(db);
            return {
                failure,
                stores: [...db.objectStoreNames],
                versionAfterFailure: afterFailure.state.version,
                pendingAfterFailure: afterFailure.pending.map((item) => item.key),
                versionAfterSuccess: afterSuccess.state.version,
                pendingAfterSuccess: afterSuccess.pending.length,
                key,
            };
        }"""
    )
    assert result["failure"] == "UnknownError"
    assert sorted(result["stores"]) == ["pending", "quarantine", "state"]
    assert result["versionAfterFailure"] == 1
    assert result["pendingAfterFailure"] == [result["key"]]
    assert result["versionAfterSuccess"] == 3
    assert result["pendingAfterSuccess"] == 0


def test_quarantine_moves_record(page, blank_page_url):
    page.goto(blank_page_url)
    result = page.evaluate(
        """async () => {
            const store = await import("./store.js");
            const db = await store.openDatabase("sona-quarantine-test");
            await store.commitState(db, { version: 4, bytes: new Uint8Array([1, 2, 3]) });
            const pendingKey = await store.addPending(db, { quality: 0 });
            const { state } = await store.readSnapshot(db);
            await store.quarantineState(db, state, "checksum mismatch", [pendingKey]);
            const snapshot = await store.readSnapshot(db);
            const entries = await store.listQuarantine(db);
            return { state: snapshot.state, pending: snapshot.pending.length, entries };
        }"""
    )
    assert result["state"] is None
    assert result["pending"] == 0
    assert len(result["entries"]) == 1
    assert result["entries"][0]["reason"] == "checksum mismatch"
    assert result["entries"][0]["record"]["version"] == 4


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("null", "stored record is null, not an object"),
        ("{ schema: 99, bytes: new Uint8Array([1]) }", "stored record has schema 99; this page reads schema 1"),
        ("{ schema: 1, bytes: 'text' }", "stored record has no state bytes"),
        ("{ schema: 1, bytes: new Uint8Array(0) }", "stored record has no state bytes"),
        ("{ schema: 1, bytes: new Uint8Array([1]) }", None),
    ],
)
def test_migrate_record(page, blank_page_url, record, message):
    page.goto(blank_page_url)
    error = page.evaluate(
        f"""async () => {{
            const {{ migrateRecord }} = await import("./demo/persistence.js");
            try {{
                migrateRecord({record});
                return null;
            }} catch (error) {{
                return error.message;
            }}
        }}"""
    )
    assert error == message

