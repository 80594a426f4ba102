"""The online routing evaluation: replay prompts to routers under bandit feedback.

For every seed the prompts are shuffled once by ``default_rng(seed)`` and
replayed in that order, one pass, to every router and at every cost weight
lambda. At each step the router sees only the query embedding, picks a model,
and receives the reward of that model alone: ``outcome - lambda * cost`` with
costs normalised to [0, 1]. Each router is built fresh for every run with the
same seed. The random router copies the per-model call shares of a matched
learning router from the same seed and cost weight, so it is run after it.

Everything here needs numpy only, so the same code runs in Pyodide.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import metrics
from .parallel import map_cells
from .references import ReferenceCurve, offline_ridge, online_knn_full_info, subject_oracle
from .registry import RouterContext, make_router

__all__ = [
    "RunRecord",
    "Summary",
    "SweepResult",
    "Trace",
    "replay",
    "run_order",
    "run_sweep",
    "summarise",
]

# progress(steps_done, steps_total, label) reports long work to a caller
# that wants to show it; the library itself never prints.
Progress = Callable[[int, int, str], None]

_PROGRESS_EVERY = 512


@dataclass
class Trace:
    """Output of one replay: per-step choices, probabilities and rewards, plus timings in seconds."""

    choices: np.ndarray
    probabilities: np.ndarray
    rewards: np.ndarray
    route_seconds: float
    update_seconds: float


@dataclass(frozen=True)
class RunRecord:
    """Metrics of one router on one (seed, cost weight) run over ``steps`` prompts."""

    router: str
    seed: int
    cost_weight: float
    steps: int
    accuracy: float
    cost_share: float
    model_shares: tuple[float, ...]
    regret: float
    route_us: float
    update_us: float


@dataclass
class SweepResult:
    """All runs of a sweep, the reference curves per seed, and the data behind the plots."""

    model_names: tuple[str, ...]
    costs: np.ndarray
    cost_weights: tuple[float, ...]
    seeds: tuple[int, ...]
    weak_accuracy: float
    strong_accuracy: float
    n_prompts: int
    records: list[RunRecord] = field(default_factory=list)
    references: dict[str, list[ReferenceCurve]] = field(default_factory=dict)
    # router -> mean over seeds of the per-step reward at curve_weight.
    curve_weight: float | None = None
    reward_curves: dict[str, np.ndarray] = field(default_factory=dict)
    # router -> why it did not run (a missing optional package), for the report.
    skipped: dict[str, str] = field(default_factory=dict)


def replay(router, vectors: np.ndarray, outcomes: np.ndarray, costs: np.ndarray, cost_weight: float,
           progress: Callable[[int], None] | None = None) -> Trace:
    """Replay ``vectors`` (T, d) in order to ``router``; ``outcomes`` (T, m) contains every model's outcome.

    Only the chosen model's reward reaches ``router.update``. Raises
    ``ValueError`` when the router returns a model index out of range.
    """
    steps, n_models = outcomes.shape
    rewards = outcomes - cost_weight * costs
    # Index arrays are intp: np.bincount rejects int64 where intp is 32 bits (Pyodide's wasm32).
    choices = np.empty(steps, dtype=np.intp)
    probabilities = np.empty(steps, dtype=np.float64)
    route_seconds = update_seconds = 0.0
    clock = time.perf_counter

    for t in range(steps):
        x = vectors[t]
        start = clock()
        model_index, probability = router.route(x)
        routed = clock()
        if not 0 <= model_index < n_models:
            raise ValueError(f"router {router.name!r} returned model index {model_index!r}, expected 0..{n_models - 1}")
        router.update(x, model_index, float(rewards[t, model_index]))
        updated = clock()

        route_seconds += routed - start
        update_seconds += updated - routed
        choices[t] = model_index
        probabilities[t] = probability
        if progress is not None and (t + 1) % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)

    if progress is not None:
        progress(steps % _PROGRESS_EVERY)
    close = getattr(router, "close", None)
    if close is not None:
        close()
    return Trace(choices, probabilities, rewards[np.arange(steps), choices], route_seconds, update_seconds)


def _record(name: str, seed: int, cost_weight: float, trace: Trace, outcomes: np.ndarray, costs: np.ndarray) -> RunRecord:
    steps, n_models = outcomes.shape
    chosen = outcomes[np.arange(steps), trace.choices]
    shares = np.bincount(trace.choices, minlength=n_models) / steps
    return RunRecord(
        router=name,
        seed=seed,
        cost_weight=cost_weight,
        steps=steps,
        accuracy=float(chosen.mean()),
        cost_share=float(costs[trace.choices].mean()),
        model_shares=tuple(float(s) for s in shares),
        regret=metrics.regret(outcomes - cost_weight * costs, trace.choices),
        route_us=1e6 * trace.route_seconds / steps,
        update_us=1e6 * trace.update_seconds / steps,
    )


def run_order(names, match: str | None) -> list[str]:
    """Return ``names`` with the matched router moved before ``random``."""
    ordered = list(names)
    if match in ordered and "random" in ordered and ordered.index(match) > ordered.index("random"):
        ordered.remove(match)
        ordered.insert(ordered.index("random"), match)
    return ordered


def run_sweep(
    vectors: np.ndarray,
    outcomes: np.ndarray,
    subjects,
    model_names: tuple[str, ...],
    costs: np.ndarray,
    routers,
    cost_weights,
    seeds,
    match: str | None = "sona",
    curve_weight: float | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> SweepResult:
    """Run every router in ``routers`` at every cost weight and seed, plus the reference rows.

    ``vectors`` (n, d) float32, ``outcomes`` (n, m) in [0, 1], ``costs`` (m,)
    normalised to [0, 1]. ``match`` names the router whose call shares the
    random router copies (uniform shares when it is not among ``routers``).
    The per-step rewards at ``curve_weight`` are averaged over seeds for the
    learning curve. ``jobs`` > 1 runs the (seed, cost weight) cells in that
    many worker processes; the records are the same apart from timings.
    """
    names = run_order(routers, match)
    cost_weights = tuple(float(w) for w in cost_weights)
    seeds = tuple(int(s) for s in seeds)
    weak, strong = int(np.argmin(costs)), int(np.argmax(costs))
    result = SweepResult(
        model_names=tuple(model_names),
        costs=np.asarray(costs, dtype=np.float64),
        cost_weights=cost_weights,
        seeds=seeds,
        weak_accuracy=float(outcomes[:, weak].mean()),
        strong_accuracy=float(outcomes[:, strong].mean()),
        n_prompts=int(outcomes.shape[0]),
        curve_weight=curve_weight,
    )
    shared = {
        "vectors": vectors, "outcomes": outcomes, "model_names": result.model_names, "costs": result.costs,
        "names": names, "match": match, "curve_weight": curve_weight,
    }
    cells = [(seed, weight) for seed in seeds for weight in cost_weights]
    cell_steps = len(names) * outcomes.shape[0]
    total = len(cells) * cell_steps
    done = [0]

    def tick(count):
        done[0] += count
        progress(done[0], total, "sweep")

    def on_done(cell, cell_result):
        seed, weight = cell
        records, rewards = cell_result
        result.records.extend(records)
        for name, values in rewards.items():
            _accumulate_curve(result, name, values, len(seeds))
        if weight == cost_weights[-1]:
            _add_references(result, vectors, outcomes, subjects, seed)
        if progress is not None and jobs > 1:
            done[0] += cell_steps
            progress(done[0], total, f"seed {seed} lambda {weight:g}")

    map_cells(_run_cell, cells, shared, jobs, on_done, tick if progress is not None else None)
    return result


def _run_cell(shared: dict, cell: tuple[int, float], tick) -> tuple[list[RunRecord], dict[str, np.ndarray]]:
    """Run every router on one (seed, cost weight) cell; returns its records and, at the curve weight, rewards."""
    seed, weight = cell
    outcomes, costs = shared["outcomes"], shared["costs"]
    order = np.random.default_rng(seed).permutation(outcomes.shape[0])
    stream_vectors, stream_outcomes = shared["vectors"][order], outcomes[order]
    records, rewards = [], {}
    shares = None
    for name in shared["names"]:
        context = RouterContext(shared["model_names"], stream_vectors.shape[1], costs, weight, seed,
                                shares if name == "random" else None)
        trace = replay(make_router(name, context), stream_vectors, stream_outcomes, costs, weight, tick)
        record = _record(name, seed, weight, trace, stream_outcomes, costs)
        records.append(record)
        if name == shared["match"]:
            shares = np.asarray(record.model_shares)
        if weight == shared["curve_weight"]:
            rewards[name] = trace.rewards
    return records, rewards


def _accumulate_curve(result: SweepResult, name: str, rewards: np.ndarray, n_seeds: int) -> None:
    if name not in result.reward_curves:
        result.reward_curves[name] = np.zeros_like(rewards)
    result.reward_curves[name] += rewards / n_seeds


def _add_references(result: SweepResult, vectors, outcomes, subjects, seed: int) -> None:
    ridge = offline_ridge(vectors, outcomes, result.costs, result.cost_weights, seed=seed)
    result.references.setdefault("offline_ridge", []).append(ridge)
    knn = online_knn_full_info(vectors, outcomes, result.costs, result.cost_weights, seed=seed)
    result.references.setdefault("online_knn_full_info", []).append(knn)
    # The subject oracle is deterministic, so one curve serves every seed.
    if "subject_oracle" not in result.references:
        result.references["subject_oracle"] = [subject_oracle(subjects, outcomes, result.costs, result.cost_weights)]


@dataclass(frozen=True)
class Summary:
    """Per-router aggregate over seeds: (mean, low, high) of each metric, plus per-cost-weight means.

    ``regret`` is the regret per prompt against the per-query oracle, averaged
    over the cost weights: the quantity each online router is asked to
    minimise, where APGR measures the area under the curve its runs trace.
    """

    router: str
    apgr: tuple[float, float, float]
    cpt50: tuple[float, float, float]
    cpt80: tuple[float, float, float]
    regret: tuple[float, float, float]
    per_weight: dict[float, dict[str, float]]
    route_us: float
    update_us: float
    seeds: int


def _curve_metrics(shares, accuracies, weak: float, strong: float) -> tuple[float, float, float]:
    return (
        metrics.apgr(shares, accuracies, weak, strong),
        metrics.cpt(shares, accuracies, weak, strong, 0.5),
        metrics.cpt(shares, accuracies, weak, strong, 0.8),
    )


def summarise(result: SweepResult) -> list[Summary]:
    """Aggregate the records of ``result`` per router, then the reference rows, in run order."""
    summaries = []
    names = list(dict.fromkeys(record.router for record in result.records))
    for name in names:
        records = [r for r in result.records if r.router == name]
        per_seed = []
        for seed in result.seeds:
            points = sorted((r.cost_weight, r.cost_share, r.accuracy) for r in records if r.seed == seed)
            regret = float(np.mean([r.regret / r.steps for r in records if r.seed == seed]))
            per_seed.append(_curve_metrics([p[1] for p in points], [p[2] for p in points],
                                           result.weak_accuracy, result.strong_accuracy) + (regret,))
        per_weight = {}
        for weight in result.cost_weights:
            at_weight = [r for r in records if r.cost_weight == weight]
            per_weight[weight] = {
                "accuracy": float(np.mean([r.accuracy for r in at_weight])),
                "cost_share": float(np.mean([r.cost_share for r in at_weight])),
                "regret": float(np.mean([r.regret for r in at_weight])),
            }
        summaries.append(_summary(name, per_seed, per_weight,
                                  float(np.mean([r.route_us for r in records])),
                                  float(np.mean([r.update_us for r in records]))))

    for name, curves in result.references.items():
        per_seed = [
            _curve_metrics(c.cost_shares, c.accuracies, c.weak_accuracy, c.strong_accuracy) + (float(np.mean(c.regrets)),)
            for c in curves
        ]
        per_weight = {
            weight: {
                "accuracy": float(np.mean([c.accuracies[i] for c in curves])),
                "cost_share": float(np.mean([c.cost_shares[i] for c in curves])),
                # Scaled to the replayed prompts so it reads like an online router's cumulative regret.
                "regret": float(np.mean([c.regrets[i] for c in curves])) * result.n_prompts,
            }
            for i, weight in enumerate(result.cost_weights)
        }
        summaries.append(_summary(name, per_seed, per_weight, float("nan"), float("nan")))
    return summaries


def _summary(name, per_seed, per_weight, route_us, update_us) -> Summary:
    columns = list(zip(*per_seed))
    return Summary(
        router=name,
        apgr=metrics.mean_interval(columns[0]),
        cpt50=_share_interval(columns[1]),
        cpt80=_share_interval(columns[2]),
        regret=metrics.mean_interval(columns[3]),
        per_weight=per_weight,
        route_us=route_us,
        update_us=update_us,
        seeds=len(per_seed),
    )


def _share_interval(values) -> tuple[float, float, float]:
    # CPT is a share of calls, so its interval is cut to [0, 1]: with two
    # or three seeds the Student-t interval can reach past either end.
    mean, low, high = metrics.mean_interval(values)
    return mean, max(low, 0.0), min(high, 1.0)
