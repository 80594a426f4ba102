"""PNG plots of an evaluation; needs matplotlib, which sona_web does not depend on.

Import this module only after :func:`matplotlib_missing` returns ``None``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .drift import DriftResult
from .routing import Summary, SweepResult

__all__ = ["matplotlib_missing", "plot_drift", "plot_learning_curves", "plot_quality_cost"]


def matplotlib_missing() -> str | None:
    """Return why plots cannot be drawn, or ``None`` when matplotlib is installed."""
    if importlib.util.find_spec("matplotlib") is None:
        return "plots skipped: matplotlib is not installed (pip install matplotlib)"
    return None


def _pyplot():
    import matplotlib

    # The Agg backend renders to files without a display, as in CI.
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def _axes(pyplot, size):
    figure, axes = pyplot.subplots(figsize=size)
    # Twenty distinct colours: the default cycle of ten repeats with this many routers.
    axes.set_prop_cycle(color=pyplot.get_cmap("tab20").colors)
    return figure, axes


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, values.shape[0]))
    sums = np.cumsum(np.concatenate(([0.0], values)))
    return (sums[window:] - sums[:-window]) / window


def plot_quality_cost(summaries: list[Summary], result: SweepResult, path: Path) -> Path:
    """Draw accuracy against strong-call share, one line per router through its cost weights."""
    pyplot = _pyplot()
    figure, axes = _axes(pyplot, (9, 6))
    for summary in summaries:
        points = sorted((p["cost_share"], p["accuracy"]) for p in summary.per_weight.values())
        shares, accuracies = zip(*points)
        style = "--" if summary.router in ("offline_ridge", "online_knn_full_info", "subject_oracle") else "-"
        axes.plot(shares, accuracies, style, marker=".", label=f"{summary.router} (APGR {summary.apgr[0]:.2f})")
    axes.axhline(result.weak_accuracy, color="grey", linestyle=":", label="weak model")
    axes.axhline(result.strong_accuracy, color="black", linestyle=":", label="strong model")
    axes.plot([0, 1], [result.weak_accuracy, result.strong_accuracy], color="grey", linewidth=0.8)
    axes.set_xlabel("strong-model call share (mean normalised cost)")
    axes.set_ylabel("accuracy")
    axes.set_title("Online routing: accuracy vs cost, mean over seeds, one point per cost weight")
    axes.legend(fontsize=7, loc="lower right")
    return _save(figure, pyplot, path)


def plot_learning_curves(result: SweepResult, path: Path, window: int = 500) -> Path:
    """Draw the rolling mean reward over the replay at ``result.curve_weight``, one line per router."""
    pyplot = _pyplot()
    figure, axes = _axes(pyplot, (9, 5))
    for name, rewards in result.reward_curves.items():
        rolling = _rolling_mean(rewards, window)
        axes.plot(np.arange(rolling.shape[0]) + window, rolling, label=name, linewidth=1)
    axes.set_xlabel("interaction")
    axes.set_ylabel(f"reward, rolling mean over {window}")
    axes.set_title(f"Learning curves at lambda={result.curve_weight:g}, mean over seeds")
    axes.legend(fontsize=7)
    return _save(figure, pyplot, path)


def plot_drift(drift: DriftResult, path: Path) -> Path:
    """Draw the rolling pseudo-regret on the drifted group around the drift, one line per router."""
    pyplot = _pyplot()
    figure, axes = _axes(pyplot, (9, 5))
    for name, gaps in drift.curves.items():
        rolling = _rolling_mean(gaps, drift.window)
        steps = np.arange(rolling.shape[0]) + drift.window - drift.pre_steps
        axes.plot(steps, rolling, label=name, linewidth=1)
    axes.axvline(0, color="black", linestyle=":")
    axes.set_xlabel("group interactions since the drift")
    axes.set_ylabel(f"pseudo-regret, rolling mean over {drift.window}")
    axes.set_title(f"Drift on {drift.group_size} prompts at lambda={drift.cost_weight:g}, mean over seeds")
    axes.legend(fontsize=7)
    return _save(figure, pyplot, path)


def _save(figure, pyplot, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return path
