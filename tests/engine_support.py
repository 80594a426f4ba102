"""Helpers shared by the engine conformance tests: a fake clock, small engines, a trajectory feeder."""

from __future__ import annotations

import numpy as np

from sona_web import SonaConfig, SonaEngine

__all__ = ["FakeClock", "engine_snapshot", "record", "small_engine", "unit", "unit_rows"]


class FakeClock:
    """A clock that only moves when a test moves it, so timestamps in saved state are reproducible."""

    def __init__(self, now: float = 1_000.0):
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((count, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def small_engine(dim: int = 8, clock: FakeClock | None = None, **overrides) -> SonaEngine:
    """Build an engine of width ``dim`` on a fake clock, with ``overrides`` as config fields."""
    fields = {"hidden_dim": dim, "embedding_dim": dim, **overrides}
    return SonaEngine.with_config(SonaConfig.default(**fields), clock=clock or FakeClock())


def record(engine: SonaEngine, embedding, quality: float, route: str | None = None, steps=(), context=None) -> int:
    """Run one whole trajectory through the public API; ``steps`` contains (activations, attention, reward) triples."""
    trajectory_id = engine.begin_trajectory(embedding)
    for activations, attention, reward in steps:
        engine.add_trajectory_step(trajectory_id, activations, attention, reward)
    if route is not None:
        engine.set_trajectory_route(trajectory_id, route)
    if context is not None:
        engine.add_trajectory_context(trajectory_id, context)
    engine.end_trajectory(trajectory_id, quality)
    return trajectory_id


def engine_snapshot(engine: SonaEngine) -> tuple[bytes, list]:
    """Return the saved state plus the trajectories still in flight, which ``save_state`` leaves out."""
    in_flight = []
    for trajectory_id, trajectory in engine._active.items.items():
        steps = [np.asarray(a).tobytes() for a in trajectory.activations]
        in_flight.append((
            trajectory_id,
            trajectory.embedding.tobytes(),
            steps,
            list(trajectory.rewards),
            list(trajectory.attention_entropy),
            trajectory.route,
            trajectory.context,
            trajectory.record,
        ))
    return engine.save_state(), in_flight
