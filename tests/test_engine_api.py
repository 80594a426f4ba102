"""The public API of SonaEngine and AdaptiveRouter: construction, every rejected input, and call contracts.

Each rejected call is made through ``assert_rejected``, which also checks that
the engine's saved state and its trajectories in flight are exactly as before.
The fake clock keeps the timestamps in the saved state reproducible.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sona_web import AdaptiveRouter, RouteDecision, SonaConfig, SonaEngine, SonaEngineBuilder
from sona_web.engine import MAX_ATTENTION_LENGTH, MAX_ROUTES
from sona_web.state import unpack

from engine_support import FakeClock, engine_snapshot, record, small_engine, unit, unit_rows

DIM = 8
PATTERN_KEYS = {
    "id", "centroid", "cluster_size", "total_weight", "avg_quality", "created_at", "last_accessed",
    "access_count", "pattern_type", "route_stats", "similarity",
}
STATS_KEYS = {
    "trajectories_recorded", "instant_updates", "background_cycles", "steps_recorded", "active_trajectories",
    "buffered_trajectories", "new_trajectories", "expired_trajectories", "dropped_trajectories",
    "pending_updates", "patterns", "routes", "ewc_tasks", "boundary_statistic", "quality_baseline",
    "mean_attention_entropy", "last_cycle_ms", "buffer_bytes", "enabled",
}


def assert_rejected(engine: SonaEngine, error: type, match: str, call, *args, **kwargs):
    """Check that ``call`` raises ``error`` matching ``match`` and changes nothing in ``engine``."""
    before = engine_snapshot(engine)
    with pytest.raises(error, match=match):
        call(*args, **kwargs)
    after = engine_snapshot(engine)
    assert after[0] == before[0], "saved state changed by a rejected call"
    assert after[1] == before[1], "trajectories in flight changed by a rejected call"


def trained_engine(clock: FakeClock | None = None, **overrides) -> SonaEngine:
    """An engine with two routes, a context label, steps and learned patterns."""
    engine = small_engine(clock=clock, trajectory_capacity=64, **overrides)
    rng = np.random.default_rng(11)
    centres = np.eye(DIM)[:3]
    for i in range(36):
        x = unit(centres[i % 3] + 0.1 * rng.standard_normal(DIM))
        steps = [(rng.standard_normal(DIM), rng.random(4), float(rng.random()))]
        record(engine, x, 0.9 if i % 4 else 0.2, f"route{i % 2}", steps, context=f"topic{i % 3}")
    engine.force_learn()
    # A background cycle folds MicroLoRA into BaseLoRA, so a few more trajectories train it again.
    for i in range(4):
        steps = [(rng.standard_normal(DIM), rng.random(4), float(rng.random()))]
        record(engine, unit(rng.standard_normal(DIM)), float(i % 2), f"route{i % 2}", steps)
    return engine


@pytest.fixture
def engine() -> SonaEngine:
    return trained_engine()


@pytest.fixture
def active(engine) -> int:
    """An active trajectory with one step, a route and a context."""
    trajectory_id = engine.begin_trajectory(unit(np.ones(DIM)))
    engine.add_trajectory_step(trajectory_id, np.ones(DIM), [0.5, 0.5], 0.3)
    engine.set_trajectory_route(trajectory_id, "route0")
    engine.add_trajectory_context(trajectory_id, "topic0")
    return trajectory_id


# Construction -------------------------------------------------------------


def test_engine_from_hidden_dim():
    engine = SonaEngine(16)
    assert engine.config.hidden_dim == 16
    assert engine.config.embedding_dim == 16
    assert engine.config == SonaConfig.default(hidden_dim=16, embedding_dim=16)


def test_engine_default_width():
    assert SonaEngine().config.hidden_dim == 256


def test_engine_with_config():
    config = SonaConfig.edge_deployment(hidden_dim=32, embedding_dim=48)
    engine = SonaEngine.with_config(config)
    assert engine.config == config
    assert engine.transform(np.ones(48)).shape == (32,)


def test_engine_config_argument_matching_width():
    config = SonaConfig.default(hidden_dim=16, embedding_dim=16)
    assert SonaEngine(16, config=config).config == config
    assert SonaEngine(config=config).config == config


def test_engine_config_is_a_copy():
    config = SonaConfig.default(hidden_dim=16, embedding_dim=16)
    engine = SonaEngine.with_config(config)
    config.hidden_dim = 32
    assert engine.config.hidden_dim == 16
    assert engine.config is not config


def test_engine_rejects_conflicting_width():
    config = SonaConfig.default(hidden_dim=16, embedding_dim=16)
    with pytest.raises(ValueError, match=re.escape("hidden_dim=32 disagrees with config.hidden_dim=16; pass one")):
        SonaEngine(32, config=config)


def test_engine_rejects_non_config():
    with pytest.raises(TypeError, match="config must be a SonaConfig, got dict"):
        SonaEngine(config={"hidden_dim": 16})


def test_engine_with_config_rejects_non_config():
    with pytest.raises(TypeError, match="config must be a SonaConfig, got NoneType"):
        SonaEngine.with_config(None)


def test_engine_rejects_invalid_config():
    config = SonaConfig.default()
    config.base_lora_layers = 0
    with pytest.raises(ValueError, match=re.escape("base_lora_layers must be in [1, 8], got 0")):
        SonaEngine.with_config(config)


def test_engine_rejects_invalid_width():
    with pytest.raises(ValueError, match=r"hidden_dim must be in \[\d+, 8192\], got 0"):
        SonaEngine(0)


def test_engine_rejects_non_callable_clock():
    with pytest.raises(TypeError, match="clock must be callable, got float"):
        SonaEngine(16, clock=12.5)


def test_builder_width_and_overrides():
    clock = FakeClock(5.0)
    engine = SonaEngine.builder().hidden_dim(16).set(pattern_clusters=5, seed=3).clock(clock).build()
    assert isinstance(SonaEngine.builder(), SonaEngineBuilder)
    assert (engine.config.hidden_dim, engine.config.embedding_dim) == (16, 16)
    assert (engine.config.pattern_clusters, engine.config.seed) == (5, 3)
    assert engine._clock is clock


def test_builder_preset():
    engine = SonaEngine.builder().preset("edge_deployment").build()
    assert engine.config == SonaConfig.edge_deployment()
    engine = SonaEngine.builder().preset("max_quality").hidden_dim(32).build()
    assert engine.config == SonaConfig.max_quality(hidden_dim=32, embedding_dim=32)


def test_builder_embedding_dim():
    engine = SonaEngine.builder().hidden_dim(16).embedding_dim(24).build()
    assert (engine.config.hidden_dim, engine.config.embedding_dim) == (16, 24)


def test_builder_config():
    config = SonaConfig.default(hidden_dim=16, embedding_dim=16, seed=9)
    engine = SonaEngine.builder().config(config).set(micro_lora_rank=1).build()
    assert engine.config == config.replace(micro_lora_rank=1)


def test_builder_rejects_non_config():
    with pytest.raises(TypeError, match="config must be a SonaConfig, got str"):
        SonaEngine.builder().config("default")


def test_builder_rejects_unknown_preset():
    builder = SonaEngine.builder().preset("fastest")
    with pytest.raises(ValueError, match="unknown preset 'fastest'"):
        builder.build()


def test_builder_rejects_unknown_field():
    with pytest.raises(KeyError, match=r"unknown config field\(s\) \['width'\]"):
        SonaEngine.builder().set(width=3).build()


def test_builder_rejects_invalid_value():
    with pytest.raises(ValueError, match=re.escape("micro_lora_rank must be 1 or 2, got 8")):
        SonaEngine.builder().set(micro_lora_rank=8).build()


# Trajectory ids -------------------------------------------------------------


def test_begin_returns_increasing_ids(engine):
    first = engine.begin_trajectory(np.ones(DIM))
    second = engine.begin_trajectory(np.ones(DIM))
    assert isinstance(first, int)
    assert second == first + 1


TRAJECTORY_CALLS = {
    "step": lambda engine, tid: engine.add_trajectory_step(tid, np.ones(DIM), [1.0], 0.5),
    "add_step": lambda engine, tid: engine.add_step(tid, np.ones(DIM), [1.0], 0.5),
    "route": lambda engine, tid: engine.set_trajectory_route(tid, "route0"),
    "context": lambda engine, tid: engine.add_trajectory_context(tid, "topic0"),
    "end": lambda engine, tid: engine.end_trajectory(tid, 0.5),
}


@pytest.mark.parametrize("call", TRAJECTORY_CALLS.values(), ids=TRAJECTORY_CALLS.keys())
def test_unknown_trajectory_id(engine, active, call):
    assert_rejected(engine, KeyError, f"unknown trajectory_id {active + 100}: it was never begun", call, engine, active + 100)


@pytest.mark.parametrize("call", TRAJECTORY_CALLS.values(), ids=TRAJECTORY_CALLS.keys())
def test_ended_trajectory_id(engine, active, call):
    engine.end_trajectory(active, 1.0)
    assert_rejected(engine, KeyError, f"unknown trajectory_id {active}: .*has already ended", call, engine, active)


@pytest.mark.parametrize("call", TRAJECTORY_CALLS.values(), ids=TRAJECTORY_CALLS.keys())
def test_expired_trajectory_id(call):
    engine = small_engine(max_active_trajectories=2)
    expired = engine.begin_trajectory(np.ones(DIM))
    engine.begin_trajectory(np.ones(DIM))
    engine.begin_trajectory(np.ones(DIM))
    assert engine.stats()["expired_trajectories"] == 1
    assert_rejected(engine, KeyError, "or expired \\(at most 2 trajectories stay active\\)", call, engine, expired)


@pytest.mark.parametrize("bad_id", ["1", 1.0, True, None])
@pytest.mark.parametrize("call", TRAJECTORY_CALLS.values(), ids=TRAJECTORY_CALLS.keys())
def test_trajectory_id_wrong_type(engine, active, call, bad_id):
    name = type(bad_id).__name__
    assert_rejected(engine, TypeError, f"trajectory_id must be an int, got {name}", call, engine, bad_id)


def test_trajectory_id_numpy_integer(engine):
    trajectory_id = np.int64(engine.begin_trajectory(np.ones(DIM)))
    engine.set_trajectory_route(trajectory_id, "route1")
    engine.end_trajectory(trajectory_id, 1.0)
    assert engine.stats()["active_trajectories"] == 0


# Vector inputs --------------------------------------------------------------


def _nan_at_three() -> np.ndarray:
    x = np.ones(DIM)
    x[3] = np.nan
    return x


BAD_VECTORS = [
    pytest.param(np.ones(DIM + 1), ValueError, re.escape(f"must have shape ({DIM},), got ({DIM + 1},)"), id="long"),
    pytest.param(np.ones((1, DIM)), ValueError, re.escape(f"must have shape ({DIM},), got (1, {DIM})"), id="2d"),
    pytest.param(3.0, ValueError, re.escape(f"must have shape ({DIM},), got ()"), id="scalar"),
    pytest.param(_nan_at_three(), ValueError, "must contain only finite numbers, found nan at flat index 3", id="nan"),
    pytest.param(np.full(DIM, np.inf), ValueError, "must contain only finite numbers, found inf at flat index 0", id="inf"),
    pytest.param("abcdefgh", TypeError, "must be a sequence of numbers, got str", id="str"),
    pytest.param(b"abcdefgh", TypeError, "must be a sequence of numbers, got bytes", id="bytes"),
    pytest.param(["a"] * DIM, TypeError, "must be a sequence of numbers: could not convert", id="strings"),
    pytest.param({"x": 1}, TypeError, "must be a sequence of numbers: ", id="dict"),
]


@pytest.mark.parametrize(("value", "error", "match"), BAD_VECTORS)
def test_begin_rejects_bad_embedding(engine, value, error, match):
    assert_rejected(engine, error, "query_embedding " + match, engine.begin_trajectory, value)


@pytest.mark.parametrize(("value", "error", "match"), BAD_VECTORS)
def test_step_rejects_bad_activations(engine, active, value, error, match):
    assert_rejected(engine, error, "activations " + match, engine.add_trajectory_step, active, value, [1.0], 0.0)


@pytest.mark.parametrize(("value", "error", "match"), BAD_VECTORS)
def test_route_query_rejects_bad_embedding(value, error, match):
    router = AdaptiveRouter([("a", 1.0), ("b", 0.0)], SonaConfig.default(hidden_dim=DIM, embedding_dim=DIM))
    state = router.save_state()
    with pytest.raises(error, match="query_embedding " + match):
        router.route(value)
    assert router.save_state() == state


@pytest.mark.parametrize("method", ["transform", "predict_quality", "find_patterns"])
@pytest.mark.parametrize(("value", "error", "match"), BAD_VECTORS[3:])
def test_query_methods_reject_bad_embedding(engine, method, value, error, match):
    assert_rejected(engine, error, "query_embedding " + match, getattr(engine, method), value)


def test_transform_rejects_wrong_width(engine):
    match = re.escape(f"query_embedding must have shape ({DIM},) or (n, {DIM}), got (2, 3)")
    assert_rejected(engine, ValueError, match, engine.transform, np.ones((2, 3)))


@pytest.mark.parametrize("method", ["predict_quality", "find_patterns"])
def test_single_query_methods_reject_batches(engine, method):
    match = re.escape(f"query_embedding must have shape ({DIM},), got (2, {DIM})")
    assert_rejected(engine, ValueError, match, getattr(engine, method), np.ones((2, DIM)))


# Steps ----------------------------------------------------------------------


@pytest.mark.parametrize(("attention", "shape"), [
    ([], "(0,)"),
    (np.ones((2, 2)), "(2, 2)"),
    (0.5, "()"),
    (np.ones(MAX_ATTENTION_LENGTH + 1), f"({MAX_ATTENTION_LENGTH + 1},)"),
])
def test_step_rejects_attention_shape(engine, active, attention, shape):
    match = re.escape(f"attention must be a 1-D array of 1 to {MAX_ATTENTION_LENGTH} weights, got shape {shape}")
    assert_rejected(engine, ValueError, match, engine.add_trajectory_step, active, np.ones(DIM), attention, 0.0)


def test_step_accepts_longest_attention(engine, active):
    engine.add_trajectory_step(active, np.ones(DIM), np.ones(MAX_ATTENTION_LENGTH), 0.0)


def test_step_rejects_negative_attention(engine, active):
    match = "attention weights must be >= 0, got minimum -0.25"
    assert_rejected(engine, ValueError, match, engine.add_trajectory_step, active, np.ones(DIM), [0.5, -0.25], 0.0)


def test_step_rejects_nan_attention(engine, active):
    match = "attention must contain only finite numbers, found nan at flat index 1"
    assert_rejected(engine, ValueError, match, engine.add_trajectory_step, active, np.ones(DIM), [0.5, np.nan], 0.0)


@pytest.mark.parametrize(("attention", "error"), [("ab", TypeError), (["a", "b"], TypeError), ({"a": 1}, TypeError)])
def test_step_rejects_non_numeric_attention(engine, active, attention, error):
    assert_rejected(engine, error, "attention must be", engine.add_trajectory_step, active, np.ones(DIM), attention, 0.0)


@pytest.mark.parametrize(("reward", "error", "match"), [
    (np.nan, ValueError, "reward must be finite, got nan"),
    (-np.inf, ValueError, "reward must be finite, got -inf"),
    (True, TypeError, "reward must be a real number, got bool"),
    ("1", TypeError, "reward must be a real number, got str"),
    (None, TypeError, "reward must be a real number, got NoneType"),
    (np.array([1.0]), TypeError, "reward must be a real number, got ndarray"),
])
def test_step_rejects_bad_reward(engine, active, reward, error, match):
    assert_rejected(engine, error, match, engine.add_trajectory_step, active, np.ones(DIM), [1.0], reward)


def test_step_accepts_any_finite_reward(engine, active):
    for reward in (-5, 0, 2.5, np.float32(1.5), np.int64(-3)):
        engine.add_trajectory_step(active, np.ones(DIM), [1.0], reward)
    assert engine._active.get(active).rewards[-3:] == [2.5, 1.5, -3.0]


@pytest.mark.parametrize(("attention", "entropy"), [
    ([1.0, 1.0, 1.0, 1.0], 1.0),
    ([0.0, 3.0, 0.0], 0.0),
    ([5.0], 0.0),
    ([0.0, 0.0], 0.0),
    ([1.0, 1e-45], 0.0),
    ([3e38, 3e38], 1.0),
])
def test_step_attention_entropy(attention, entropy):
    # The statistic is a running mean with weight 0.05 starting at 0, so one
    # trajectory moves it to 0.05 times its normalised attention entropy.
    engine = small_engine()
    trajectory_id = engine.begin_trajectory(np.ones(DIM))
    engine.add_step(trajectory_id, np.ones(DIM), attention, 0.0)
    engine.end_trajectory(trajectory_id, 1.0)
    assert engine.stats()["mean_attention_entropy"] == pytest.approx(0.05 * entropy, abs=1e-12)


def test_step_limit():
    engine = small_engine(max_steps_per_trajectory=1)
    trajectory_id = engine.begin_trajectory(np.ones(DIM))
    engine.add_step(trajectory_id, np.ones(DIM), [1.0], 0.0)
    match = f"trajectory {trajectory_id} already has max_steps_per_trajectory=1 steps; end it or raise the limit"
    assert_rejected(engine, ValueError, match, engine.add_trajectory_step, trajectory_id, np.ones(DIM), [1.0], 0.0)


# Routes, contexts, quality ----------------------------------------------------


@pytest.mark.parametrize(("method", "name", "limit"), [
    ("set_trajectory_route", "route", 128),
    ("add_trajectory_context", "context", 256),
])
def test_label_rules(engine, active, method, name, limit):
    call = getattr(engine, method)
    assert_rejected(engine, ValueError, f"{name} must be a non-empty string", call, active, "")
    too_long = "x" * (limit + 1)
    assert_rejected(engine, ValueError, f"{name} must be at most {limit} characters, got {limit + 1}", call, active, too_long)
    assert_rejected(engine, TypeError, f"{name} must be a str, got int", call, active, 3)
    assert_rejected(engine, TypeError, f"{name} must be a str, got NoneType", call, active, None)
    call(active, "x" * limit)


def test_route_limit():
    engine = small_engine()
    for i in range(MAX_ROUTES):
        record(engine, np.ones(DIM), 0.5, f"r{i}")
    assert len(engine.routes) == MAX_ROUTES
    trajectory_id = engine.begin_trajectory(np.ones(DIM))
    match = f"route 'one more' would exceed the maximum of {MAX_ROUTES} distinct routes"
    assert_rejected(engine, ValueError, match, engine.set_trajectory_route, trajectory_id, "one more")
    engine.set_trajectory_route(trajectory_id, "r7")


def test_route_limit_with_trajectories_in_flight():
    engine = small_engine()
    for i in range(MAX_ROUTES - 1):
        record(engine, np.ones(DIM), 0.5, f"r{i}")
    first = engine.begin_trajectory(np.ones(DIM))
    second = engine.begin_trajectory(np.ones(DIM))
    engine.set_trajectory_route(first, "new one")
    engine.set_trajectory_route(second, "new two")
    engine.end_trajectory(first, 1.0)
    before = engine_snapshot(engine)
    with pytest.raises(ValueError, match="would exceed the maximum of 256 distinct routes"):
        engine.end_trajectory(second, 1.0)
    assert engine_snapshot(engine) == before
    assert len(engine.routes) == MAX_ROUTES


@pytest.mark.parametrize(("quality", "error", "match"), [
    (-0.1, ValueError, "quality must be >= 0.0, got -0.1"),
    (1.5, ValueError, "quality must be <= 1.0, got 1.5"),
    (np.nan, ValueError, "quality must be finite, got nan"),
    (np.inf, ValueError, "quality must be finite, got inf"),
    ("0.5", TypeError, "quality must be a real number, got str"),
    (False, TypeError, "quality must be a real number, got bool"),
    (None, TypeError, "quality must be a real number, got NoneType"),
])
def test_end_rejects_bad_quality(engine, active, quality, error, match):
    assert_rejected(engine, error, match, engine.end_trajectory, active, quality)
    engine.end_trajectory(active, 0.5)


@pytest.mark.parametrize("quality", [0, 1, 0.0, 1.0, np.float32(0.25), np.float64(0.75), np.int64(1)])
def test_end_accepts_quality(engine, quality):
    before = engine.stats()["trajectories_recorded"]
    record(engine, np.ones(DIM), quality, "route0")
    assert engine.stats()["trajectories_recorded"] == before + 1


def test_trajectory_lifecycle_counts(engine, active):
    before = engine.stats()
    engine.end_trajectory(active, 0.8)
    after = engine.stats()
    assert after["trajectories_recorded"] == before["trajectories_recorded"] + 1
    assert after["steps_recorded"] == before["steps_recorded"] + 1
    assert after["active_trajectories"] == before["active_trajectories"] - 1
    assert after["buffered_trajectories"] == before["buffered_trajectories"] + 1


# Inference --------------------------------------------------------------------


INPUT_KINDS = {
    "float64": lambda rows: rows.astype(np.float64),
    "float32": lambda rows: rows.astype(np.float32),
    "list": lambda rows: rows.tolist(),
    "int": lambda rows: np.rint(4 * rows).astype(np.int64),
}


def _call_adapter(engine: SonaEngine, method: str, x):
    if method == "apply_base_lora":
        return engine.apply_base_lora(0, x)
    return getattr(engine, method)(x)


@pytest.mark.parametrize("kind", INPUT_KINDS, ids=INPUT_KINDS.keys())
@pytest.mark.parametrize("method", ["apply_micro_lora", "apply_base_lora", "transform"])
def test_outputs_float32_single_and_batch(engine, method, kind):
    rows = unit_rows(np.random.default_rng(0), 5, DIM)
    convert = INPUT_KINDS[kind]
    batch = _call_adapter(engine, method, convert(rows))
    single = _call_adapter(engine, method, convert(rows[2]))
    assert batch.dtype == np.float32
    assert batch.shape == (5, DIM)
    assert single.dtype == np.float32
    assert single.shape == (DIM,)
    # BLAS may sum a batch in another order than one row, so the row can differ in the last bit.
    assert_allclose(single, batch[2], rtol=1e-6, atol=1e-7)
    empty = _call_adapter(engine, method, np.zeros((0, DIM)))
    assert empty.shape == (0, DIM)


@pytest.mark.parametrize("method", ["apply_micro_lora", "apply_base_lora"])
def test_adapters_match_formula(engine, method):
    adapter = engine._model.micro if method == "apply_micro_lora" else engine._model.base[0]
    assert np.abs(adapter.lora_B).max() > 1e-4, "the fixture should have trained this adapter"
    x = unit_rows(np.random.default_rng(1), 3, DIM)
    expected = x + adapter.scaling * (x @ adapter.lora_A.T.astype(np.float64)) @ adapter.lora_B.T.astype(np.float64)
    assert_allclose(_call_adapter(engine, method, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["apply_micro_lora", "apply_base_lora"])
@pytest.mark.parametrize(("value", "shape"), [(np.ones(DIM - 1), f"({DIM - 1},)"), (np.ones((2, DIM, 1)), f"(2, {DIM}, 1)")])
def test_adapters_reject_wrong_shape(engine, method, value, shape):
    match = re.escape(f"x must have shape ({DIM},) or (n, {DIM}), got {shape}")
    assert_rejected(engine, ValueError, match, _call_adapter, engine, method, value)


@pytest.mark.parametrize("method", ["apply_micro_lora", "apply_base_lora"])
def test_adapters_reject_nan(engine, method):
    x = np.ones((3, DIM))
    x[2, 5] = np.nan
    match = f"x must contain only finite numbers, found nan at flat index {2 * DIM + 5}"
    assert_rejected(engine, ValueError, match, _call_adapter, engine, method, x)


@pytest.mark.parametrize(("layer", "error", "match"), [
    (1, ValueError, re.escape("layer must be in [0, 0] (base_lora_layers=1), got 1")),
    (-1, ValueError, re.escape("layer must be in [0, 0] (base_lora_layers=1), got -1")),
    (True, TypeError, "layer must be an int, got bool"),
    (0.0, TypeError, "layer must be an int, got float"),
    ("0", TypeError, "layer must be an int, got str"),
])
def test_apply_base_lora_rejects_layer(engine, layer, error, match):
    assert_rejected(engine, error, match, engine.apply_base_lora, layer, np.ones(DIM))


def test_apply_base_lora_numpy_layer(engine):
    x = np.ones(DIM)
    assert_array_equal(engine.apply_base_lora(np.int64(0), x), engine.apply_base_lora(0, x))


def test_predict_quality_per_route(engine):
    predicted = engine.predict_quality(unit(np.ones(DIM)))
    assert list(predicted) == ["route0", "route1"]
    assert all(isinstance(value, float) and np.isfinite(value) for value in predicted.values())
    assert small_engine().predict_quality(np.ones(DIM)) == {}


def test_routes_property_is_a_copy(engine):
    routes = engine.routes
    routes.append("other")
    assert engine.routes == ["route0", "route1"]


# Patterns -----------------------------------------------------------------------


def test_find_patterns_keys_and_types(engine):
    patterns = engine.find_patterns(np.eye(DIM)[0], k=3)
    assert 1 <= len(patterns) <= 3
    for pattern in patterns:
        assert set(pattern) == PATTERN_KEYS
        assert pattern["centroid"].dtype == np.float32
        assert pattern["centroid"].shape == (DIM,)
        assert isinstance(pattern["id"], int)
        assert isinstance(pattern["cluster_size"], int)
        assert isinstance(pattern["pattern_type"], str)
        assert 0.0 <= pattern["avg_quality"] <= 1.0
        assert -1.0 <= pattern["similarity"] <= 1.0 + 1e-9
        for route, stats in pattern["route_stats"].items():
            assert route in ("route0", "route1")
            assert set(stats) == {"count", "mean_quality"}
            assert stats["count"] > 0
    similarity = [p["similarity"] for p in patterns]
    assert similarity == sorted(similarity, reverse=True)


def test_find_patterns_pattern_type_from_context(engine):
    # The fixture labels the queries around axis i with "topic{i}".
    patterns = engine.find_patterns(np.eye(DIM)[1], k=1)
    assert patterns[0]["pattern_type"] == "topic1"


def test_find_patterns_updates_access(engine):
    clock = engine._clock
    query = np.eye(DIM)[0]
    first = engine.find_patterns(query, k=1)[0]
    clock.advance(30.0)
    second = engine.find_patterns(query, k=1)[0]
    assert second["id"] == first["id"]
    assert second["access_count"] == first["access_count"] + 1
    assert second["last_accessed"] == clock.now
    assert second["created_at"] == first["created_at"] < clock.now


def test_find_patterns_k_caps_results(engine):
    total = engine.stats()["patterns"]
    assert total >= 2
    assert len(engine.find_patterns(np.ones(DIM), k=1)) == 1
    assert len(engine.find_patterns(np.ones(DIM), k=1000)) == total


@pytest.mark.parametrize("k", [0, -1, 1001])
def test_find_patterns_rejects_k_out_of_range(engine, k):
    assert_rejected(engine, ValueError, re.escape(f"k must be an int in [1, 1000], got {k}"), engine.find_patterns, np.ones(DIM), k)


@pytest.mark.parametrize("k", [True, 2.0, "3", None])
def test_find_patterns_rejects_k_of_wrong_type(engine, k):
    message = f"k must be an int in [1, 1000], got {type(k).__name__} {k!r}"
    assert_rejected(engine, TypeError, re.escape(message), engine.find_patterns, np.ones(DIM), k)


def test_find_patterns_empty_bank():
    assert small_engine().find_patterns(np.ones(DIM)) == []
    assert small_engine(pattern_clusters=0).find_patterns(np.ones(DIM)) == []


# Enabled switch ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, "yes", None, np.bool_(True)])
def test_set_enabled_rejects_non_bool(engine, value):
    match = f"enabled must be a bool, got {type(value).__name__}"
    assert_rejected(engine, TypeError, match, engine.set_enabled, value)


def test_disabled_engine_records_nothing(engine):
    engine.set_enabled(False)
    assert engine.is_enabled() is False
    before = engine.stats()
    state = engine.save_state()

    trajectory_id = engine.begin_trajectory(np.ones(DIM))
    engine.add_trajectory_step(trajectory_id, np.ones(DIM), [1.0], 0.5)
    engine.set_trajectory_route(trajectory_id, "brand new route")
    engine.add_trajectory_context(trajectory_id, "topic9")
    engine.end_trajectory(trajectory_id, 1.0)
    after = engine.stats()
    for key in ("trajectories_recorded", "steps_recorded", "buffered_trajectories", "routes", "pending_updates"):
        assert after[key] == before[key], key
    assert engine.tick() is None
    assert engine.find_patterns(np.ones(DIM)) == []

    # Only the next trajectory id moved on.
    meta_before, arrays_before = unpack(state, "sona_web.SonaEngine")
    meta_after, arrays_after = unpack(engine.save_state(), "sona_web.SonaEngine")
    assert meta_after.pop("next_id") == meta_before.pop("next_id") + 1
    assert meta_after == meta_before
    assert arrays_after.keys() == arrays_before.keys()
    for name, value in arrays_before.items():
        assert_array_equal(arrays_after[name], value, err_msg=name)


def test_disabled_engine_validates_input(engine):
    engine.set_enabled(False)
    trajectory_id = engine.begin_trajectory(np.ones(DIM))
    assert_rejected(engine, ValueError, "quality must be <= 1.0", engine.end_trajectory, trajectory_id, 2.0)
    assert_rejected(engine, ValueError, "activations must have shape", engine.add_step, trajectory_id, np.ones(3), [1.0], 0.0)
    assert_rejected(engine, KeyError, "unknown trajectory_id", engine.end_trajectory, trajectory_id + 1, 1.0)
    assert_rejected(engine, ValueError, "query_embedding must have shape", engine.begin_trajectory, np.ones(3))


def test_disabled_engine_steps_are_not_counted():
    # Steps of an unrecorded trajectory are dropped, so the step limit never triggers on them.
    limited = small_engine(max_steps_per_trajectory=1)
    limited.set_enabled(False)
    trajectory_id = limited.begin_trajectory(np.ones(DIM))
    for _ in range(3):
        limited.add_step(trajectory_id, np.ones(DIM), [1.0], 0.0)
    limited.end_trajectory(trajectory_id, 1.0)
    assert limited.stats()["steps_recorded"] == 0


def test_disabled_engine_adapters_return_input(engine):
    x = unit_rows(np.random.default_rng(2), 4, DIM)
    assert not np.allclose(engine.apply_micro_lora(x), x, atol=1e-6)
    engine.set_enabled(False)
    assert_array_equal(engine.apply_micro_lora(x), x.astype(np.float32))
    assert_array_equal(engine.apply_base_lora(0, x[1]), x[1].astype(np.float32))
    # Disabled, transform still normalises queries but adapts nothing.
    assert_allclose(engine.transform(3.0 * x), x, rtol=1e-6)
    assert engine.apply_micro_lora(x).dtype == np.float32


def test_trajectory_begun_while_disabled_stays_unrecorded(engine):
    engine.set_enabled(False)
    trajectory_id = engine.begin_trajectory(np.ones(DIM))
    engine.set_enabled(True)
    before = engine.stats()["trajectories_recorded"]
    engine.add_step(trajectory_id, np.ones(DIM), [1.0], 0.5)
    engine.end_trajectory(trajectory_id, 1.0)
    assert engine.stats()["trajectories_recorded"] == before


def test_reenabled_engine_records_again(engine):
    engine.set_enabled(False)
    engine.set_enabled(True)
    before = engine.stats()["trajectories_recorded"]
    record(engine, np.ones(DIM), 1.0, "route0")
    assert engine.stats()["trajectories_recorded"] == before + 1


# Background loop and stats ----------------------------------------------------------------


def test_force_learn_summary(engine):
    engine.force_learn()
    record(engine, np.ones(DIM), 1.0, "route0")
    summary = engine.force_learn()
    for key in ("new_trajectories", "replayed_trajectories", "replay_loss", "micro_fold_residual", "patterns_created",
                "patterns_merged", "good_trajectories", "cycle_ms", "patterns", "ewc_tasks"):
        assert key in summary, key
    assert summary["new_trajectories"] == 1
    assert summary["patterns"] == engine.stats()["patterns"]
    json.dumps(summary)


def test_force_learn_without_data(engine):
    engine.force_learn()
    summary = engine.force_learn()
    assert summary["new_trajectories"] == 0
    assert np.isfinite(summary["replay_loss"])


def test_tick_waits_for_interval_and_data():
    clock = FakeClock()
    engine = small_engine(clock=clock, background_interval_ms=500)
    clock.advance(10.0)
    assert engine.tick() is None
    record(engine, np.ones(DIM), 1.0, "a")
    assert engine.tick()["new_trajectories"] == 1
    record(engine, np.ones(DIM), 1.0, "a")
    clock.advance(0.25)
    assert engine.tick() is None
    clock.advance(0.25)
    assert engine.tick()["new_trajectories"] == 1


def test_get_stats_is_json_of_stats(engine):
    stats = engine.stats()
    assert STATS_KEYS <= set(stats)
    assert json.loads(engine.get_stats()) == stats
    assert stats["enabled"] is True
    assert stats["routes"] == 2


# Inputs are never mutated or kept by reference ------------------------------------------


def test_inputs_not_mutated(engine):
    rng = np.random.default_rng(4)
    inputs = {
        "query": rng.standard_normal(DIM),
        "query32": rng.standard_normal(DIM).astype(np.float32),
        "batch": rng.standard_normal((3, DIM)).astype(np.float32),
        "activations": rng.standard_normal(DIM).astype(np.float32),
        "attention": rng.random(5).astype(np.float32),
    }
    copies = {name: value.copy() for name, value in inputs.items()}

    def unchanged():
        for name, value in inputs.items():
            assert_array_equal(value, copies[name], err_msg=name)

    for query in (inputs["query"], inputs["query32"]):
        trajectory_id = engine.begin_trajectory(query)
        unchanged()
        engine.add_trajectory_step(trajectory_id, inputs["activations"], inputs["attention"], 0.5)
        unchanged()
        engine.end_trajectory(trajectory_id, 0.9)
        unchanged()
    engine.flush()
    engine.force_learn()
    for call in (
        lambda: engine.apply_micro_lora(inputs["batch"]),
        lambda: engine.apply_micro_lora(inputs["query32"]),
        lambda: engine.apply_base_lora(0, inputs["batch"]),
        lambda: engine.transform(inputs["batch"]),
        lambda: engine.predict_quality(inputs["query32"]),
        lambda: engine.find_patterns(inputs["query32"]),
    ):
        call()
        unchanged()
    engine.set_enabled(False)
    engine.apply_micro_lora(inputs["batch"])[0, 0] = 99.0
    engine.apply_base_lora(0, inputs["query32"])[0] = 99.0
    unchanged()


def test_inputs_not_kept_by_reference():
    rng = np.random.default_rng(5)
    query = unit(rng.standard_normal(DIM)).astype(np.float32)
    activations = rng.standard_normal(DIM).astype(np.float32)
    attention = rng.random(4).astype(np.float32)

    def feed(engine, mutate):
        q, a, w = query.copy(), activations.copy(), attention.copy()
        trajectory_id = engine.begin_trajectory(q)
        engine.add_trajectory_step(trajectory_id, a, w, 0.5)
        if mutate:
            for array in (q, a, w):
                array[...] = 7.0
        engine.set_trajectory_route(trajectory_id, "r")
        engine.end_trajectory(trajectory_id, 1.0)
        return engine.save_state()

    assert feed(small_engine(), mutate=True) == feed(small_engine(), mutate=False)


# AdaptiveRouter -------------------------------------------------------------------------


def make_router(**kwargs) -> AdaptiveRouter:
    config = kwargs.pop("config", SonaConfig.default(hidden_dim=DIM, embedding_dim=DIM, trajectory_capacity=64))
    models = kwargs.pop("models", [("large", 1.0), ("small", 0.1), ("tiny", 0.0)])
    return AdaptiveRouter(models, config, clock=kwargs.pop("clock", FakeClock()), **kwargs)


def assert_router_rejected(router: AdaptiveRouter, error: type, match: str, call, *args):
    before = router.save_state()
    with pytest.raises(error, match=match):
        call(*args)
    assert router.save_state() == before


def test_router_accepts_pairs_and_dicts():
    router = make_router(models=[{"name": "a", "cost": 2.0}, {"name": "b"}, ["c", 1]])
    assert router.models == ["a", "b", "c"]
    assert router.costs.tolist() == [2.0, 0.0, 1.0]
    assert router.engine.routes == ["a", "b", "c"]


def test_router_default_config():
    router = AdaptiveRouter([("a", 1.0), ("b", 0.0)])
    assert router.engine.config == SonaConfig.default()


def test_router_seed_overrides_config():
    router = make_router(seed=42)
    assert router.engine.config.seed == 42


@pytest.mark.parametrize(("models", "error", "match"), [
    ("ab", TypeError, "models must be a list of \\(name, cost\\) pairs or dicts, got str"),
    (5, TypeError, "models must be a list of \\(name, cost\\) pairs or dicts, got int"),
    ([("a", 1.0), ("b", 1.0, 2)], TypeError, re.escape("each model must be a (name, cost) pair or a dict, got ('b', 1.0, 2)")),
    ([("a", 1.0), "b"], TypeError, "each model must be a \\(name, cost\\) pair or a dict, got 'b'"),
    ([("a", 1.0), {"cost": 1.0}], ValueError, re.escape("a model dict needs keys 'name' and optionally 'cost', got ['cost']")),
    ([("a", 1.0), {"name": "b", "price": 1}], ValueError, re.escape("got ['name', 'price']")),
    ([("a", 1.0), ("", 1.0)], ValueError, "route must be a non-empty string"),
    ([("a", 1.0), (7, 1.0)], TypeError, "route must be a str, got int"),
    ([("a", 1.0), ("b", -1.0)], ValueError, "cost of model 'b' must be >= 0.0, got -1.0"),
    ([("a", 1.0), ("b", np.nan)], ValueError, "cost of model 'b' must be finite, got nan"),
    ([("a", 1.0), ("b", "free")], TypeError, "cost of model 'b' must be a real number, got str"),
    ([("a", 1.0)], ValueError, "a router needs at least 2 models, got 1"),
    ([], ValueError, "a router needs at least 2 models, got 0"),
    ([("a", 1.0), ("a", 0.0)], ValueError, re.escape("model names must be distinct, got ['a', 'a']")),
])
def test_router_rejects_models(models, error, match):
    with pytest.raises(error, match=match):
        AdaptiveRouter(models)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"config": {"hidden_dim": 8}}, TypeError, "config must be a SonaConfig, got dict"),
    ({"cost_weight": -0.1}, ValueError, "cost_weight must be >= 0.0, got -0.1"),
    ({"cost_weight": "high"}, TypeError, "cost_weight must be a real number, got str"),
    ({"exploration": np.inf}, ValueError, "exploration must be finite, got inf"),
    ({"n_patterns": 0}, ValueError, re.escape("n_patterns must be an int in [1, 64], got 0")),
    ({"n_patterns": 65}, ValueError, re.escape("n_patterns must be an int in [1, 64], got 65")),
    ({"n_patterns": True}, TypeError, re.escape("n_patterns must be an int in [1, 64], got bool True")),
    ({"learn_every": 0}, ValueError, "learn_every must be an int >= 1, got 0"),
    ({"learn_every": 2.0}, TypeError, "learn_every must be an int >= 1, got float 2.0"),
    ({"seed": -1}, ValueError, re.escape("seed must be in [0, 9223372036854775807], got -1")),
])
def test_router_rejects_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_router(**kwargs)


def test_route_decision_fields():
    router = make_router()
    decision = router.route(unit(np.ones(DIM)))
    assert isinstance(decision, RouteDecision)
    assert decision.model == router.models[decision.model_index]
    for values in (decision.scores, decision.estimates, decision.uncertainty):
        assert len(values) == 3
        assert all(np.isfinite(values))
    assert 0.0 < decision.probability <= 1.0
    assert isinstance(decision.explored, bool)
    assert decision.explored == (decision.model_index != int(np.argmax(decision.scores)))
    data = decision.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert router.decisions()[-1]["model_index"] == decision.model_index


def test_route_decision_patterns():
    router = make_router(learn_every=16)
    rng = np.random.default_rng(0)
    for i, x in enumerate(unit_rows(rng, 48, DIM)):
        router.record_outcome(x, i % 3, 0.9)
    assert router.engine.stats()["patterns"] > 0
    decision = router.route(unit(np.ones(DIM)))
    assert 1 <= len(decision.patterns) <= router.n_patterns
    assert set(decision.patterns[0]) == PATTERN_KEYS
    data = decision.to_dict()
    assert isinstance(data["patterns"][0]["centroid"], list)
    json.dumps(data)


def test_route_greedy_without_exploration():
    router = make_router(exploration=0.0)
    for x in unit_rows(np.random.default_rng(1), 20, DIM):
        decision = router.route(x)
        assert decision.explored is False
        assert decision.probability == 1.0
        assert decision.model_index == int(np.argmax(decision.scores))


def test_route_prefers_cheaper_model_when_untrained():
    # Untrained heads predict the same quality for every model, so the cost decides.
    decision = make_router(exploration=0.0).route(unit(np.ones(DIM)))
    assert decision.model == "tiny"


def test_record_outcome_by_index_and_name():
    router = make_router()
    x = unit(np.ones(DIM))
    router.record_outcome(x, 0, 1.0, latency_ms=120.0)
    router.record_outcome(x, "small", 0.0)
    router.record_outcome(x, np.int64(1), 1.0)
    stats = router.stats()
    assert stats["outcomes"] == 3
    assert stats["models"]["large"] == {"cost": 1.0, "count": 1, "mean_quality": 1.0, "mean_latency_ms": 120.0}
    assert stats["models"]["small"]["count"] == 2
    assert stats["models"]["small"]["mean_quality"] == 0.5
    assert stats["engine"]["trajectories_recorded"] == 3
    json.dumps(stats)


@pytest.mark.parametrize(("model", "quality", "latency", "error", "match"), [
    (3, 1.0, 0.0, ValueError, re.escape("model index must be in [0, 2], got 3")),
    (-1, 1.0, 0.0, ValueError, re.escape("model index must be in [0, 2], got -1")),
    ("medium", 1.0, 0.0, KeyError, re.escape("unknown model 'medium'; known models are ['large', 'small', 'tiny']")),
    (1.0, 1.0, 0.0, TypeError, "model must be a model name or index, got float"),
    (True, 1.0, 0.0, TypeError, "model must be a model name or index, got bool"),
    (0, 1.01, 0.0, ValueError, "quality must be <= 1.0, got 1.01"),
    (0, np.nan, 0.0, ValueError, "quality must be finite, got nan"),
    (0, 1.0, -5.0, ValueError, "latency_ms must be >= 0.0, got -5.0"),
    (0, 1.0, "fast", TypeError, "latency_ms must be a real number, got str"),
])
def test_record_outcome_rejects(model, quality, latency, error, match):
    router = make_router()
    router.record_outcome(unit(np.ones(DIM)), 0, 0.5)
    assert_router_rejected(router, error, match, router.record_outcome, unit(np.ones(DIM)), model, quality, latency)


def test_record_outcome_rejects_bad_query():
    router = make_router()
    assert_router_rejected(router, ValueError, "query_embedding must have shape", router.record_outcome, np.ones(3), 0, 1.0)


def test_router_learn_every_runs_cycles():
    router = make_router(learn_every=5)
    for i, x in enumerate(unit_rows(np.random.default_rng(2), 12, DIM)):
        router.record_outcome(x, i % 3, 1.0)
    assert router.engine.stats()["background_cycles"] == 2


def test_router_tick_follows_interval():
    clock = FakeClock()
    router = make_router(clock=clock, config=SonaConfig.default(hidden_dim=DIM, embedding_dim=DIM, background_interval_ms=100))
    router.record_outcome(unit(np.ones(DIM)), 0, 1.0)
    assert router.tick() is None
    clock.advance(0.1)
    assert router.tick()["new_trajectories"] == 1


def test_router_inputs_not_mutated():
    router = make_router()
    x = np.random.default_rng(3).standard_normal(DIM).astype(np.float32)
    copy = x.copy()
    router.route(x)
    router.record_outcome(x, "tiny", 0.5)
    assert_array_equal(x, copy)
