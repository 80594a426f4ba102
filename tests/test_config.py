"""SonaConfig: presets, validation, serialisation, and one observable effect per field.

Every config field must change something a caller can see. The effect tests
register the fields they cover with ``effect_of``, and
``test_every_field_has_an_effect_test`` fails when a field is added without one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sona_web import PRESETS, SonaConfig, SonaEngine
from sona_web.config import _RANGES

from engine_support import FakeClock, record, small_engine, unit, unit_rows

FIELD_TYPES = {item.name: item.type for item in dataclasses.fields(SonaConfig)}


# Presets ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_and_validates(name):
    config = SonaConfig.preset(name)
    assert config.validate() is config
    assert getattr(SonaConfig, name)() == config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_an_engine(name):
    # A small buffer keeps five engines cheap, and the preset's other values stay as they are.
    config = SonaConfig.preset(name, trajectory_capacity=64)
    engine = SonaEngine.with_config(config, clock=FakeClock())
    x = unit(np.arange(1, config.hidden_dim + 1))
    assert engine.apply_micro_lora(x).shape == (config.hidden_dim,)


def test_preset_default_values():
    config = SonaConfig.default()
    assert config.hidden_dim == 256
    assert config.embedding_dim == 256
    assert config.micro_lora_rank == 2
    assert config.base_lora_layers == 1
    assert config.enable_simd is True
    assert config == SonaConfig()


def test_preset_max_throughput_values():
    config = SonaConfig.max_throughput()
    default = SonaConfig.default()
    assert config.micro_lora_rank == 1
    assert config.micro_batch_size == 16
    assert config.pattern_clusters < default.pattern_clusters
    assert config.replay_batch_size < default.replay_batch_size


def test_preset_max_quality_values():
    config = SonaConfig.max_quality()
    default = SonaConfig.default()
    assert config.base_lora_rank == 16
    assert config.base_lora_layers == 2
    assert config.pattern_clusters > default.pattern_clusters
    assert config.replay_batch_size > default.replay_batch_size
    assert config.background_interval_ms < default.background_interval_ms


def test_preset_edge_deployment_values():
    config = SonaConfig.edge_deployment()
    assert config.hidden_dim == 128
    assert config.embedding_dim == 128
    assert config.base_lora_rank == 4
    assert config.trajectory_capacity == 1_000


def test_preset_batch_processing_values():
    config = SonaConfig.batch_processing()
    default = SonaConfig.default()
    assert config.micro_batch_size == 32
    assert config.trajectory_capacity > default.trajectory_capacity
    assert config.replay_batch_size > default.replay_batch_size


def test_preset_accepts_overrides():
    assert SonaConfig.default(hidden_dim=128).hidden_dim == 128
    config = SonaConfig.preset("edge_deployment", hidden_dim=64)
    assert config.hidden_dim == 64
    assert config.base_lora_rank == 4


def test_preset_override_is_validated():
    with pytest.raises(ValueError, match=r"hidden_dim must be in \[\d+, 8192\], got 1"):
        SonaConfig.edge_deployment(hidden_dim=1)


def test_preset_unknown_name():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'; choose one of \['batch_processing'"):
        SonaConfig.preset("nope")


def test_preset_unknown_override():
    with pytest.raises(KeyError, match="unknown config field"):
        SonaConfig.default(hidden_dims=64)


def test_every_field_has_help_text():
    for item in dataclasses.fields(SonaConfig):
        assert item.metadata.get("help"), f"{item.name} has no help text"


# Validation ---------------------------------------------------------------


def _out_of_range_values(name: str, low, high) -> list:
    if FIELD_TYPES[name] == "int":
        return [low - 1, high + 1]
    return [low - 0.5, high * 2.0, math.nan]


RANGE_CASES = [
    pytest.param(name, low, high, value, id=f"{name}={value}")
    for name, low, high in _RANGES
    for value in _out_of_range_values(name, low, high)
]


@pytest.mark.parametrize(("name", "low", "high", "value"), RANGE_CASES)
def test_validate_rejects_out_of_range(name, low, high, value):
    config = dataclasses.replace(SonaConfig.default(), **{name: value})
    message = f"{name} must be in [{low}, {high}], got {value}"
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()


BOUND_CASES = [
    pytest.param(name, value, id=f"{name}={value}") for name, low, high in _RANGES for value in (low, high)
]


@pytest.mark.parametrize(("name", "value"), BOUND_CASES)
def test_validate_accepts_range_bounds(name, value):
    changes = {name: value}
    if name == "hidden_dim":
        # base_lora_rank may not exceed hidden_dim, so the narrowest width needs the lowest rank.
        changes["base_lora_rank"] = min(value, SonaConfig.default().base_lora_rank)
    config = dataclasses.replace(SonaConfig.default(), **changes)
    assert config.validate() is config


def test_validate_base_lora_rank_above_hidden_dim():
    config = dataclasses.replace(SonaConfig.default(), hidden_dim=6, embedding_dim=6)
    message = "base_lora_rank must be <= hidden_dim=6, got 8: a low-rank adapter cannot have more directions"
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()
    assert config.replace(base_lora_rank=6).base_lora_rank == 6


@pytest.mark.parametrize("rank", [0, 3, 4])
def test_validate_micro_lora_rank(rank):
    config = dataclasses.replace(SonaConfig.default(), micro_lora_rank=rank)
    with pytest.raises(ValueError, match=f"micro_lora_rank must be 1 or 2, got {rank}") as raised:
        config.validate()
    assert "base_lora_rank" in str(raised.value)


def test_validate_micro_lora_rank_via_preset():
    with pytest.raises(ValueError, match="micro_lora_rank must be 1 or 2, got 4.*base_lora_rank"):
        SonaConfig.default(micro_lora_rank=4)


@pytest.mark.parametrize(("name", "value"), [
    ("ewc_fisher_alpha", 0.0),
    ("ewc_fisher_alpha", 1.5),
    ("ewc_fisher_alpha", math.nan),
    ("pattern_decay", 0.0),
    ("pattern_decay", 1.01),
    ("pattern_decay", -1.0),
    ("pattern_stats_decay", 0.0),
    ("pattern_stats_decay", 1.5),
])
def test_validate_half_open_rates(name, value):
    config = dataclasses.replace(SonaConfig.default(), **{name: value})
    with pytest.raises(ValueError, match=re.escape(f"{name} must be in (0, 1], got {value}")):
        config.validate()


@pytest.mark.parametrize("name", ["micro_lora_alpha", "base_lora_alpha"])
def test_validate_rejects_zero_alpha(name):
    # A zero alpha would make the adapter's scaling 0 and the merge divide by it.
    with pytest.raises(ValueError, match=re.escape(f"{name} must be in [0.001, 1000.0], got 0.0")):
        SonaConfig.default(**{name: 0.0})


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("hidden_dim", True, "bool True"),
    ("hidden_dim", 64.0, "float 64.0"),
    ("hidden_dim", "64", "str '64'"),
    ("seed", None, "NoneType None"),
    ("seed", np.int64(3), "int64 np.int64(3)"),
    ("micro_lora_lr", "0.1", "str '0.1'"),
    ("micro_lora_lr", False, "bool False"),
    ("quality_threshold", None, "NoneType None"),
    ("enable_simd", 1, "int 1"),
    ("enable_simd", "yes", "str 'yes'"),
])
def test_validate_rejects_wrong_type(name, value, shown):
    config = dataclasses.replace(SonaConfig.default(), **{name: value})
    expected = FIELD_TYPES[name]
    with pytest.raises(TypeError, match=re.escape(f"{name} must be {expected}, got {shown}")):
        config.validate()


def test_validate_accepts_int_for_float():
    config = SonaConfig.default(micro_lora_lr=1, quality_threshold=0)
    assert config.micro_lora_lr == 1


def test_from_dict_unknown_key():
    with pytest.raises(KeyError, match=r"unknown config field\(s\) \['colour'\]; valid fields are"):
        SonaConfig.from_dict({"hidden_dim": 8, "colour": "red"})


def test_from_dict_rejects_non_dict():
    with pytest.raises(TypeError, match="config must be a dict, got list"):
        SonaConfig.from_dict([("hidden_dim", 8)])


def test_from_dict_validates():
    with pytest.raises(ValueError, match=re.escape("base_lora_layers must be in [1, 8], got 9")):
        SonaConfig.from_dict({"base_lora_layers": 9})


def test_from_dict_fills_defaults():
    assert SonaConfig.from_dict({"hidden_dim": 8}) == SonaConfig.default(hidden_dim=8)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_to_dict_round_trip(name):
    config = SonaConfig.preset(name, seed=2**40 + 3)
    data = config.to_dict()
    assert set(data) == set(FIELD_TYPES)
    assert SonaConfig.from_dict(data) == config
    assert SonaConfig.from_dict(json.loads(json.dumps(data))) == config


def test_to_dict_returns_a_copy():
    config = SonaConfig.default()
    data = config.to_dict()
    data["hidden_dim"] = 3
    assert config.hidden_dim == 256


def test_replace_returns_validated_copy():
    config = SonaConfig.default()
    changed = config.replace(hidden_dim=64, seed=5)
    assert (changed.hidden_dim, changed.seed) == (64, 5)
    assert (config.hidden_dim, config.seed) == (256, 0)
    assert changed.replace() == changed


def test_replace_rejects_invalid_value():
    with pytest.raises(ValueError, match=re.escape("quality_threshold must be in [0.0, 1.0], got 1.5")):
        SonaConfig.default().replace(quality_threshold=1.5)


def test_replace_rejects_unknown_field():
    with pytest.raises(KeyError, match=r"\['rank'\]"):
        SonaConfig.default().replace(rank=4)


# One observable effect per field -----------------------------------------

EFFECT_TESTS: set[str] = set()


def effect_of(*names: str):
    """Register the config fields whose effect the decorated test checks."""
    unknown = set(names) - set(FIELD_TYPES)
    assert not unknown, f"not config fields: {unknown}"

    def register(test):
        EFFECT_TESTS.update(names)
        return test

    return register


def test_every_field_has_an_effect_test():
    missing = set(FIELD_TYPES) - EFFECT_TESTS
    assert not missing, f"config fields without an effect test: {sorted(missing)}"


def _trained_with_steps(engine: SonaEngine, count: int, seed: int = 0) -> None:
    """Feed trajectories with steps and qualities far from the baseline, so every adapter gets a gradient."""
    rng = np.random.default_rng(seed)
    dim = engine.config.hidden_dim
    for i in range(count):
        steps = [(rng.standard_normal(dim), np.ones(4), float(rng.random()))]
        record(engine, unit_rows(rng, 1, engine.config.embedding_dim)[0], float(i % 2), "r0", steps)


@effect_of("hidden_dim")
def test_effect_hidden_dim():
    engine = small_engine(dim=12)
    assert engine.apply_micro_lora(np.ones((3, 12))).shape == (3, 12)
    assert engine.transform(np.ones(12)).shape == (12,)
    assert engine._model.micro.lora_A.shape == (2, 12)
    with pytest.raises(ValueError, match=re.escape("x must have shape (12,) or (n, 12), got (8,)")):
        engine.apply_micro_lora(np.ones(8))


@effect_of("embedding_dim")
def test_effect_embedding_dim():
    engine = small_engine(dim=8, embedding_dim=20)
    x = unit(np.arange(1.0, 21.0))
    trajectory_id = engine.begin_trajectory(x)
    with pytest.raises(ValueError, match=re.escape("query_embedding must have shape (20,), got (8,)")):
        engine.begin_trajectory(np.ones(8))

    # A fresh engine's adapters are the identity, so transform is the projection
    # alone, followed by the L2 normalisation every query gets.
    h = engine.transform(x)
    assert h.shape == (8,)
    assert engine._projection.shape == (20, 8)
    assert_allclose(h, unit(x.astype(np.float32) @ engine._projection), rtol=1e-6)
    engine.end_trajectory(trajectory_id, 1.0)

    same_width = small_engine(dim=8)
    assert same_width._projection is None
    assert_allclose(same_width.transform(x[:8]), unit(x[:8]), rtol=1e-6)


@effect_of("micro_lora_rank")
def test_effect_micro_lora_rank():
    for rank in (1, 2):
        engine = small_engine(micro_lora_rank=rank)
        assert engine._model.micro.lora_A.shape == (rank, 8)
        assert engine._model.micro.lora_B.shape == (8, rank)


def _micro_delta(engine: SonaEngine, lora_B: np.ndarray, x: np.ndarray) -> np.ndarray:
    engine._model.micro.lora_B = lora_B.astype(engine._model.dtype)
    return engine.apply_micro_lora(x).astype(np.float64) - x


@effect_of("micro_lora_alpha")
def test_effect_micro_lora_alpha():
    rng = np.random.default_rng(1)
    lora_B = rng.standard_normal((8, 2))
    x = unit_rows(rng, 3, 8).astype(np.float32)
    small = small_engine(micro_lora_alpha=1.0, enable_simd=False)
    large = small_engine(micro_lora_alpha=3.0, enable_simd=False)
    assert_array_equal(small._model.micro.lora_A, large._model.micro.lora_A)

    delta_small = _micro_delta(small, lora_B, x)
    delta_large = _micro_delta(large, lora_B, x)
    assert np.abs(delta_small).max() > 1e-3
    # The outputs are rounded to float32 after adding x, hence the tolerance.
    assert_allclose(delta_large, 3.0 * delta_small, atol=1e-6)


@effect_of("micro_lora_lr")
def test_effect_micro_lora_lr():
    frozen = small_engine(micro_lora_lr=0.0)
    learning = small_engine(micro_lora_lr=0.1)
    _trained_with_steps(frozen, 6)
    _trained_with_steps(learning, 6)
    assert not frozen._model.micro.lora_B.any()
    assert np.abs(learning._model.micro.lora_B).max() > 1e-4


@effect_of("head_lr")
@pytest.mark.parametrize("head_lr", [0.0, 0.1, 0.4])
def test_effect_head_lr(head_lr):
    # One trajectory of quality 1 on a fresh head (prior 0.5, zero weights) and
    # a unit query x: the squared error's gradient is -0.5 for the bias and
    # -0.5 x for the weights, so the prediction at x becomes 0.5 + head_lr * 0.5 * 2.
    engine = small_engine(head_lr=head_lr)
    x = unit(np.arange(1.0, 9.0))
    record(engine, x, 1.0, "r0")
    assert engine.predict_quality(x)["r0"] == pytest.approx(0.5 + head_lr, abs=1e-6)


@effect_of("base_lora_rank")
def test_effect_base_lora_rank():
    for rank in (4, 6):
        engine = small_engine(base_lora_rank=rank)
        assert engine._model.base[0].lora_A.shape == (rank, 8)
        assert engine._model.base[0].lora_B.shape == (8, rank)


@effect_of("base_lora_alpha")
def test_effect_base_lora_alpha():
    rng = np.random.default_rng(2)
    lora_B = rng.standard_normal((8, 8))
    x = unit_rows(rng, 3, 8).astype(np.float32)
    deltas = []
    for alpha in (2.0, 6.0):
        engine = small_engine(base_lora_alpha=alpha, enable_simd=False)
        engine._model.base[0].lora_B = lora_B.copy()
        deltas.append(engine.apply_base_lora(0, x).astype(np.float64) - x)
    assert np.abs(deltas[0]).max() > 1e-3
    assert_allclose(deltas[1], 3.0 * deltas[0], atol=1e-6)


@effect_of("base_lora_layers")
def test_effect_base_lora_layers():
    engine = small_engine(base_lora_layers=3)
    x = unit(np.arange(1.0, 9.0))
    assert engine.apply_base_lora(2, x).shape == (8,)
    with pytest.raises(ValueError, match=re.escape("layer must be in [0, 2] (base_lora_layers=3), got 3")):
        engine.apply_base_lora(3, x)

    # The last layer takes part in transform: a non-zero update there changes h.
    before = engine.transform(x)
    engine._model.base[2].lora_B[...] = 0.5
    assert np.abs(engine.transform(x) - before).max() > 1e-3


@effect_of("base_lora_lr")
def test_effect_base_lora_lr():
    frozen = small_engine(base_lora_lr=0.0)
    learning = small_engine(base_lora_lr=0.05)
    for engine in (frozen, learning):
        _trained_with_steps(engine, 12)
    micro_before = frozen._model.micro.lora_B.copy()
    assert np.abs(micro_before).max() > 1e-4
    for engine in (frozen, learning):
        engine.force_learn()

    # Frozen: BaseLoRA stays at zero and MicroLoRA decays instead of being folded.
    assert not frozen._model.base[0].lora_B.any()
    assert_allclose(frozen._model.micro.lora_B, 0.5 * micro_before, rtol=1e-6)
    assert np.abs(learning._model.base[0].lora_B).max() > 1e-4
    assert not learning._model.micro.lora_B.any()


def _shifting_stream(engine: SonaEngine, count: int, switch_at: int, learn_every: int = 50) -> int | None:
    """Feed queries around one centre, then around another, and return the index at which a task boundary fired."""
    rng = np.random.default_rng(7)
    centres = unit_rows(rng, 2, engine.config.hidden_dim)
    fired = None
    for i in range(count):
        centre = centres[0] if i < switch_at else centres[1]
        x = unit(centre + 0.3 * rng.standard_normal(len(centre)))
        route = "a" if i % 2 else "b"
        # Route "a" is good on the first task and bad on the second.
        quality = float((route == "a") == (i < switch_at))
        steps = [(rng.standard_normal(len(centre)), np.ones(3), quality)]
        record(engine, x, quality, route, steps)
        if fired is None and engine.stats()["ewc_tasks"]:
            fired = i
        if (i + 1) % learn_every == 0:
            engine.force_learn()
    return fired


@effect_of("ewc_boundary_threshold")
def test_effect_ewc_boundary_threshold():
    default = _shifting_stream(small_engine(ewc_boundary_threshold=4.0), 500, 300)
    strict = _shifting_stream(small_engine(ewc_boundary_threshold=1e4), 500, 300)
    assert default is not None and default >= 300
    assert strict is None


@effect_of("ewc_boundary_patience")
def test_effect_ewc_boundary_patience():
    quick = _shifting_stream(small_engine(ewc_boundary_patience=2), 500, 300)
    patient = _shifting_stream(small_engine(ewc_boundary_patience=30), 500, 300)
    assert quick is not None and patient is not None
    assert 300 <= quick < patient
    assert patient - quick >= 28


def _anchor_distances(engine: SonaEngine) -> dict[str, float]:
    """Return how far the value heads, BaseLoRA's factor B and BaseLoRA's product moved from their anchors."""
    params = engine._model.slow_params()
    anchor = engine._ewc.anchor
    heads = params["heads_W"] - anchor["heads_W"][: len(params["heads_W"])]
    layer = engine._model.base[0]
    anchor_product = layer.scaling * (anchor["base0_B"] @ anchor["base0_A"])
    return {
        "heads_W": float(np.linalg.norm(heads)),
        "base0_B": float(np.linalg.norm(params["base0_B"] - anchor["base0_B"])),
        "base0_product": float(np.linalg.norm(layer.delta_weight() - anchor_product)),
    }


@pytest.fixture(scope="module")
def ewc_pair() -> dict[str, SonaEngine]:
    """Two engines fed the same two-task stream, one without and one with a strong EWC penalty."""
    engines = {"unprotected": small_engine(ewc_lambda=0.0), "protected": small_engine(ewc_lambda=1_000.0)}
    fired = {name: _shifting_stream(engine, 600, 300) for name, engine in engines.items()}
    # The penalty only acts after the first boundary, so both engines share their anchors.
    assert fired["unprotected"] == fired["protected"] is not None
    for name in ("heads_W", "base0_A", "base0_B"):
        assert_array_equal(engines["unprotected"]._ewc.anchor[name], engines["protected"]._ewc.anchor[name])
    return engines


@effect_of("ewc_lambda")
def test_effect_ewc_lambda(ewc_pair):
    unprotected = _anchor_distances(ewc_pair["unprotected"])
    protected = _anchor_distances(ewc_pair["protected"])
    assert protected["heads_W"] < 0.5 * unprotected["heads_W"]
    assert protected["base0_product"] < 0.75 * unprotected["base0_product"]


def test_ewc_lambda_holds_base_factors(ewc_pair):
    # Background cycles refactorise BaseLoRA when they fold MicroLoRA into it. The
    # anchors on lora_A and lora_B only protect anything if that keeps the factors' basis.
    unprotected = _anchor_distances(ewc_pair["unprotected"])
    protected = _anchor_distances(ewc_pair["protected"])
    assert protected["base0_B"] < 0.5 * unprotected["base0_B"]


@effect_of("ewc_fisher_alpha")
@pytest.mark.parametrize("alpha", [0.02, 0.5])
def test_effect_ewc_fisher_alpha(alpha):
    # First update of a fresh head: error = 0.5 - 1 = -0.5, so the running
    # Fisher of its bias becomes alpha * 0.25.
    engine = small_engine(ewc_fisher_alpha=alpha)
    record(engine, unit(np.ones(8)), 1.0, "r0")
    assert_allclose(engine._ewc.fisher["heads_b"], [alpha * 0.25])

    # The head now predicts 0.5 + 0.1 * 0.5 * 2 = 0.6 (see test_effect_head_lr), so
    # the error is -0.4, and the first estimate decays by (1 - alpha).
    record(engine, unit(np.ones(8)), 1.0, "r0")
    assert_allclose(engine._ewc.fisher["heads_b"], [(1 - alpha) * alpha * 0.25 + alpha * 0.16])


def _clustered_queries(dim: int, centres: int, per_centre: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.eye(dim)[:centres]
    rows = np.repeat(basis, per_centre, axis=0) + 0.05 * rng.standard_normal((centres * per_centre, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _bank_engine(**overrides) -> SonaEngine:
    return small_engine(dim=16, **overrides)


@effect_of("pattern_clusters")
def test_effect_pattern_clusters():
    counts = {}
    for cap in (0, 3, 64):
        engine = _bank_engine(pattern_clusters=cap)
        for i, x in enumerate(_clustered_queries(16, 10, 8)):
            record(engine, x, 0.9, f"r{i % 2}")
        engine.force_learn()
        for i, x in enumerate(_clustered_queries(16, 12, 8, seed=4)):
            record(engine, x, 0.9, f"r{i % 2}")
        engine.force_learn()
        counts[cap] = engine.stats()["patterns"]
        assert len(engine.find_patterns(np.eye(16)[0], k=1000)) == counts[cap]
    assert counts[0] == 0
    assert 1 <= counts[3] <= 3
    assert counts[64] > 3


@effect_of("pattern_decay")
@pytest.mark.parametrize("decay", [1.0, 0.5])
def test_effect_pattern_decay(decay):
    engine = _bank_engine(pattern_decay=decay)
    queries = _clustered_queries(16, 1, 8)
    for x in queries:
        record(engine, x, 0.9, "r0")
    engine.force_learn()
    before = sum(p["total_weight"] for p in engine.find_patterns(queries[0], k=1000))
    assert before > 0

    # Bad trajectories move no centroid, so only the decay changes the weights.
    for x in queries[:4]:
        record(engine, x, 0.1, "r0")
    engine.force_learn()
    after = sum(p["total_weight"] for p in engine.find_patterns(queries[0], k=1000))
    assert after == pytest.approx(decay * before)


@effect_of("pattern_stats_decay")
@pytest.mark.parametrize("decay", [1.0, 0.9])
def test_effect_pattern_stats_decay(decay):
    # One pattern, so every outcome reaches the same statistics.
    engine = _bank_engine(pattern_stats_decay=decay, pattern_clusters=1)
    queries = _clustered_queries(16, 1, 8)
    for x in queries:
        record(engine, x, 0.9, "r0")
        record(engine, x, 0.5, "r1")
    engine.force_learn()

    # Once a pattern exists, each new outcome of a route first discounts that
    # route's evidence there. The other route's evidence stays.
    for x in queries[:5]:
        record(engine, x, 0.0, "r0")
    stats = engine.find_patterns(queries[0], k=1)[0]["route_stats"]
    expected = 8 * decay**5 + sum(decay**k for k in range(5))
    assert stats["r0"]["count"] == pytest.approx(expected)
    assert stats["r1"]["count"] == pytest.approx(8.0)


@effect_of("quality_threshold")
@pytest.mark.parametrize(("threshold", "members"), [(0.5, 8), (0.0, 16)])
def test_effect_quality_threshold(threshold, members):
    engine = _bank_engine(quality_threshold=threshold)
    queries = _clustered_queries(16, 1, 16)
    for i, x in enumerate(queries):
        record(engine, x, 0.9 if i % 2 else 0.2, "r0")
    engine.force_learn()

    patterns = engine.find_patterns(queries[0], k=1000)
    assert patterns
    assert sum(p["cluster_size"] for p in patterns) == members
    # Every trajectory, good or bad, feeds the route statistics.
    assert sum(p["route_stats"]["r0"]["count"] for p in patterns if "r0" in p["route_stats"]) == 16


@effect_of("trajectory_capacity")
def test_effect_trajectory_capacity():
    engine = small_engine(trajectory_capacity=5)
    for x in unit_rows(np.random.default_rng(0), 8, 8):
        record(engine, x, 0.5)
    stats = engine.stats()
    assert stats["buffered_trajectories"] == 5
    assert stats["dropped_trajectories"] == 3
    assert stats["trajectories_recorded"] == 8


@effect_of("max_active_trajectories")
def test_effect_max_active_trajectories():
    engine = small_engine(max_active_trajectories=3)
    ids = [engine.begin_trajectory(np.ones(8)) for _ in range(5)]
    stats = engine.stats()
    assert stats["active_trajectories"] == 3
    assert stats["expired_trajectories"] == 2
    with pytest.raises(KeyError, match=f"unknown trajectory_id {ids[0]}.*at most 3 trajectories stay active"):
        engine.end_trajectory(ids[0], 1.0)
    engine.end_trajectory(ids[2], 1.0)


@effect_of("max_steps_per_trajectory")
def test_effect_max_steps_per_trajectory():
    engine = small_engine(max_steps_per_trajectory=2)
    trajectory_id = engine.begin_trajectory(np.ones(8))
    for _ in range(2):
        engine.add_trajectory_step(trajectory_id, np.ones(8), [1.0], 0.5)
    with pytest.raises(ValueError, match=f"trajectory {trajectory_id} already has max_steps_per_trajectory=2 steps"):
        engine.add_trajectory_step(trajectory_id, np.ones(8), [1.0], 0.5)
    engine.end_trajectory(trajectory_id, 1.0)
    assert engine.stats()["steps_recorded"] == 2


@effect_of("micro_batch_size")
def test_effect_micro_batch_size():
    engine = small_engine(micro_batch_size=3)
    queries = unit_rows(np.random.default_rng(0), 4, 8)
    for x in queries[:2]:
        record(engine, x, 1.0, "r0")
    assert engine.stats()["pending_updates"] == 2
    assert engine.stats()["instant_updates"] == 0
    assert engine.predict_quality(queries[0])["r0"] == 0.5

    record(engine, queries[2], 1.0, "r0")
    assert engine.stats()["pending_updates"] == 0
    assert engine.stats()["instant_updates"] == 1
    assert engine.predict_quality(queries[0])["r0"] > 0.5

    record(engine, queries[3], 1.0, "r0")
    assert engine.flush() == 1
    assert engine.flush() == 0
    assert engine.stats()["instant_updates"] == 2


@effect_of("replay_batch_size")
@pytest.mark.parametrize(("replay", "expected"), [(0, 0), (7, 7), (100, 20)])
def test_effect_replay_batch_size(replay, expected):
    engine = small_engine(replay_batch_size=replay)
    rng = np.random.default_rng(0)
    for x in unit_rows(rng, 20, 8):
        record(engine, x, 1.0, "r0")
    assert engine.force_learn()["new_trajectories"] == 20
    for x in unit_rows(rng, 5, 8):
        record(engine, x, 0.0, "r0")
    summary = engine.force_learn()
    assert summary["new_trajectories"] == 5
    assert summary["replayed_trajectories"] == expected


@effect_of("background_interval_ms")
def test_effect_background_interval_ms():
    clock = FakeClock()
    engine = small_engine(clock=clock, background_interval_ms=1_000)
    record(engine, unit(np.ones(8)), 1.0, "r0")
    clock.advance(0.999)
    assert engine.tick() is None
    clock.advance(0.001)
    summary = engine.tick()
    assert summary["new_trajectories"] == 1
    assert engine.stats()["background_cycles"] == 1

    # Nothing new: no cycle, however long the wait.
    clock.advance(60.0)
    assert engine.tick() is None

    eager = small_engine(background_interval_ms=0)
    record(eager, unit(np.ones(8)), 1.0, "r0")
    assert eager.tick() is not None


@effect_of("enable_simd")
def test_effect_enable_simd():
    rng = np.random.default_rng(5)
    lora_B = rng.standard_normal((64, 2))
    x = rng.standard_normal((10, 64))
    outputs = {}
    for simd in (True, False):
        engine = small_engine(dim=64, enable_simd=simd)
        assert engine._model.dtype == (np.float32 if simd else np.float64)
        engine._model.micro.lora_B = lora_B.astype(engine._model.dtype)
        outputs[simd] = engine.apply_micro_lora(x)
        assert outputs[simd].dtype == np.float32
    assert not np.array_equal(outputs[True], outputs[False])
    # float32 arithmetic against the float64 reference: about 1e-7 relative error per operation.
    assert_allclose(outputs[True], outputs[False], atol=1e-5)


@effect_of("seed")
def test_effect_seed():
    first = small_engine(seed=1)
    again = small_engine(seed=1)
    other = small_engine(seed=2)
    assert_array_equal(first._model.micro.lora_A, again._model.micro.lora_A)
    assert not np.allclose(first._model.micro.lora_A, other._model.micro.lora_A)
    assert not np.allclose(first._model.base[0].lora_A, other._model.base[0].lora_A)
