"""Helpers shared by the chat demo's browser tests (test_chat, test_store, test_console).

The chat page exposes ``window.sonaDemo`` (see web/chat.js): ``send(text)``,
``feedback(id, up)``, ``stats()``, ``probe(texts)``, ``whenSaved()``,
``exportState()``, ``importState(bytes, name)``, ``reset()``, ``notices()``
and ``pauseTicks()``. Tests drive most of the chat through it and click the
real controls in a few places.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "browser"

CHAT_PAGE = "index.html"
CONSOLE_PAGE = "console.html"

# A simulated user's favourite response style per CLINC150 domain. The
# router never sees the domain; it has to infer the taste from the text.
PREFERRED_STRATEGY = {
    "banking": "step_by_step",
    "credit_cards": "step_by_step",
    "work": "step_by_step",
    "kitchen_and_dining": "examples",
    "travel": "examples",
    "home": "concise",
    "auto_and_commute": "concise",
    "utility": "concise",
    "small_talk": "empathetic",
    "meta": "empathetic",
}

# Messages whose routing is compared before and after a reload or restart.
PROBE_TEXTS = [
    "how much money is in my checking account",
    "tell me something funny",
    "how long should i boil an egg",
    "book a hotel in paris for friday",
]


def clinc_queries(data_dir: Path, split: str, count: int, seed: int) -> list[tuple[str, str]]:
    """Return ``count`` (query, domain) pairs of a CLINC150 split in a seeded random order."""
    data = json.loads((data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    domains = json.loads((data_dir / "clinc150" / "domains.json").read_text(encoding="utf-8"))
    domain_of = {intent: domain for domain, intents in domains.items() for intent in intents}
    rows = [(query, domain_of[intent]) for query, intent in data[split]]
    random.Random(seed).shuffle(rows)
    return rows[:count]


def open_chat(page, site_url: str, *, pause_ticks: bool = True) -> None:
    """Load the chat page and wait until its engine is ready.

    ``pause_ticks`` stops the page's periodic ``tick()``, so the engine
    changes only through the test's own calls.
    """
    page.goto(site_url + CHAT_PAGE)
    page.evaluate("window.sonaDemo.ready")
    if pause_ticks:
        page.evaluate("window.sonaDemo.pauseTicks()")


def chat_turns(page, turns: list[tuple[str, bool | None]]) -> list[dict]:
    """Send each text and give its feedback (True, False, or None for none) inside the page.

    Returns the answers as dicts (id, strategy, text, explored, probability).
    """
    return page.evaluate(
        """async (turns) => {
            const answers = [];
            for (const [text, up] of turns) {
                const answer = await window.sonaDemo.send(text);
                if (up !== null) {
                    await window.sonaDemo.feedback(answer.id, up);
                }
                answers.push(answer);
            }
            return answers;
        }""",
        [list(turn) for turn in turns],
    )


def snapshot(page) -> dict:
    """Everything a restore must reproduce: engine stats and the routing of PROBE_TEXTS.

    Waits for pending saves first, so the snapshot matches what is stored.
    """
    page.evaluate("window.sonaDemo.whenSaved()")
    stats = page.evaluate("window.sonaDemo.stats()")
    probe = page.evaluate("(texts) => window.sonaDemo.probe(texts)", PROBE_TEXTS)
    return {
        "outcomes": stats["outcomes"],
        "models": stats["models"],
        "patterns": stats["patterns"],
        "background_cycles": stats["backgroundCycles"],
        "trajectories": stats["trajectories"],
        "thumbs_up": stats["thumbsUp"],
        "lineage": stats["lineage"],
        "probe": probe,
    }


def notice_texts(page) -> list[str]:
    return [notice["text"] for notice in page.evaluate("window.sonaDemo.notices()")]


def save_screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/browser/ and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / name
    page.screenshot(path=str(path), full_page=True)
    return path
