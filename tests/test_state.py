"""save_state / load_state: exact round trips, and a clear ValueError for every kind of bad data.

A restored engine must behave exactly like the original: both are fed the same
stream afterwards, on fake clocks showing the same time, and every output is
compared bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from sona_web import AdaptiveRouter, SonaConfig, SonaEngine
from sona_web.state import FORMAT_VERSION, MAGIC, pack, unpack

from engine_support import FakeClock, small_engine, unit, unit_rows

ENGINE_KIND = "sona_web.SonaEngine"
ROUTER_KIND = "sona_web.AdaptiveRouter"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "sona_web"


def drive(engine: SonaEngine, clock: FakeClock, seed: int, count: int = 40) -> None:
    """Feed a reproducible stream: steps, routes, contexts, clock ticks and background cycles."""
    rng = np.random.default_rng(seed)
    config = engine.config
    centres = unit_rows(np.random.default_rng(99), 3, config.embedding_dim)
    for i in range(count):
        x = unit(centres[i % 3] + 0.2 * rng.standard_normal(config.embedding_dim))
        trajectory_id = engine.begin_trajectory(x)
        for _ in range(int(rng.integers(0, 3))):
            engine.add_trajectory_step(trajectory_id, rng.standard_normal(config.hidden_dim), rng.random(3), float(rng.standard_normal()))
        if i % 5:
            engine.set_trajectory_route(trajectory_id, f"route{i % 3}")
        if i % 2:
            engine.add_trajectory_context(trajectory_id, f"topic{i % 3}")
        engine.end_trajectory(trajectory_id, float(rng.random()))
        clock.advance(float(rng.random()))
        engine.tick()
        if i % 13 == 12:
            engine.force_learn()


def outputs(engine: SonaEngine, seed: int = 5) -> dict:
    """Return everything a caller can read from the engine for a few probe queries."""
    config = engine.config
    rng = np.random.default_rng(seed)
    queries = unit_rows(rng, 4, config.embedding_dim)
    hidden = rng.standard_normal((4, config.hidden_dim))
    result = {
        "micro": engine.apply_micro_lora(hidden),
        "transform": engine.transform(queries),
        "quality": [engine.predict_quality(q) for q in queries],
        "patterns": [_comparable(engine.find_patterns(q, k=3)) for q in queries],
        "stats": _without_timing(engine.stats()),
        "routes": engine.routes,
    }
    for layer in range(config.base_lora_layers):
        result[f"base{layer}"] = engine.apply_base_lora(layer, hidden)
    return result


def _comparable(patterns: list[dict]) -> list[dict]:
    return [{**p, "centroid": p["centroid"].tobytes()} for p in patterns]


def _without_timing(stats: dict) -> dict:
    # last_cycle_ms measures wall time with perf_counter, not the injected clock.
    return {key: value for key, value in stats.items() if key != "last_cycle_ms"}


def assert_same_outputs(first: SonaEngine, second: SonaEngine) -> None:
    left, right = outputs(first), outputs(second)
    assert left.keys() == right.keys()
    for key in left:
        if isinstance(left[key], np.ndarray):
            assert left[key].dtype == right[key].dtype == np.float32
            assert_array_equal(left[key], right[key], err_msg=key)
        else:
            assert left[key] == right[key], key


def assert_same_state(first: bytes, second: bytes, kind: str = ENGINE_KIND) -> None:
    """Compare two states field by field, leaving out the wall-clock duration of the last cycle."""
    meta_first, arrays_first = unpack(first, kind)
    meta_second, arrays_second = unpack(second, kind)
    meta_first.pop("last_cycle_ms")
    meta_second.pop("last_cycle_ms")
    assert meta_first == meta_second
    assert arrays_first.keys() == arrays_second.keys()
    for name, value in arrays_first.items():
        assert value.dtype == arrays_second[name].dtype, name
        assert_array_equal(value, arrays_second[name], err_msg=name)


def restored_pair(engine_clock: FakeClock, engine: SonaEngine) -> tuple[SonaEngine, FakeClock]:
    clock = FakeClock(engine_clock.now)
    return SonaEngine.load_state(engine.save_state(), clock=clock), clock


# Round trips ------------------------------------------------------------------------

ROUND_TRIP_CONFIGS = {
    "default": {},
    "projection": {"embedding_dim": 20},
    "two_layers_float64": {"base_lora_layers": 2, "enable_simd": False, "micro_lora_rank": 1},
    "micro_batches": {"micro_batch_size": 4},
    "small_buffer": {"trajectory_capacity": 8, "replay_batch_size": 3},
    "no_patterns": {"pattern_clusters": 0},
}


@pytest.mark.parametrize("overrides", ROUND_TRIP_CONFIGS.values(), ids=ROUND_TRIP_CONFIGS.keys())
def test_round_trip_same_outputs(overrides):
    clock = FakeClock()
    original = small_engine(clock=clock, trajectory_capacity=overrides.pop("trajectory_capacity", 64), **overrides)
    drive(original, clock, seed=1)
    restored, restored_clock = restored_pair(clock, original)
    assert restored.config == original.config
    assert_same_outputs(original, restored)

    # The same stream afterwards keeps them identical, including replay sampling and pattern seeding.
    drive(original, clock, seed=2)
    drive(restored, restored_clock, seed=2)
    assert_same_outputs(original, restored)
    original.force_learn()
    restored.force_learn()
    assert_same_outputs(original, restored)
    assert_same_state(original.save_state(), restored.save_state())


def test_round_trip_is_byte_exact():
    clock = FakeClock()
    engine = small_engine(clock=clock, trajectory_capacity=64, embedding_dim=12)
    drive(engine, clock, seed=3)
    data = engine.save_state()
    assert SonaEngine.load_state(data, clock=FakeClock(clock.now)).save_state() == data


def test_round_trip_of_fresh_engine():
    engine = small_engine()
    restored = SonaEngine.load_state(engine.save_state(), clock=FakeClock())
    assert_same_outputs(engine, restored)
    assert restored.stats()["trajectories_recorded"] == 0


def test_round_trip_with_pending_updates():
    clock = FakeClock()
    original = small_engine(clock=clock, micro_batch_size=8, trajectory_capacity=64)
    rng = np.random.default_rng(4)
    for i in range(5):
        steps = [(rng.standard_normal(8), [1.0, 2.0], 0.5)] if i % 2 else []
        trajectory_id = original.begin_trajectory(unit(rng.standard_normal(8)))
        for step in steps:
            original.add_trajectory_step(trajectory_id, *step)
        original.set_trajectory_route(trajectory_id, "r")
        original.end_trajectory(trajectory_id, float(i % 2))
    assert original.stats()["pending_updates"] == 5

    restored, _ = restored_pair(clock, original)
    assert restored.stats()["pending_updates"] == 5
    for pending, loaded in zip(original._pending, restored._pending):
        assert_array_equal(pending[0], loaded[0])
        assert pending[1:3] == loaded[1:3]
        assert (pending[3] is None) == (loaded[3] is None)
        if pending[3] is not None:
            assert_array_equal(pending[3], loaded[3])
    assert original.flush() == restored.flush() == 5
    assert_same_outputs(original, restored)


def test_round_trip_keeps_step_targets():
    clock = FakeClock()
    original = small_engine(clock=clock, trajectory_capacity=16)
    drive(original, clock, seed=6, count=10)
    assert original._buffer.targets is not None
    restored, _ = restored_pair(clock, original)
    assert_array_equal(restored._buffer.targets, original._buffer.targets)
    assert_array_equal(restored._buffer.has_target, original._buffer.has_target)


def test_round_trip_keeps_projection():
    clock = FakeClock()
    original = small_engine(clock=clock, embedding_dim=20, trajectory_capacity=16)
    restored, _ = restored_pair(clock, original)
    assert_array_equal(restored._projection, original._projection)
    assert restored.transform(np.ones(20)).shape == (8,)


def test_round_trip_keeps_disabled_flag():
    clock = FakeClock()
    original = small_engine(clock=clock, trajectory_capacity=16)
    drive(original, clock, seed=7, count=8)
    original.set_enabled(False)
    restored, _ = restored_pair(clock, original)
    assert restored.is_enabled() is False
    assert_same_outputs(original, restored)


def test_round_trip_keeps_tick_schedule():
    clock = FakeClock()
    original = small_engine(clock=clock, background_interval_ms=1_000, trajectory_capacity=16)
    drive(original, clock, seed=8, count=6)
    original.force_learn()
    restored, restored_clock = restored_pair(clock, original)
    for engine in (original, restored):
        engine.begin_trajectory(np.ones(8))
    for engine, engine_clock in ((original, clock), (restored, restored_clock)):
        trajectory_id = engine.begin_trajectory(np.ones(8))
        engine.end_trajectory(trajectory_id, 1.0)
        engine_clock.advance(0.5)
        assert engine.tick() is None
        engine_clock.advance(0.5)
        assert engine.tick() is not None


def test_trajectories_in_flight_are_not_saved():
    clock = FakeClock()
    original = small_engine(clock=clock)
    in_flight = original.begin_trajectory(np.ones(8))
    restored, _ = restored_pair(clock, original)
    assert restored.stats()["active_trajectories"] == 0
    with pytest.raises(KeyError, match=f"unknown trajectory_id {in_flight}"):
        restored.end_trajectory(in_flight, 1.0)
    # Ids keep counting, so an old id never names a new trajectory.
    assert restored.begin_trajectory(np.ones(8)) == in_flight + 1


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_load_accepts_bytes_like(wrap):
    engine = small_engine()
    data = engine.save_state()
    restored = SonaEngine.load_state(wrap(data), clock=FakeClock())
    assert restored.save_state() == data


def test_save_state_layout():
    data = small_engine().save_state()
    assert data[:8] == MAGIC
    assert struct.unpack_from("<I", data, 8)[0] == FORMAT_VERSION
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


# Router round trip ---------------------------------------------------------------------


def _trained_router(clock: FakeClock) -> AdaptiveRouter:
    config = SonaConfig.default(hidden_dim=8, embedding_dim=8, trajectory_capacity=64)
    router = AdaptiveRouter([("large", 1.0), ("small", 0.2), ("tiny", 0.0)], config, learn_every=10, clock=clock, seed=3)
    rng = np.random.default_rng(0)
    for i, x in enumerate(unit_rows(rng, 45, 8)):
        decision = router.route(x)
        quality = float(decision.model_index == i % 3 or rng.random() < 0.3)
        router.record_outcome(x, decision.model, quality, latency_ms=10.0 * i)
        clock.advance(1.0)
    return router


def _router_outputs(router: AdaptiveRouter, queries: np.ndarray) -> list:
    decisions = [router.route(x).to_dict() for x in queries]
    stats = router.stats()
    stats["engine"] = _without_timing(stats["engine"])
    return [decisions, stats, router.decisions()]


def test_router_round_trip_same_decisions():
    clock = FakeClock()
    original = _trained_router(clock)
    assert original.engine.stats()["patterns"] > 0
    restored_clock = FakeClock(clock.now)
    restored = AdaptiveRouter.load_state(original.save_state(), clock=restored_clock)
    assert (restored.models, restored.costs.tolist()) == (original.models, original.costs.tolist())
    assert (restored.cost_weight, restored.exploration, restored.n_patterns, restored.learn_every) == (
        original.cost_weight, original.exploration, original.n_patterns, original.learn_every
    )
    assert (restored.ridge, restored.linear_prior) == (original.ridge, original.linear_prior)

    queries = unit_rows(np.random.default_rng(1), 30, 8)
    first, second = _router_outputs(original, queries), _router_outputs(restored, queries)
    assert first == second
    # Exploration draws come from the saved generator, so some decisions explore in both.
    assert any(d["explored"] for d in first[0])

    for router, router_clock in ((original, clock), (restored, restored_clock)):
        for i, x in enumerate(queries):
            router.record_outcome(x, i % 3, float(i % 2))
            router_clock.advance(1.0)
    assert _router_outputs(original, queries) == _router_outputs(restored, queries)


# Rejected data ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_state() -> bytes:
    clock = FakeClock()
    engine = small_engine(clock=clock, trajectory_capacity=16, embedding_dim=10)
    drive(engine, clock, seed=9, count=20)
    return engine.save_state()


@pytest.fixture(scope="module")
def router_state() -> bytes:
    return _trained_router(FakeClock()).save_state()


def _with_digest(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def _raw_state(header: dict | bytes, data: bytes = b"", version: int = FORMAT_VERSION) -> bytes:
    """Build a state container by hand, with a valid digest, from a header and raw array bytes."""
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    prefix = struct.pack("<8sIQ", MAGIC, version, len(header_bytes))
    return _with_digest(prefix + header_bytes + data)


def _repacked(data: bytes, kind: str, edit) -> bytes:
    """Unpack a valid state, let ``edit(meta, arrays)`` change it, and pack it again with a valid digest."""
    meta, arrays = unpack(data, kind)
    edit(meta, arrays)
    return pack(kind, meta, arrays)


@pytest.mark.parametrize("value", ["state", [1, 2], None, 3])
def test_load_rejects_non_bytes(value):
    with pytest.raises(TypeError, match=f"state must be bytes, got {type(value).__name__}"):
        SonaEngine.load_state(value)


@pytest.mark.parametrize("length", [0, 10, 51])
def test_load_rejects_too_short(engine_state, length):
    with pytest.raises(ValueError, match=f"state is truncated: {length} bytes is shorter than any sona-web state"):
        SonaEngine.load_state(engine_state[:length])


@pytest.mark.parametrize("cut", [1, 32, 100, "half"])
def test_load_rejects_truncated(engine_state, cut):
    end = len(engine_state) // 2 if cut == "half" else len(engine_state) - cut
    with pytest.raises(ValueError, match="state is corrupted or truncated: its SHA-256 checksum does not match"):
        SonaEngine.load_state(engine_state[:end])


@pytest.mark.parametrize("where", ["header", "middle", "last data byte", "digest"])
def test_load_rejects_flipped_byte(engine_state, where):
    position = {"header": 40, "middle": len(engine_state) // 2, "last data byte": -33, "digest": -5}[where]
    damaged = bytearray(engine_state)
    damaged[position] ^= 0x01
    with pytest.raises(ValueError, match="state is corrupted or truncated: its SHA-256 checksum does not match"):
        SonaEngine.load_state(bytes(damaged))


def test_load_rejects_appended_bytes(engine_state):
    with pytest.raises(ValueError, match="checksum does not match"):
        SonaEngine.load_state(engine_state + b"\x00")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_load_rejects_random_bytes(seed):
    noise = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ValueError, match=re.escape("state is not a sona-web state (wrong magic bytes)")):
        SonaEngine.load_state(noise)


def test_load_rejects_other_formats():
    with pytest.raises(ValueError, match="wrong magic bytes"):
        SonaEngine.load_state(pickle.dumps({"config": {}}) + bytes(64))
    with pytest.raises(ValueError, match="wrong magic bytes"):
        SonaEngine.load_state(json.dumps({"kind": ENGINE_KIND}).encode() + bytes(64))


def test_engine_rejects_router_state(router_state):
    message = f"state contains a '{ROUTER_KIND}', not a '{ENGINE_KIND}'; load it with the matching class"
    with pytest.raises(ValueError, match=re.escape(message)):
        SonaEngine.load_state(router_state)


def test_router_rejects_engine_state(engine_state):
    message = f"state contains a '{ENGINE_KIND}', not a '{ROUTER_KIND}'"
    with pytest.raises(ValueError, match=re.escape(message)):
        AdaptiveRouter.load_state(engine_state)


def test_load_rejects_newer_version(engine_state):
    patched = bytearray(engine_state[:-32])
    struct.pack_into("<I", patched, 8, FORMAT_VERSION + 1)
    message = f"state format version {FORMAT_VERSION + 1} is newer than this sona-web reads ({FORMAT_VERSION}); upgrade sona-web"
    with pytest.raises(ValueError, match=re.escape(message)):
        SonaEngine.load_state(_with_digest(bytes(patched)))
    with pytest.raises(ValueError, match="is newer than this sona-web reads"):
        AdaptiveRouter.load_state(_with_digest(bytes(patched)))


def test_load_rejects_header_not_json():
    with pytest.raises(ValueError, match="state header is not valid JSON"):
        SonaEngine.load_state(_raw_state(b"{not json"))
    with pytest.raises(ValueError, match="state header is not valid JSON"):
        SonaEngine.load_state(_raw_state(b"\xff\xfe"))


@pytest.mark.parametrize("header", [
    pytest.param({"kind": ENGINE_KIND, "meta": {}}, id="no arrays"),
    pytest.param({"kind": ENGINE_KIND, "arrays": []}, id="no meta"),
    pytest.param({"kind": ENGINE_KIND, "meta": [], "arrays": []}, id="meta not a dict"),
    pytest.param({"kind": ENGINE_KIND, "meta": {}, "arrays": "x"}, id="arrays not a list"),
    pytest.param([ENGINE_KIND], id="list"),
    pytest.param("text", id="string"),
])
def test_load_rejects_malformed_header(header):
    message = "state header is malformed: it needs a 'kind', a 'meta' object and an 'arrays' list"
    with pytest.raises(ValueError, match=re.escape(message)):
        SonaEngine.load_state(_raw_state(header))


def _entry(**changes) -> dict:
    return {"name": "x", "dtype": "<f4", "shape": [2], "offset": 0, "nbytes": 8, **changes}


def _state_with_entry(entry, data: bytes = bytes(8)) -> bytes:
    return _raw_state({"kind": ENGINE_KIND, "meta": {}, "arrays": [entry]}, data)


@pytest.mark.parametrize("entry", [
    pytest.param({"name": "x"}, id="no dtype"),
    pytest.param("x", id="string"),
    pytest.param(None, id="null"),
])
def test_load_rejects_malformed_entry(entry):
    with pytest.raises(ValueError, match="state array entry .* is malformed: it needs name, dtype, shape, offset and nbytes"):
        SonaEngine.load_state(_state_with_entry(entry))


def test_load_rejects_entry_name():
    with pytest.raises(ValueError, match=re.escape("state array entry has a non-string name ['x']")):
        SonaEngine.load_state(_state_with_entry(_entry(name=["x"])))


@pytest.mark.parametrize("changes", [
    pytest.param({"offset": -4}, id="negative offset"),
    pytest.param({"nbytes": 8.0}, id="float size"),
    pytest.param({"shape": [-2]}, id="negative shape"),
    pytest.param({"shape": 2}, id="shape not a list"),
])
def test_load_rejects_entry_numbers(changes):
    with pytest.raises(ValueError, match="state array 'x' has a negative or non-integer offset, size or shape"):
        SonaEngine.load_state(_state_with_entry(_entry(**changes)))


def test_load_rejects_unsupported_dtype(engine_state):
    def edit(meta, arrays):
        arrays["model/heads/b"] = arrays["model/heads/b"].astype(np.complex64)

    with pytest.raises(ValueError, match="state array 'model/heads/b' has unsupported dtype '<c8'"):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


@pytest.mark.parametrize("dtype", ["|O", "<c8", ">f4", ["<f4"]])
def test_load_rejects_entry_dtype(dtype):
    with pytest.raises(ValueError, match=re.escape(f"state array 'x' has unsupported dtype {dtype!r}")):
        SonaEngine.load_state(_state_with_entry(_entry(dtype=dtype)))


def test_load_rejects_array_past_end():
    with pytest.raises(ValueError, match="state array 'x' runs past the end of the data"):
        SonaEngine.load_state(_state_with_entry(_entry(shape=[4], nbytes=16)))


def test_load_rejects_shape_disagreeing_with_bytes():
    message = "state array 'x' has 8 bytes, but shape (3,) of <f4 needs 12"
    with pytest.raises(ValueError, match=re.escape(message)):
        SonaEngine.load_state(_state_with_entry(_entry(shape=[3])))


def test_load_reads_hand_made_array():
    # The container reader on its own: a well-formed hand-made entry comes back as written.
    data = np.array([1.5, -2.0], dtype="<f4").tobytes()
    meta, arrays = unpack(_state_with_entry(_entry(), data), ENGINE_KIND)
    assert meta == {}
    assert_array_equal(arrays["x"], [1.5, -2.0])


@pytest.mark.parametrize("name", ["model/micro/lora_A", "model/heads/W", "buffer/counters", "bank/centroids", "detector/scalars"])
def test_load_rejects_missing_array(engine_state, name):
    def edit(meta, arrays):
        del arrays[name]

    # The message names the key within its group (e.g. 'counters' for buffer/counters).
    prefix, leaf = name.split("/", 1)
    match = f"state is incomplete or inconsistent: missing or malformed '({prefix}/)?{leaf}'"
    with pytest.raises(ValueError, match=match):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


@pytest.mark.parametrize("key", ["config", "routes", "counters", "rng", "bank", "ewc_tasks", "next_id"])
def test_load_rejects_missing_meta(engine_state, key):
    def edit(meta, arrays):
        del meta[key]

    with pytest.raises(ValueError, match=f"state is incomplete or inconsistent: missing or malformed '{key}'"):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


def test_load_rejects_adapter_shape(engine_state):
    def edit(meta, arrays):
        arrays["model/micro/lora_A"] = np.zeros((3, 8), dtype=np.float32)

    message = "state is incomplete or inconsistent: array model/micro/lora_A has shape (3, 8), the config implies (2, 8)"
    with pytest.raises(ValueError, match=re.escape(message)):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


def test_load_rejects_head_shape(engine_state):
    def edit(meta, arrays):
        arrays["model/heads/W"] = np.zeros((len(arrays["model/heads/b"]), 5))

    with pytest.raises(ValueError, match=re.escape("state is incomplete or inconsistent: array model/heads/W has shape")):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


def test_load_rejects_buffer_shape(engine_state):
    def edit(meta, arrays):
        arrays["buffer/quality"] = np.zeros(3, dtype=np.float32)

    with pytest.raises(ValueError, match="state is incomplete or inconsistent"):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


def test_load_rejects_invalid_config(engine_state):
    def edit(meta, arrays):
        meta["config"]["hidden_dim"] = 1

    message = r"state is incomplete or inconsistent: hidden_dim must be in \[\d+, 8192\], got 1"
    with pytest.raises(ValueError, match=message):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


def test_load_rejects_unknown_config_field(engine_state):
    def edit(meta, arrays):
        meta["config"]["turbo"] = True

    with pytest.raises(ValueError, match=r"state is incomplete or inconsistent: missing or malformed .*turbo"):
        SonaEngine.load_state(_repacked(engine_state, ENGINE_KIND, edit))


def test_router_rejects_statistics_shape(router_state):
    def edit(meta, arrays):
        arrays["count"] = np.zeros(2)

    with pytest.raises(ValueError, match=re.escape("array count has shape (2,), expected (3,)")):
        AdaptiveRouter.load_state(_repacked(router_state, ROUTER_KIND, edit))


def test_router_rejects_prior_shape(router_state):
    def edit(meta, arrays):
        arrays["prior_b"] = arrays["prior_b"][:, :-1]

    with pytest.raises(ValueError, match=re.escape("array prior_b has shape (3, 8), expected (3, 9)")):
        AdaptiveRouter.load_state(_repacked(router_state, ROUTER_KIND, edit))


@pytest.mark.parametrize("key", ["models", "outcomes", "rng", "learn_every", "ridge", "linear_prior"])
def test_router_rejects_missing_meta(router_state, key):
    def edit(meta, arrays):
        del meta[key]

    message = f"router state is incomplete or inconsistent: missing or malformed '{key}'"
    with pytest.raises(ValueError, match=message):
        AdaptiveRouter.load_state(_repacked(router_state, ROUTER_KIND, edit))


@pytest.mark.parametrize("key", ["engine", "prior_a_inv"])
def test_router_rejects_missing_array(router_state, key):
    def edit(meta, arrays):
        del arrays[key]

    with pytest.raises(ValueError, match=f"router state is incomplete or inconsistent: missing or malformed '{key}'"):
        AdaptiveRouter.load_state(_repacked(router_state, ROUTER_KIND, edit))


def test_router_rejects_damaged_engine(router_state):
    def edit(meta, arrays):
        engine_bytes = arrays["engine"].copy()
        engine_bytes[len(engine_bytes) // 2] ^= 0x01
        arrays["engine"] = engine_bytes

    with pytest.raises(ValueError, match="state is corrupted or truncated: its SHA-256 checksum does not match"):
        AdaptiveRouter.load_state(_repacked(router_state, ROUTER_KIND, edit))


def test_router_rejects_invalid_options(router_state):
    def edit(meta, arrays):
        meta["n_patterns"] = 0

    with pytest.raises(ValueError, match=re.escape("n_patterns must be an int in [1, 64], got 0")):
        AdaptiveRouter.load_state(_repacked(router_state, ROUTER_KIND, edit))


# No pickle ----------------------------------------------------------------------------

UNSAFE_LOADERS = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
    r"|allow_pickle\s*=\s*True|\bpickle\.loads?\(",
    re.MULTILINE,
)


def test_package_uses_no_pickle():
    sources = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(sources) > 10
    offenders = [str(path.relative_to(PACKAGE_DIR)) for path in sources if UNSAFE_LOADERS.search(path.read_text())]
    assert offenders == []


def test_load_never_calls_pickle(monkeypatch, engine_state, router_state):
    def fail_if_called(*args, **kwargs):
        raise AssertionError("pickle used while loading a state")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, fail_if_called)
    monkeypatch.setattr(np, "load", fail_if_called)
    SonaEngine.load_state(engine_state)
    AdaptiveRouter.load_state(router_state)
