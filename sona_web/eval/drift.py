"""The drift scenario: halfway through the replay, the weak model changes on one group of subjects.

From step ``T // 2`` on, the weak (cheapest) model's outcome on every prompt
whose subject matches a regular expression is flipped (``1 - outcome``): it
now fails where it used to succeed. The default group is biology and
medicine (``anatomy|biology|clinical|genetics|medic|nutrition|virology``,
nine MMLU subjects, 1,871 prompts). The weak model is accurate there
(75% for Mixtral against 86% for GPT-4). So at the default cost weight 0.2
the cheap model is the better choice before the drift and a poor one after
it, on every subject of the group but virology. (On math and physics the
weak model is right about 45% of the time, so a flip barely moves its mean
and would test little.)

Recovery is read from the pseudo-regret on the group: at each group
interaction, the best subject-mean reward minus the subject-mean reward of
the chosen model, with means taken in the current phase (before or after the
drift). It is 0 when the router picks the model that is best for that
subject, whatever the single prompt's outcome, so it is free of the noise of
single answers. The pre-drift level is its mean over the last ``window``
group interactions before the drift. A router has recovered after ``j``
group interactions when the mean over interactions ``j - window .. j`` after
the drift is at most ``1.1 * level + 0.01`` (within 10% of its level, with an
absolute slack of 0.01 for levels near 0); the smallest possible value is
``window``. A router that never gets there is reported as not recovered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .parallel import map_cells
from .registry import RouterContext, make_router
from .routing import replay, run_order

__all__ = ["DEFAULT_DRIFT_PATTERN", "DriftResult", "DriftRun", "drift_group", "run_drift"]

DEFAULT_DRIFT_PATTERN = r"anatomy|biology|clinical|genetics|medic|nutrition|virology"

_RELATIVE_TOLERANCE = 0.1
_ABSOLUTE_TOLERANCE = 0.01


@dataclass(frozen=True)
class DriftRun:
    """One router on one seed: pre-drift level, mean pseudo-regret after the drift, recovery."""

    router: str
    seed: int
    pre_level: float
    post_regret: float
    recovery: int | None
    accuracy: float


@dataclass
class DriftResult:
    """All drift runs, the matched subjects, and per-router pseudo-regret curves averaged over seeds.

    A curve has one value per group interaction from ``-pre_steps`` to
    ``post_steps - 1`` relative to the drift.
    """

    pattern: str
    subjects: tuple[str, ...]
    cost_weight: float
    window: int
    group_size: int
    runs: list[DriftRun] = field(default_factory=list)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    pre_steps: int = 0


def drift_group(subjects, pattern: str) -> np.ndarray:
    """Return a bool mask of the rows whose subject matches ``pattern`` (``re.search``)."""
    compiled = re.compile(pattern)
    return np.array([compiled.search(subject) is not None for subject in subjects], dtype=bool)


def _subject_means(outcomes: np.ndarray, subject_ids: np.ndarray, n_subjects: int) -> np.ndarray:
    sums = np.zeros((n_subjects, outcomes.shape[1]))
    np.add.at(sums, subject_ids, outcomes)
    return sums / np.bincount(subject_ids, minlength=n_subjects)[:, None]


def _recovery(gaps_post: np.ndarray, level: float, window: int) -> int | None:
    threshold = (1.0 + _RELATIVE_TOLERANCE) * level + _ABSOLUTE_TOLERANCE
    if gaps_post.shape[0] < window:
        return None
    sums = np.cumsum(np.concatenate(([0.0], gaps_post)))
    rolling = (sums[window:] - sums[:-window]) / window
    below = np.flatnonzero(rolling <= threshold)
    return int(below[0] + window) if below.shape[0] else None


def run_drift(
    vectors: np.ndarray,
    outcomes: np.ndarray,
    subjects,
    model_names: tuple[str, ...],
    costs: np.ndarray,
    routers,
    cost_weight: float,
    seeds,
    pattern: str = DEFAULT_DRIFT_PATTERN,
    window: int = 100,
    match: str | None = "sona",
    progress: Callable[[int, int, str], None] | None = None,
    jobs: int = 1,
) -> DriftResult:
    """Replay with the drift to every router in ``routers``; see the module docstring for the measures.

    ``jobs`` > 1 runs the seeds in that many worker processes. Raises
    ``ValueError`` when no subject matches ``pattern`` or ``window`` < 1.
    """
    group = drift_group(subjects, pattern)
    if not group.any():
        raise ValueError(f"drift pattern {pattern!r} matches no subject; subjects are {sorted(set(subjects))}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")

    labels, subject_ids = np.unique(np.asarray(subjects), return_inverse=True)
    weak = int(np.argmin(costs))
    flipped = outcomes.copy()
    flipped[group, weak] = 1.0 - flipped[group, weak]
    result = DriftResult(
        pattern=pattern,
        subjects=tuple(str(s) for s in labels[np.unique(subject_ids[group])]),
        cost_weight=float(cost_weight),
        window=int(window),
        group_size=int(group.sum()),
    )
    names = run_order(routers, match)
    shared = {
        "vectors": vectors, "outcomes": outcomes, "flipped": flipped, "group": group,
        "subject_ids": subject_ids, "model_names": tuple(model_names), "costs": costs, "names": names,
        "match": match, "cost_weight": float(cost_weight), "window": int(window),
        "phase_rewards": [
            _subject_means(outcomes, subject_ids, len(labels)) - cost_weight * costs,
            _subject_means(flipped, subject_ids, len(labels)) - cost_weight * costs,
        ],
    }
    seeds = [int(seed) for seed in seeds]
    cell_steps = len(names) * outcomes.shape[0]
    total = len(seeds) * cell_steps
    done = [0]

    def tick(count):
        done[0] += count
        progress(done[0], total, "drift")

    def on_done(seed, cell_result):
        if progress is not None and jobs > 1:
            done[0] += cell_steps
            progress(done[0], total, f"drift seed {seed}")

    cells = map_cells(_drift_seed, seeds, shared, jobs, on_done, tick if progress is not None else None)
    _collect(result, cells)
    return result


def _drift_seed(shared: dict, seed: int, tick):
    """Run every router on one seed of the drift scenario; returns runs and (pre, post) gap arrays."""
    outcomes, costs, group = shared["outcomes"], shared["costs"], shared["group"]
    window, weight = shared["window"], shared["cost_weight"]
    steps = outcomes.shape[0]
    switch = steps // 2
    order = np.random.default_rng(seed).permutation(steps)
    stream_outcomes = np.where((np.arange(steps) >= switch)[:, None], shared["flipped"][order], outcomes[order])
    in_group = group[order]
    pre_index = np.flatnonzero(in_group[:switch])
    post_index = switch + np.flatnonzero(in_group[switch:])

    runs, gaps_by_router = [], {}
    shares = None
    for name in shared["names"]:
        context = RouterContext(shared["model_names"], shared["vectors"].shape[1], costs, weight, seed,
                                shares if name == "random" else None)
        trace = replay(make_router(name, context), shared["vectors"][order], stream_outcomes, costs, weight, tick)
        if name == shared["match"]:
            shares = np.bincount(trace.choices, minlength=len(shared["model_names"])) / steps

        gaps = _pseudo_regret(shared["phase_rewards"], shared["subject_ids"][order], trace.choices, switch)
        level = float(gaps[pre_index[-window:]].mean()) if pre_index.shape[0] else float("nan")
        runs.append(DriftRun(
            router=name,
            seed=seed,
            pre_level=level,
            post_regret=float(gaps[post_index].mean()) if post_index.shape[0] else float("nan"),
            recovery=_recovery(gaps[post_index], level, window),
            accuracy=float(stream_outcomes[np.arange(steps), trace.choices].mean()),
        ))
        gaps_by_router[name] = (gaps[pre_index], gaps[post_index])
    return runs, gaps_by_router


def _collect(result: DriftResult, cells) -> None:
    """Store the runs and the per-router curves, aligned at the drift and cut to the shortest seed."""
    result.pre_steps = min(pairs[next(iter(pairs))][0].shape[0] for _, pairs in cells)
    post_steps = min(pairs[next(iter(pairs))][1].shape[0] for _, pairs in cells)
    for runs, _ in cells:
        result.runs.extend(runs)
    for name in cells[0][1]:
        aligned = [
            np.concatenate((pairs[name][0][pairs[name][0].shape[0] - result.pre_steps :], pairs[name][1][:post_steps]))
            for _, pairs in cells
        ]
        result.curves[name] = np.mean(aligned, axis=0)


def _pseudo_regret(phase_rewards, stream_subjects: np.ndarray, choices: np.ndarray, switch: int) -> np.ndarray:
    steps = choices.shape[0]
    phase = (np.arange(steps) >= switch).astype(np.int64)
    means = np.where(phase[:, None] == 1, phase_rewards[1][stream_subjects], phase_rewards[0][stream_subjects])
    return means.max(axis=1) - means[np.arange(steps), choices]
