"""Markdown tables and a JSON record of an evaluation's results."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from .drift import DriftResult
from .routing import Summary, SweepResult

__all__ = ["drift_table", "per_weight_table", "results_json", "summary_table"]


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _interval(triple: tuple[float, float, float], digits: int = 3) -> str:
    mean, low, high = triple
    if not math.isfinite(mean):
        return "n/a"
    if low == high:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def summary_table(summaries: list[Summary], result: SweepResult) -> str:
    """Return the summary as a Markdown table: APGR, CPT and regret with 95% intervals, timings per call."""
    lines = [
        "| router | APGR | CPT(50%) | CPT(80%) | regret/prompt | seeds | us/decision | us/update |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        lines.append(
            f"| {summary.router} | {_interval(summary.apgr)} | {_interval(summary.cpt50)} | "
            f"{_interval(summary.cpt80)} | {_interval(summary.regret, 4)} | {summary.seeds} | "
            f"{_number(summary.route_us, 1)} | {_number(summary.update_us, 1)} |"
        )
    lines.append("")
    lines.append(
        f"Weak model accuracy {result.weak_accuracy:.4f}, strong model accuracy {result.strong_accuracy:.4f}, "
        f"{result.n_prompts} prompts, cost weights {list(result.cost_weights)}, seeds {list(result.seeds)}."
    )
    return "\n".join(lines)


def per_weight_table(summaries: list[Summary], result: SweepResult) -> str:
    """Return accuracy, strong-call (cost) share and cumulative regret per router and cost weight, seed means."""
    header = "| router | " + " | ".join(f"lambda={w:g}" for w in result.cost_weights) + " |"
    lines = [header, "|---|" + "---|" * len(result.cost_weights)]
    for summary in summaries:
        cells = []
        for weight in result.cost_weights:
            point = summary.per_weight[weight]
            cells.append(f"{point['accuracy']:.3f} / {point['cost_share']:.3f} / {point['regret']:.0f}")
        lines.append(f"| {summary.router} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Each cell: accuracy / strong-call share / cumulative regret against the per-query oracle.")
    return "\n".join(lines)


def drift_table(drift: DriftResult) -> str:
    """Return the drift results per router: pre-drift level, post-drift regret, recovery, seed means."""
    lines = [
        "| router | pre-drift pseudo-regret | post-drift pseudo-regret | recovered (seeds) | "
        "interactions to recover (mean of recovered) |",
        "|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(run.router for run in drift.runs))
    for name in names:
        runs = [run for run in drift.runs if run.router == name]
        recovered = [run.recovery for run in runs if run.recovery is not None]
        mean_recovery = f"{np.mean(recovered):.0f}" if recovered else "not recovered"
        lines.append(
            f"| {name} | {np.mean([r.pre_level for r in runs]):.3f} | {np.mean([r.post_regret for r in runs]):.3f} "
            f"| {len(recovered)}/{len(runs)} | {mean_recovery} |"
        )
    lines.append("")
    lines.append(
        f"Drift group: {drift.group_size} prompts of subjects {', '.join(drift.subjects)}; "
        f"cost weight {drift.cost_weight:g}; window {drift.window} group interactions."
    )
    return "\n".join(lines)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def results_json(result: SweepResult, summaries: list[Summary], drift: DriftResult | None, settings: dict) -> dict:
    """Return everything measured as plain JSON-ready data (no per-step arrays)."""
    return _plain({
        "settings": settings,
        "model_names": result.model_names,
        "costs": result.costs,
        "weak_accuracy": result.weak_accuracy,
        "strong_accuracy": result.strong_accuracy,
        "n_prompts": result.n_prompts,
        "skipped": result.skipped,
        "summaries": [asdict(s) for s in summaries],
        "records": [asdict(r) for r in result.records],
        "drift": None if drift is None else {
            "pattern": drift.pattern,
            "subjects": drift.subjects,
            "cost_weight": drift.cost_weight,
            "window": drift.window,
            "group_size": drift.group_size,
            "runs": [asdict(r) for r in drift.runs],
        },
    })
