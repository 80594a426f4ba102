"""Quality-cost metrics of routers: PGR, APGR, CPT, regret, intervals over seeds.

Definitions follow RouteLLM (Ong et al., "RouteLLM: Learning to Route LLMs
with Preference Data", 2024):

* PGR (performance gap recovered) at a point of the curve:
  ``(accuracy - weak_accuracy) / (strong_accuracy - weak_accuracy)``.
* The quality-cost curve runs from ``(0, weak_accuracy)`` through the
  router's measured points to ``(1, strong_accuracy)``; the x-axis is the
  share of calls to the strong model (with more than two models, the mean
  normalised cost of the calls, which equals that share for two models).
* APGR: the area under PGR over the curve by the trapezoid rule, which is
  ``(AUC - weak_accuracy) / (strong_accuracy - weak_accuracy)``. A router
  no better than random mixing lies on the diagonal and scores 0.5.
* CPT(x): the smallest strong-call share at which the piecewise-linear curve
  reaches PGR ``x``. RouteLLM reads it with ``np.interp``, which assumes a
  rising curve; the first crossing is the same on a rising curve and stays
  defined on one that dips.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "apgr",
    "cpt",
    "mean_interval",
    "pgr",
    "quality_cost_curve",
    "regret",
]

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom,
# so that intervals need no scipy; beyond 30 the normal 1.96 is used.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def pgr(accuracy, weak_accuracy: float, strong_accuracy: float):
    """Return the performance gap recovered; raises ``ValueError`` when the two models tie."""
    gap = strong_accuracy - weak_accuracy
    if gap == 0:
        raise ValueError(
            f"strong_accuracy and weak_accuracy must differ to define PGR, both are {weak_accuracy}"
        )
    return (np.asarray(accuracy, dtype=np.float64) - weak_accuracy) / gap


def quality_cost_curve(shares, accuracies, weak_accuracy: float, strong_accuracy: float):
    """Return ``(shares, accuracies)`` sorted by share with the endpoints ``(0, weak)`` and ``(1, strong)`` added.

    Points at equal share keep ascending accuracy, so a vertical rise adds no
    area and CPT reads it at that share. Raises ``ValueError`` for mismatched
    lengths or a share outside ``[0, 1]``.
    """
    x = np.asarray(shares, dtype=np.float64).ravel()
    y = np.asarray(accuracies, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"shares and accuracies must have the same length, got {x.shape[0]} and {y.shape[0]}")
    if np.any((x < 0) | (x > 1)) or not np.all(np.isfinite(y)):
        raise ValueError(f"shares must be in [0, 1] and accuracies finite, got {x.tolist()} and {y.tolist()}")
    x = np.concatenate(([0.0], x, [1.0]))
    y = np.concatenate(([weak_accuracy], y, [strong_accuracy]))
    order = np.lexsort((y, x))
    return x[order], y[order]


def apgr(shares, accuracies, weak_accuracy: float, strong_accuracy: float) -> float:
    """Return the average performance gap recovered over the quality-cost curve."""
    x, y = quality_cost_curve(shares, accuracies, weak_accuracy, strong_accuracy)
    gains = pgr(y, weak_accuracy, strong_accuracy)
    return float(np.sum((x[1:] - x[:-1]) * (gains[1:] + gains[:-1]) / 2.0))


def cpt(shares, accuracies, weak_accuracy: float, strong_accuracy: float, target: float) -> float:
    """Return the smallest strong-call share at which the curve reaches PGR ``target``.

    The curve ends at PGR 1, so any ``target <= 1`` is reached; a larger one
    that the curve never reaches returns ``nan``.
    """
    x, y = quality_cost_curve(shares, accuracies, weak_accuracy, strong_accuracy)
    gains = pgr(y, weak_accuracy, strong_accuracy)
    if gains[0] >= target:
        return float(x[0])
    for i in range(1, gains.shape[0]):
        if gains[i] >= target:
            fraction = (target - gains[i - 1]) / (gains[i] - gains[i - 1])
            return float(x[i - 1] + fraction * (x[i] - x[i - 1]))
    return math.nan


def regret(rewards: np.ndarray, choices: np.ndarray) -> float:
    """Return the cumulative regret against the per-query oracle.

    ``rewards`` has shape ``(T, m)``, the reward every model would have
    earned at each step; ``choices`` the ``T`` chosen model indices.
    """
    steps = np.arange(choices.shape[0])
    return float(np.sum(rewards.max(axis=1) - rewards[steps, choices]))


def mean_interval(values) -> tuple[float, float, float]:
    """Return the mean and the two ends of its 95% Student-t interval; one value gives a zero-width interval.

    ``nan`` values are ignored; with none left, all three are ``nan``.
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.shape[0] == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if data.shape[0] == 1:
        return mean, mean, mean
    degrees = data.shape[0] - 1
    quantile = _T_975[degrees - 1] if degrees <= len(_T_975) else 1.96
    half = quantile * float(data.std(ddof=1)) / math.sqrt(data.shape[0])
    return mean, mean - half, mean + half
