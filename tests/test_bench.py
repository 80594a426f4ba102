"""The engine benchmark runs end to end and reports every figure.

No timing is asserted, because test machines are shared and their timings vary.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sona_web.bench import METRICS, format_table

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def quick_report() -> dict:
    completed = run_module("sona_web.bench", "--quick", "--json")
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_bench_reports_every_metric(quick_report):
    results = quick_report["results"]
    for metric in METRICS:
        value = results[metric.key]
        assert math.isfinite(value), metric.key
        assert value > 0, metric.key


def test_bench_rows_carry_reference_and_verdict(quick_report):
    rows = {row["key"]: row for row in quick_report["rows"]}
    assert set(rows) == {metric.key for metric in METRICS}
    for metric in METRICS:
        row = rows[metric.key]
        if metric.target is None:
            assert row["verdict"] == ""
        else:
            assert row["verdict"] == ("PASS" if row["value"] <= metric.target else "MISS")
        if metric.reference is not None:
            assert row["ratio"] == pytest.approx(row["value"] / metric.reference)


def test_bench_searches_hundred_patterns(quick_report):
    assert quick_report["results"]["find_patterns_bank_size"] == 100


def test_bench_steps_cost_bytes(quick_report):
    # The step target is stored only once some trajectory had steps.
    results = quick_report["results"]
    assert results["bytes_per_trajectory_with_steps"] > results["bytes_per_trajectory"]


def test_bench_machine_info(quick_report):
    machine = quick_report["machine"]
    assert machine["cpus"] >= 1
    assert machine["implementation"] == "CPython"
    assert quick_report["quick"] is True


def test_format_table_lists_every_metric(quick_report):
    table = format_table(quick_report["results"], quick_report["machine"], quick=True)
    for metric in METRICS:
        line = next(line for line in table.splitlines() if line.startswith(metric.label))
        if metric.target is not None:
            assert line.endswith(("PASS", "MISS")), line
    assert "ruvector-sona 0.1.1" in table


def test_package_main_bench_help():
    completed = run_module("sona_web", "bench", "--help")
    assert completed.returncode == 0, completed.stderr
    assert "--quick" in completed.stdout
