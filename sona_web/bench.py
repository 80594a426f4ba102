"""Engine benchmark on CPython: latency of the hot paths and memory per stored trajectory.

Each figure is the median of many single calls timed with
``time.perf_counter`` after a warm-up, with the garbage collector paused while
timing (as ``timeit`` does). Beside each figure it prints the figure published for the
Rust reference crate (ruvector-sona 0.1.1, "Performance Results" table of its
README), the ratio ours / reference, and this project's target with
PASS/MISS. The targets are informational: the exit code is 0 either way.

Queries are synthetic: unit vectors drawn around 100 random cluster centres,
so that the ReasoningBank forms patterns as it would on real traffic.

Usage::

    python -m sona_web.bench [--quick] [--json]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .config import SonaConfig
from .engine import SonaEngine

__all__ = ["METRICS", "Metric", "format_table", "machine_info", "main", "run_benchmarks"]

DIM = 256
ATTENTION_LENGTH = 64
ROUTES = ("concise", "step_by_step", "empathetic", "formal")
CLUSTERS = 100
# Norm of the noise added to a cluster centre before normalising a query.
NOISE = 0.5
# Background cycle workload: new trajectories per cycle and the buffer size.
CYCLE_NEW = 1_000
CYCLE_STORED = 10_000
# A micro-batch this large never fills during a timed loop, so instant
# learning waits for an explicit flush().
DEFERRED_BATCH = 4096
# Deferred trajectories are flushed in groups of this size.
# NOTE: one instant update steps the value heads by the gradient summed over
# its trajectories, so flushes of 128 or more made the heads diverge to NaN in
# testing; 32 is the batch_processing preset's micro-batch and stays stable.
FLUSH_EVERY = 32


@dataclass(frozen=True)
class Metric:
    """One benchmark figure with its reference and target, both in ``unit``."""

    key: str
    label: str
    unit: str
    reference: float | None = None
    reference_label: str = ""
    target: float | None = None


METRICS = (
    Metric("micro_lora_one_us", "apply_micro_lora, one 256-d vector", "us",
           45.0, "MicroLoRA forward (256d)", 10.0),
    Metric("micro_lora_batch32_per_vector_us", "apply_micro_lora, per vector in a batch of 32", "us"),
    Metric("record_only_us", "begin + step + route + end, instant learning deferred", "us",
           0.112, "trajectory recording"),
    Metric("record_with_instant_us", "begin + step + route + end with instant learning", "us",
           34.112, "recording 112 ns + instant learning 34 us", 30.0),
    Metric("instant_learning_us", "instant learning of one trajectory (flush of 1)", "us",
           34.0, "instant learning cycle"),
    Metric("instant_learning_batch32_per_trajectory_us", "instant learning per trajectory, flush of 32", "us"),
    Metric("find_patterns_us", "find_patterns over 100 patterns, k=5", "us",
           1300.0, "pattern search (100 clusters)", 50.0),
    Metric("background_cycle_ms", "background cycle, 1,000 new of 10,000 stored, with steps", "ms",
           5.0, "background learning", 20.0),
    Metric("background_cycle_no_steps_ms", "background cycle, 1,000 new of 10,000 stored, no steps", "ms",
           5.0, "background learning", 20.0),
    Metric("bytes_per_trajectory", "bytes per stored trajectory, no steps", "B",
           800.0, "memory per trajectory", 800.0),
    Metric("bytes_per_trajectory_with_steps", "bytes per stored trajectory, with steps", "B",
           800.0, "memory per trajectory", 800.0),
)


@dataclass(frozen=True)
class _Plan:
    """Timed calls per microsecond-scale figure, and timed background cycles."""

    calls: int
    cycles: int


_FULL = _Plan(calls=3000, cycles=9)
_QUICK = _Plan(calls=60, cycles=2)
WARMUP_CALLS = 20


# Timing ------------------------------------------------------------------


def _median_latency(func: Callable[[], object], calls: int, setup: Callable[[], object] | None = None) -> float:
    """Return the median seconds of ``calls`` single ``func()`` calls, each after an untimed ``setup()``.

    Calls are timed one by one, so on a busy machine a call that loses the CPU
    is an outlier that the median ignores, not a share of every sample.
    """
    for _ in range(WARMUP_CALLS):
        if setup is not None:
            setup()
        func()
    samples = []
    gc.disable()
    try:
        for _ in range(calls):
            if setup is not None:
                setup()
            start = time.perf_counter()
            func()
            samples.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return statistics.median(samples)


# Workload ----------------------------------------------------------------


class _Traffic:
    """Seeded synthetic trajectories: clustered unit queries, step activations, routes and qualities."""

    def __init__(self, seed: int = 0, size: int = 4096):
        rng = np.random.default_rng(seed)
        centres = _unit(rng.standard_normal((CLUSTERS, DIM)))
        cluster = rng.integers(CLUSTERS, size=size)
        noise = NOISE * rng.standard_normal((size, DIM)) / math.sqrt(DIM)
        self.queries = _unit(centres[cluster] + noise).astype(np.float32)
        self.activations = np.tanh(4.0 * self.queries).astype(np.float32)
        self.attention = np.full(ATTENTION_LENGTH, 1.0 / ATTENTION_LENGTH, dtype=np.float32)
        self.routes = [ROUTES[c % len(ROUTES)] for c in cluster]
        # Mostly good outcomes, so every cycle gives the bank enough good trajectories to cluster.
        self.quality = np.where(rng.random(size) < 0.8, 0.9, 0.2)
        self._next = itertools.cycle(range(size))

    def record(self, engine: SonaEngine, with_step: bool = True) -> None:
        i = next(self._next)
        trajectory_id = engine.begin_trajectory(self.queries[i])
        if with_step:
            engine.add_trajectory_step(trajectory_id, self.activations[i], self.attention, float(self.quality[i]))
        engine.set_trajectory_route(trajectory_id, self.routes[i])
        engine.end_trajectory(trajectory_id, float(self.quality[i]))

    def record_many(self, engine: SonaEngine, count: int, with_step: bool = True) -> None:
        for _ in range(count):
            self.record(engine, with_step)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _engine(**overrides) -> SonaEngine:
    # A fixed clock keeps pattern timestamps out of the measurement.
    return SonaEngine.with_config(SonaConfig.default(hidden_dim=DIM, embedding_dim=DIM, **overrides), clock=lambda: 0.0)


def _trained_engine(traffic: _Traffic, **overrides) -> SonaEngine:
    """Return an engine that has learned from 1,024 trajectories, so adapters and heads are non-zero."""
    engine = _engine(**overrides)
    for _ in range(1024 // FLUSH_EVERY):
        traffic.record_many(engine, FLUSH_EVERY)
        engine.flush()
    engine.force_learn()
    return engine


# Benchmarks --------------------------------------------------------------


def _bench_micro_lora(traffic: _Traffic, plan: _Plan) -> dict[str, float]:
    engine = _trained_engine(traffic)
    one = traffic.queries[0]
    batch = traffic.queries[:32]
    return {
        "micro_lora_one_us": _median_latency(lambda: engine.apply_micro_lora(one), plan.calls) * 1e6,
        "micro_lora_batch32_per_vector_us": _median_latency(lambda: engine.apply_micro_lora(batch), plan.calls) * 1e6 / 32,
    }


def _bench_recording(traffic: _Traffic, plan: _Plan) -> dict[str, float]:
    instant = _trained_engine(traffic)
    with_instant = _median_latency(lambda: traffic.record(instant), plan.calls)

    deferred = _trained_engine(traffic, micro_batch_size=DEFERRED_BATCH)

    def flush_now_and_then() -> None:
        if deferred.stats()["pending_updates"] >= FLUSH_EVERY:
            deferred.flush()

    record_only = _median_latency(lambda: traffic.record(deferred), plan.calls, setup=flush_now_and_then)
    return {"record_with_instant_us": with_instant * 1e6, "record_only_us": record_only * 1e6}


def _bench_instant_learning(traffic: _Traffic, plan: _Plan) -> dict[str, float]:
    engine = _trained_engine(traffic, micro_batch_size=DEFERRED_BATCH)
    one = _median_latency(engine.flush, plan.calls, setup=lambda: traffic.record(engine))
    batch = _median_latency(
        engine.flush, max(5, plan.calls // 8), setup=lambda: traffic.record_many(engine, FLUSH_EVERY)
    )
    return {"instant_learning_us": one * 1e6, "instant_learning_batch32_per_trajectory_us": batch * 1e6 / FLUSH_EVERY}


def _bench_find_patterns(traffic: _Traffic, plan: _Plan) -> dict[str, float]:
    # Every trajectory counts as good here, and 2,000 of them around 100
    # clusters fill a 100-pattern bank in one cycle unless near-duplicate
    # patterns merge; further cycles then fill the gaps.
    engine = _engine(pattern_clusters=CLUSTERS, quality_threshold=0.1)
    for _ in range(5):
        traffic.record_many(engine, 2000)
        engine.force_learn()
        patterns = engine.stats()["patterns"]
        if patterns == CLUSTERS:
            break
    query = traffic.queries[1]
    seconds = _median_latency(lambda: engine.find_patterns(query, k=5), plan.calls)
    return {"find_patterns_us": seconds * 1e6, "find_patterns_bank_size": float(patterns)}


def _bench_background_cycle(traffic: _Traffic, plan: _Plan, with_steps: bool) -> float:
    engine = _engine(trajectory_capacity=CYCLE_STORED)
    for _ in range(CYCLE_STORED // CYCLE_NEW):
        traffic.record_many(engine, CYCLE_NEW, with_steps)
        engine.force_learn()

    def add_new() -> None:
        traffic.record_many(engine, CYCLE_NEW, with_steps)

    # Two warm-up cycles are enough: each costs milliseconds, not microseconds.
    for _ in range(2):
        add_new()
        engine.force_learn()
    samples = []
    for _ in range(plan.cycles):
        add_new()
        start = time.perf_counter()
        engine.force_learn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def _bytes_per_trajectory(traffic: _Traffic, with_steps: bool) -> float:
    engine = _engine(trajectory_capacity=CYCLE_STORED)
    traffic.record(engine, with_steps)
    return engine.stats()["buffer_bytes"] / CYCLE_STORED


def run_benchmarks(quick: bool = False) -> dict[str, float]:
    """Run every benchmark and return {metric key: value in the metric's unit}.

    Also returns ``find_patterns_bank_size``, the number of patterns that
    find_patterns searched.
    """
    plan = _QUICK if quick else _FULL
    # Each benchmark gets its own traffic from the same seed, so none depends on what the others consumed.
    results: dict[str, float] = {}
    results.update(_bench_micro_lora(_Traffic(), plan))
    results.update(_bench_recording(_Traffic(), plan))
    results.update(_bench_instant_learning(_Traffic(), plan))
    results.update(_bench_find_patterns(_Traffic(), plan))
    results["background_cycle_ms"] = _bench_background_cycle(_Traffic(), plan, with_steps=True)
    results["background_cycle_no_steps_ms"] = _bench_background_cycle(_Traffic(), plan, with_steps=False)
    results["bytes_per_trajectory"] = _bytes_per_trajectory(_Traffic(), with_steps=False)
    results["bytes_per_trajectory_with_steps"] = _bytes_per_trajectory(_Traffic(), with_steps=True)
    return results


def machine_info() -> dict[str, object]:
    """Return the CPU count and model, load average, BLAS thread settings, Python and numpy versions."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "blas_threads": {name: os.environ.get(name) for name in _THREAD_VARIABLES},
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


# Environment variables that set the thread count of numpy's BLAS. The
# engine's matrices are small, so BLAS threads mostly add synchronisation: on
# a busy 2-core machine one (1000, 256) @ (256, 8) product took 39 ms with
# OpenBLAS's default threads and 0.17 ms with OPENBLAS_NUM_THREADS=1.
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# Report ------------------------------------------------------------------


def _verdict(metric: Metric, value: float) -> str:
    if metric.target is None:
        return ""
    return "PASS" if value <= metric.target else "MISS"


def _format_value(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value:.0f} B"
    return f"{value:.3g} {unit.replace('us', 'µs')}"


def _report_rows(results: dict[str, float]) -> list[dict]:
    rows = []
    for metric in METRICS:
        value = results[metric.key]
        rows.append({
            "key": metric.key,
            "label": metric.label,
            "unit": metric.unit,
            "value": value,
            "reference": metric.reference,
            "reference_label": metric.reference_label,
            "ratio": value / metric.reference if metric.reference else None,
            "target": metric.target,
            "verdict": _verdict(metric, value),
        })
    return rows


def format_table(results: dict[str, float], info: dict, quick: bool = False) -> str:
    """Return the human-readable report of :func:`run_benchmarks` results and :func:`machine_info`."""
    threads = ", ".join(f"{name}={value}" for name, value in info["blas_threads"].items() if value) or "BLAS default"
    lines = [
        f"sona_web engine benchmark{' (quick)' if quick else ''}: {info['implementation']} {info['python']}, "
        f"numpy {info['numpy']}, {info['cpus']} CPUs ({info['cpu_model']}), {threads}, "
        f"load average {info['load_average_1min']:.1f}",
        "reference: ruvector-sona 0.1.1 README; ratio = ours / reference; targets are for this project",
        "",
        f"{'benchmark':<58} {'ours':>10} {'reference':>10} {'ratio':>7} {'target':>10}",
    ]
    for row in _report_rows(results):
        reference = _format_value(row["reference"], row["unit"]) if row["reference"] else "-"
        ratio = f"{row['ratio']:.3g}" if row["ratio"] is not None else "-"
        target = f"<= {_format_value(row['target'], row['unit'])}" if row["target"] else "-"
        lines.append(
            f"{row['label']:<58} {_format_value(row['value'], row['unit']):>10} {reference:>10} "
            f"{ratio:>7} {target:>10} {row['verdict']}".rstrip()
        )
    lines += ["", f"find_patterns searched {results['find_patterns_bank_size']:.0f} patterns."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sona_web.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time fewer calls (for tests), so the figures are noisier")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)

    results = run_benchmarks(quick=args.quick)
    info = machine_info()
    if args.json:
        rows = _report_rows(results)
        print(json.dumps({"quick": args.quick, "machine": info, "results": results, "rows": rows}, indent=2))
    else:
        print(format_table(results, info, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
