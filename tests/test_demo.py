"""The CLINC150 learning demo: the router finds a simulated user's preferred styles, and the CLI reports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sona_web.demo import (
    DEFAULT_STYLES,
    EXIT_DATA_MISSING,
    P_LIKE_OTHER,
    P_LIKE_PREFERRED,
    assign_preferences,
    expected_random_rate,
    load_clinc150,
    run_demo,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
LEARNING_MESSAGES = 2000


def run_cli(*args: str, module: str = "sona_web.demo") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def clinc(shared_data_dir):
    return load_clinc150(shared_data_dir)


@pytest.fixture(scope="module")
def learning_run(clinc):
    return run_demo(clinc, LEARNING_MESSAGES, seed=0)


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """Write a CLINC150-shaped folder with 2 domains of 2 intents and 40 queries."""
    folder = tmp_path / "clinc150"
    folder.mkdir()
    intents = {"banking": ["balance", "transfer"], "travel": ["book_flight", "car_rental"]}
    rows = [[f"query {i} about {intent}", intent] for i in range(10) for intents_ in intents.values() for intent in intents_]
    data = {"train": rows[:20], "val": rows[20:30], "test": rows[30:], "oos_train": [["hello", "oos"]]}
    (folder / "data_full.json").write_text(json.dumps(data), encoding="utf-8")
    (folder / "domains.json").write_text(json.dumps(intents), encoding="utf-8")
    return tmp_path


# Learning on real queries ------------------------------------------------


@pytest.mark.data
def test_demo_last_window_beats_first(learning_run):
    # Measured on seed 0 with 2,000 messages: first window 0.35, last 0.47.
    # A Bernoulli rate over 250 messages has a standard deviation near 0.03,
    # so the asserted gain of 0.06 sits well below the measured 0.12.
    assert learning_run["last_window_rate"] - learning_run["first_window_rate"] >= 0.06


@pytest.mark.data
def test_demo_beats_random_choice(learning_run):
    # Measured: last window 0.47 against 0.30 expected from random choice.
    assert learning_run["last_window_rate"] >= learning_run["random_rate"] + 0.08
    assert learning_run["overall_rate"] > learning_run["random_rate"]


def _second_half_rate(run: dict) -> float:
    windows = run["window_rates"]
    return float(np.mean([w["rate"] for w in windows[len(windows) // 2 :]]))


@pytest.mark.data
def test_demo_reasoning_bank_earns_thumbs_up(clinc, learning_run):
    # Users here prefer one style per domain, which the router's ridge prior
    # mostly learns on its own. So the bank's gain is a few points, and one
    # seed alone is too noisy to show it: seeds 0-2 are averaged.
    gains = []
    for seed in (0, 1, 2):
        with_bank = learning_run if seed == 0 else run_demo(clinc, LEARNING_MESSAGES, seed=seed, explain=0)
        without_bank = run_demo(clinc, LEARNING_MESSAGES, seed=seed, config_overrides={"pattern_clusters": 0}, explain=0)
        assert without_bank["patterns"] == 0
        gains.append(_second_half_rate(with_bank) - _second_half_rate(without_bank))
    # Measured: second-half rate higher by 0.060, 0.001 and 0.057 with the bank (mean 0.039).
    assert np.mean(gains) >= 0.02


@pytest.mark.data
def test_demo_reports_learning_state(learning_run):
    assert learning_run["messages"] == LEARNING_MESSAGES
    assert learning_run["patterns"] > 0
    assert learning_run["background_cycles"] == LEARNING_MESSAGES // 128
    assert sum(learning_run["served"].values()) == LEARNING_MESSAGES
    assert learning_run["oracle_rate"] == P_LIKE_PREFERRED


@pytest.mark.data
def test_demo_window_rates_average_to_overall(learning_run):
    windows = learning_run["window_rates"]
    assert [w["start"] for w in windows] == list(range(1, LEARNING_MESSAGES, 250))
    assert windows[-1]["end"] == LEARNING_MESSAGES
    weighted = sum(w["rate"] * (w["end"] - w["start"] + 1) for w in windows) / LEARNING_MESSAGES
    assert weighted == pytest.approx(learning_run["overall_rate"])


@pytest.mark.data
def test_demo_examples_explain_choice(learning_run):
    examples = learning_run["examples"]
    assert len(examples) == 3
    assert len({example["domain"] for example in examples}) == 3
    for example in examples:
        assert example["chosen"] in DEFAULT_STYLES
        assert set(example["estimates"]) == set(DEFAULT_STYLES)
        assert isinstance(example["explored"], bool)
        assert example["patterns_consulted"] == 4
        pattern = example["pattern"]
        assert pattern is not None
        assert set(pattern["route_stats"]) <= set(DEFAULT_STYLES)
        assert all(stats["count"] > 0 for stats in pattern["route_stats"].values())
        assert all(0.0 <= stats["mean_quality"] <= 1.0 for stats in pattern["route_stats"].values())


@pytest.mark.data
def test_demo_same_seed_same_decisions(clinc):
    first = run_demo(clinc, 300, seed=3, explain=0)
    second = run_demo(clinc, 300, seed=3, explain=0)
    other = run_demo(clinc, 300, seed=4, explain=0)
    assert first["decisions_digest"] == second["decisions_digest"]
    assert first["window_rates"] == second["window_rates"]
    assert first["decisions_digest"] != other["decisions_digest"]


@pytest.mark.data
def test_load_clinc150_reads_in_scope_queries(clinc):
    assert len(clinc.queries) == 15_000 + 3_000 + 4_500
    assert len(clinc.domains) == 10
    assert len(set(clinc.intents)) == 150


# Pure helpers -------------------------------------------------------------


def test_expected_random_rate_hand_computed():
    assert expected_random_rate(5) == pytest.approx((0.9 + 4 * 0.15) / 5)
    assert expected_random_rate(2) == pytest.approx((P_LIKE_PREFERRED + P_LIKE_OTHER) / 2)


def test_assign_preferences_deals_styles_evenly():
    domains = [f"domain{i}" for i in range(10)]
    preferences = assign_preferences(domains, DEFAULT_STYLES, seed=0)
    assert set(preferences) == set(domains)
    assert sorted(preferences.values()) == sorted(list(DEFAULT_STYLES) * 2)


def test_assign_preferences_depends_on_seed():
    domains = [f"domain{i}" for i in range(10)]
    assert assign_preferences(domains, DEFAULT_STYLES, 0) == assign_preferences(domains, DEFAULT_STYLES, 0)
    assert assign_preferences(domains, DEFAULT_STYLES, 0) != assign_preferences(domains, DEFAULT_STYLES, 1)


def test_run_demo_window_longer_than_run(tiny_data):
    result = run_demo(tiny_data, 30, seed=0, window=250)
    assert result["window_rates"] == [{"start": 1, "end": 30, "rate": result["overall_rate"]}]
    assert result["first_window_rate"] == result["last_window_rate"]


def test_run_demo_on_tiny_data(tiny_data):
    result = run_demo(tiny_data, 40, seed=0, styles=("terse", "chatty"), window=10)
    assert [w["end"] for w in result["window_rates"]] == [10, 20, 30, 40]
    assert set(result["preferences"]) == {"banking", "travel"}
    assert result["random_rate"] == pytest.approx((P_LIKE_PREFERRED + P_LIKE_OTHER) / 2)


# Invalid input ------------------------------------------------------------


def test_load_clinc150_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"clinc150.data_full\.json not found"):
        load_clinc150(tmp_path / "absent")


def test_load_clinc150_intent_without_domain_raises(tiny_data):
    domains = tiny_data / "clinc150" / "domains.json"
    domains.write_text(json.dumps({"banking": ["balance", "transfer"]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"intents without a domain .*'book_flight'"):
        load_clinc150(tiny_data)


def test_run_demo_rejects_single_style(tiny_data):
    with pytest.raises(ValueError, match=r"styles must name at least 2 distinct styles, got \['only'\]"):
        run_demo(tiny_data, 10, styles=["only"])


def test_run_demo_rejects_duplicate_styles(tiny_data):
    with pytest.raises(ValueError, match=r"at least 2 distinct styles, got \['a', 'a'\]"):
        run_demo(tiny_data, 10, styles=["a", "a"])


def test_run_demo_rejects_style_string(tiny_data):
    with pytest.raises(TypeError, match=r"styles must be a sequence of non-empty str, got 'concise'"):
        run_demo(tiny_data, 10, styles="concise")


def test_run_demo_rejects_too_many_messages(tiny_data):
    with pytest.raises(ValueError, match=r"messages must be in \[1, 40\], got 41"):
        run_demo(tiny_data, 41)


def test_run_demo_rejects_bool_messages(tiny_data):
    with pytest.raises(TypeError, match=r"messages must be an int, got bool"):
        run_demo(tiny_data, True)


def test_run_demo_rejects_zero_window(tiny_data):
    with pytest.raises(ValueError, match=r"window must be >= 1, got 0"):
        run_demo(tiny_data, 10, window=0)


# Command line ---------------------------------------------------------------


@pytest.mark.data
def test_cli_prints_progress_table(shared_data_dir):
    completed = run_cli("--data", str(shared_data_dir), "--messages", "500")
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert any(line.split()[:1] == ["1-250"] for line in lines)
    assert any(line.split()[:1] == ["251-500"] for line in lines)
    assert "Thumbs-up rate, first window:" in completed.stdout
    assert "Random choice (expected):      0.300" in completed.stdout
    assert "Oracle (always preferred):     0.900" in completed.stdout
    assert "Why this answer?" in completed.stdout


def test_cli_missing_data_exits_2(tmp_path):
    missing = tmp_path / "no-data-here"
    completed = run_cli("--data", str(missing))
    assert completed.returncode == EXIT_DATA_MISSING
    assert str(missing / "clinc150" / "data_full.json") in completed.stderr
    assert completed.stdout == ""


def test_cli_invalid_messages_exits_2(tiny_data):
    completed = run_cli("--data", str(tiny_data), "--messages", "0")
    assert completed.returncode == 2
    assert "messages must be in [1, 40], got 0" in completed.stderr


def test_cli_json_and_ablations(tiny_data):
    completed = run_cli("--data", str(tiny_data), "--messages", "40", "--window", "20",
                        "--styles", "terse,chatty", "--ablations", "--json")
    assert completed.returncode == 0, completed.stderr
    output = json.loads(completed.stdout)
    assert output["demo"]["messages"] == 40
    assert output["ablations"]["no ReasoningBank (pattern_clusters=0)"]["patterns"] == 0
    assert output["ablations"]["no ridge prior (linear_prior=False)"]["router_options"] == {"linear_prior": False}
    assert len(output["ablations"]) == 7


def test_package_main_runs_demo(tiny_data):
    completed = run_cli("demo", "--data", str(tiny_data), "--messages", "20", "--window", "10", module="sona_web")
    assert completed.returncode == 0, completed.stderr
    assert "Thumbs-up rate, last window:" in completed.stdout


def test_package_main_without_command_exits_2():
    completed = run_cli(module="sona_web")
    assert completed.returncode == 2
    assert "usage: python -m sona_web {demo,bench}" in completed.stderr
