"""Random sequences of valid and invalid calls on a small engine (hypothesis stateful testing).

The machine keeps its own model of which trajectories are in flight and how
many steps each has, so it can tell which exception every call must raise. After
any rejected call the engine's saved state and its trajectories in flight must
be exactly as before. Saving and loading may happen at any point: the restored
engine must give the same outputs and then carries on in place of the original.

The default run is derandomised and short. For a long random search run
``SONA_HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/test_stateful.py``.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from numpy.testing import assert_array_equal

from sona_web import SonaConfig, SonaEngine

from engine_support import FakeClock, engine_snapshot

PROFILES = {
    "default": {"max_examples": 60, "stateful_step_count": 50, "derandomize": True},
    "thorough": {"max_examples": 1_000, "stateful_step_count": 100, "derandomize": False},
}
PROFILE_NAME = os.environ.get("SONA_HYPOTHESIS_PROFILE", "default")
if PROFILE_NAME not in PROFILES:
    raise ValueError(f"SONA_HYPOTHESIS_PROFILE must be one of {sorted(PROFILES)}, got {PROFILE_NAME!r}")
RUN_SETTINGS = settings(
    **PROFILES[PROFILE_NAME],
    # Run time on a shared two-core machine varies too much for per-example deadlines.
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

CENTRES = np.eye(8)[:3]
ROUTES = ["fast", "careful", "cheap"]
ERRORS = (ValueError, TypeError, KeyError)


def finite_vectors(dim: int):
    """Query-like vectors: noisy copies of a few centres (so patterns form) or arbitrary values."""
    noise = hnp.arrays(np.float64, dim, elements=st.floats(-0.2, 0.2))
    near_centre = st.tuples(st.integers(0, len(CENTRES) - 1), noise).map(
        lambda pair: np.resize(CENTRES[pair[0]], dim) + pair[1]
    )
    arbitrary = hnp.arrays(np.float64, dim, elements=st.floats(-100.0, 100.0, width=32))
    return st.one_of(near_centre, arbitrary)


def _with(value, index: int, dim: int) -> np.ndarray:
    vector = np.ones(dim)
    vector[index % dim] = value
    return vector


def invalid_vectors(dim: int):
    """(value, expected exception type) pairs that a single-vector input must reject."""
    return st.sampled_from([
        (np.ones(dim - 1), ValueError),
        (np.ones(dim + 1), ValueError),
        (np.ones((2, dim)), ValueError),
        (_with(np.nan, 3, dim), ValueError),
        (_with(np.inf, 0, dim), ValueError),
        (_with(-np.inf, 5, dim), ValueError),
        ("not a vector", TypeError),
        ([None] * dim, ValueError),
        ({"a": 1}, TypeError),
    ])


def vector_inputs(dim: int):
    """(value, None) for a valid vector or (value, exception type) for an invalid one, valid three times in four."""
    valid = finite_vectors(dim).map(lambda v: (v, None))
    return st.one_of(valid, valid, valid, invalid_vectors(dim))


# Besides ordinary weights, float32 extremes: subnormals and values whose sum overflows float32.
ATTENTION_WEIGHTS = st.one_of(st.floats(0.0, 10.0), st.sampled_from([1e-45, 1e-40, 3e38]))
VALID_ATTENTION = hnp.arrays(np.float64, st.integers(1, 6), elements=ATTENTION_WEIGHTS)
ATTENTION = st.one_of(
    VALID_ATTENTION.map(lambda a: (a, None)),
    VALID_ATTENTION.map(lambda a: (a, None)),
    st.sampled_from([
        ([], ValueError),
        (np.ones((2, 2)), ValueError),
        ([0.5, -0.1], ValueError),
        ([np.nan], ValueError),
        ("attention", TypeError),
    ]),
)
VALID_REWARDS = st.floats(-1e3, 1e3)
REWARDS = st.one_of(
    VALID_REWARDS.map(lambda r: (r, None)),
    VALID_REWARDS.map(lambda r: (r, None)),
    st.sampled_from([(math.nan, ValueError), (math.inf, ValueError), ("1", TypeError), (True, TypeError)]),
)
QUALITIES = st.one_of(
    st.floats(0.0, 1.0).map(lambda q: (q, None)),
    st.sampled_from([0, 1]).map(lambda q: (q, None)),
    st.sampled_from([(-0.01, ValueError), (1.01, ValueError), (math.nan, ValueError), ("0.5", TypeError), (None, TypeError)]),
)
LABELS = st.one_of(
    st.sampled_from(ROUTES).map(lambda r: (r, None)),
    st.sampled_from([("", ValueError), ("x" * 300, ValueError), (3, TypeError), (None, TypeError)]),
)


class EngineMachine(RuleBasedStateMachine):
    """Drive one engine with random valid and invalid calls and check every outcome."""

    CONFIG = SonaConfig.default(
        hidden_dim=8,
        embedding_dim=8,
        base_lora_layers=2,
        max_active_trajectories=3,
        trajectory_capacity=12,
        pattern_clusters=3,
        max_steps_per_trajectory=2,
        micro_batch_size=2,
        replay_batch_size=4,
        background_interval_ms=50,
    )

    def __init__(self):
        super().__init__()
        self.clock = FakeClock()
        self.engine = SonaEngine.with_config(self.CONFIG, clock=self.clock)
        # Trajectory id -> steps recorded so far, or None when begun while disabled (steps are then dropped).
        self.active: OrderedDict[int, int | None] = OrderedDict()
        self.gone: list[int] = []
        self.enabled = True

    # Helpers -----------------------------------------------------------------

    @property
    def config(self) -> SonaConfig:
        return self.engine.config

    def expect(self, error, call, *args):
        """Make a call that must succeed (``error`` None) or raise ``error`` and change nothing."""
        if error is None:
            return call(*args)
        before = engine_snapshot(self.engine)
        with pytest.raises(error):
            call(*args)
        after = engine_snapshot(self.engine)
        assert after[0] == before[0], f"{call.__name__} changed the saved state while raising {error.__name__}"
        assert after[1] == before[1], f"{call.__name__} changed trajectories in flight while raising {error.__name__}"
        return None

    def pick_id(self, data):
        """Draw an id that is active, ended or expired, never issued, or not an int at all."""
        # Active ids appear twice, so about half the calls reach the checks after the id.
        choices = [*self.active, *self.active, *self.gone[-4:], self.engine._next_id + 7, "1", 2.0]
        return data.draw(st.sampled_from(choices), label="trajectory_id")

    def id_error(self, trajectory_id):
        if isinstance(trajectory_id, str) or isinstance(trajectory_id, float):
            return TypeError
        return None if trajectory_id in self.active else KeyError

    def retire(self, trajectory_id: int) -> None:
        del self.active[trajectory_id]
        self.gone.append(trajectory_id)

    def probe(self, engine: SonaEngine) -> dict:
        rng = np.random.default_rng(0)
        queries = rng.standard_normal((3, self.config.embedding_dim))
        hidden = rng.standard_normal((3, self.config.hidden_dim))
        result = {
            "micro": engine.apply_micro_lora(hidden),
            "transform": engine.transform(queries),
            "quality": engine.predict_quality(queries[0]),
            # Trajectories in flight are not saved, and last_cycle_ms is wall time.
            "stats": {k: v for k, v in engine.stats().items() if k not in ("active_trajectories", "last_cycle_ms")},
        }
        for layer in range(self.config.base_lora_layers):
            result[f"base{layer}"] = engine.apply_base_lora(layer, hidden)
        return result

    @staticmethod
    def assert_finite(array, shape) -> None:
        assert array.dtype == np.float32
        assert array.shape == shape
        assert np.isfinite(array).all(), "non-finite output"

    # Trajectories --------------------------------------------------------------

    @rule(data=st.data())
    def begin(self, data):
        value, error = data.draw(vector_inputs(self.config.embedding_dim), label="query_embedding")
        trajectory_id = self.expect(error, self.engine.begin_trajectory, value)
        if error is not None:
            return
        assert trajectory_id not in self.active
        assert trajectory_id not in self.gone
        if len(self.active) >= self.config.max_active_trajectories:
            self.retire(next(iter(self.active)))
        self.active[trajectory_id] = 0 if self.enabled else None

    @rule(data=st.data(), attention=ATTENTION, reward=REWARDS)
    def step(self, data, attention, reward):
        trajectory_id = self.pick_id(data)
        activations = data.draw(vector_inputs(self.config.hidden_dim), label="activations")
        steps = self.active.get(trajectory_id) if not isinstance(trajectory_id, (str, float)) else None
        limit_reached = steps is not None and steps >= self.config.max_steps_per_trajectory
        error = (
            self.id_error(trajectory_id) or activations[1] or attention[1] or reward[1]
            or (ValueError if limit_reached else None)
        )
        self.expect(error, self.engine.add_trajectory_step, trajectory_id, activations[0], attention[0], reward[0])
        if error is None and steps is not None:
            self.active[trajectory_id] = steps + 1

    @rule(data=st.data(), label=LABELS)
    def route(self, data, label):
        trajectory_id = self.pick_id(data)
        self.expect(self.id_error(trajectory_id) or label[1], self.engine.set_trajectory_route, trajectory_id, label[0])

    @rule(data=st.data(), label=LABELS)
    def context(self, data, label):
        trajectory_id = self.pick_id(data)
        self.expect(self.id_error(trajectory_id) or label[1], self.engine.add_trajectory_context, trajectory_id, label[0])

    @rule(data=st.data(), quality=QUALITIES)
    def end(self, data, quality):
        trajectory_id = self.pick_id(data)
        error = self.id_error(trajectory_id) or quality[1]
        recorded_before = self.engine.stats()["trajectories_recorded"]
        self.expect(error, self.engine.end_trajectory, trajectory_id, quality[0])
        if error is None:
            # Begun while enabled and ended while enabled: only then is it recorded.
            recorded = self.active[trajectory_id] is not None and self.enabled
            self.retire(trajectory_id)
            assert self.engine.stats()["trajectories_recorded"] == recorded_before + int(recorded)

    @rule(
        data=st.data(),
        steps=st.lists(st.tuples(VALID_ATTENTION, VALID_REWARDS), max_size=2),
        route=st.sampled_from([None, *ROUTES]),
        quality=st.floats(0.0, 1.0),
    )
    def whole_trajectory(self, data, steps, route, quality):
        """Run a valid trajectory from begin to end, so learning and pattern building get exercised."""
        config = self.config
        trajectory_id = self.engine.begin_trajectory(data.draw(finite_vectors(config.embedding_dim)))
        for attention, reward in steps[: config.max_steps_per_trajectory]:
            activations = data.draw(finite_vectors(config.hidden_dim))
            self.engine.add_trajectory_step(trajectory_id, activations, attention, reward)
        if route is not None:
            self.engine.set_trajectory_route(trajectory_id, route)
        recorded_before = self.engine.stats()["trajectories_recorded"]
        self.engine.end_trajectory(trajectory_id, quality)
        assert self.engine.stats()["trajectories_recorded"] == recorded_before + int(self.enabled)

        # Beginning may have expired the oldest trajectory in flight.
        if len(self.active) >= config.max_active_trajectories:
            self.retire(next(iter(self.active)))
        self.gone.append(trajectory_id)

    # Inference -----------------------------------------------------------------

    @rule(data=st.data(), rows=st.integers(0, 4), bad=st.booleans())
    def apply_micro(self, data, rows, bad):
        dim = self.config.hidden_dim
        if bad:
            self.expect(ValueError, self.engine.apply_micro_lora, np.ones((rows, dim - 1)))
            return
        x = data.draw(finite_vectors(dim), label="x")
        batch = np.tile(x, (rows, 1))
        self.assert_finite(self.engine.apply_micro_lora(batch), (rows, dim))
        self.assert_finite(self.engine.apply_micro_lora(x), (dim,))

    @rule(data=st.data(), layer=st.integers(-1, 3))
    def apply_base(self, data, layer):
        x = data.draw(finite_vectors(self.config.hidden_dim), label="x")
        if not 0 <= layer < self.config.base_lora_layers:
            self.expect(ValueError, self.engine.apply_base_lora, layer, x)
            return
        self.assert_finite(self.engine.apply_base_lora(layer, x), (self.config.hidden_dim,))

    @rule(data=st.data())
    def transform_and_predict(self, data):
        dim = self.config.embedding_dim
        value, error = data.draw(vector_inputs(dim), label="query_embedding")
        # transform also takes a batch of shape (n, embedding_dim), but predict_quality takes one query.
        is_batch = isinstance(value, np.ndarray) and value.shape == (2, dim)
        self.expect(None if is_batch else error, self.engine.transform, value)
        self.expect(error, self.engine.predict_quality, value)
        if error is None:
            self.assert_finite(self.engine.transform(value), (self.config.hidden_dim,))
            predicted = self.engine.predict_quality(value)
            assert set(predicted) == set(self.engine.routes)
            assert all(math.isfinite(v) for v in predicted.values())

    @rule(data=st.data(), k=st.one_of(st.integers(1, 5), st.sampled_from([0, 1001, True, 2.5])))
    def find_patterns(self, data, k):
        value, error = data.draw(vector_inputs(self.config.embedding_dim), label="query_embedding")
        int_k = isinstance(k, int) and not isinstance(k, bool)
        if not int_k:
            k_error = TypeError
        elif not 1 <= k <= 1000:
            k_error = ValueError
        else:
            k_error = None
        # The query is checked before k, so a bad query's error comes first.
        error = error or k_error
        patterns = self.expect(error, self.engine.find_patterns, value, k)
        if error is not None:
            return
        assert len(patterns) <= min(k, self.config.pattern_clusters)
        if not self.enabled:
            assert patterns == []
        for pattern in patterns:
            self.assert_finite(pattern["centroid"], (self.config.hidden_dim,))
            assert pattern["last_accessed"] == self.clock.now
            for key in ("total_weight", "avg_quality", "similarity"):
                assert math.isfinite(pattern[key]), key

    # Background loop and control ----------------------------------------------

    @rule(seconds=st.floats(0.0, 0.2))
    def tick(self, seconds):
        self.clock.advance(seconds)
        summary = self.engine.tick()
        if summary is not None:
            assert self.enabled
            assert math.isfinite(summary["replay_loss"])

    @rule()
    def force_learn(self):
        summary = self.engine.force_learn()
        assert math.isfinite(summary["replay_loss"])
        assert math.isfinite(summary["micro_fold_residual"])
        assert self.engine.stats()["pending_updates"] == 0

    @rule()
    def flush(self):
        pending = self.engine.stats()["pending_updates"]
        assert self.engine.flush() == pending
        assert self.engine.stats()["pending_updates"] == 0

    @rule(value=st.one_of(st.booleans(), st.sampled_from([0, 1, "no", None])))
    def set_enabled(self, value):
        error = None if isinstance(value, bool) else TypeError
        self.expect(error, self.engine.set_enabled, value)
        if error is None:
            self.enabled = value
        assert self.engine.is_enabled() is self.enabled

    # Persistence ---------------------------------------------------------------

    @rule()
    def save_and_load(self):
        data = self.engine.save_state()
        restored = SonaEngine.load_state(data, clock=self.clock)
        assert restored.save_state() == data

        original_outputs = self.probe(self.engine)
        restored_outputs = self.probe(restored)
        for key, value in original_outputs.items():
            if isinstance(value, np.ndarray):
                assert_array_equal(restored_outputs[key], value, err_msg=key)
            else:
                assert restored_outputs[key] == value, key

        # Trajectories in flight are not saved: their ids are unknown to the restored engine.
        for trajectory_id in list(self.active):
            self.retire(trajectory_id)
        self.engine = restored

    @rule(cut=st.integers(1, 64), flip=st.booleans())
    def load_damaged(self, cut, flip):
        data = bytearray(self.engine.save_state())
        if flip:
            data[len(data) - cut] ^= 0xFF
        else:
            data = data[:-cut]
        before = engine_snapshot(self.engine)
        with pytest.raises(ValueError, match="state"):
            SonaEngine.load_state(bytes(data), clock=self.clock)
        assert engine_snapshot(self.engine) == before

    # Invariants ----------------------------------------------------------------

    @invariant()
    def memory_is_bounded(self):
        stats = self.engine.stats()
        config = self.config
        assert stats["active_trajectories"] == len(self.active) <= config.max_active_trajectories
        assert stats["buffered_trajectories"] <= config.trajectory_capacity
        assert stats["patterns"] <= config.pattern_clusters
        assert stats["pending_updates"] < config.micro_batch_size

    @invariant()
    def in_flight_ids_match(self):
        assert list(self.engine._active.items) == list(self.active)

    @invariant()
    def stats_are_finite(self):
        for key, value in self.engine.stats().items():
            if isinstance(value, float):
                assert math.isfinite(value), key


class ProjectedEngineMachine(EngineMachine):
    """The same calls on an engine with a query projection, float64 adapters and larger micro-batches."""

    CONFIG = SonaConfig.default(
        hidden_dim=8,
        embedding_dim=12,
        micro_lora_rank=1,
        base_lora_layers=1,
        max_active_trajectories=2,
        trajectory_capacity=6,
        pattern_clusters=2,
        max_steps_per_trajectory=1,
        micro_batch_size=3,
        replay_batch_size=2,
        background_interval_ms=0,
        enable_simd=False,
    )



TestEngineCalls = EngineMachine.TestCase
TestEngineCalls.settings = RUN_SETTINGS
TestProjectedEngineCalls = ProjectedEngineMachine.TestCase
TestProjectedEngineCalls.settings = RUN_SETTINGS
