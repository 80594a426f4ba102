"""sona_web._bridge in CPython: conversions, envelopes, handles and config mapping.

The same module runs inside Pyodide behind web/host.js; the Node and
Chromium tests (tests/node, tests/browser) cover that path end to end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sona_web import SonaConfig, _bridge


class FakeJsProxy:
    """Stands in for Pyodide's JsProxy, which converts through ``to_py``."""

    def __init__(self, value):
        self._value = value

    def to_py(self, depth: int = -1):
        return self._value


class FakeTypedArray(FakeJsProxy):
    """A Float32Array or Uint8Array proxy: ``to_py`` gives a memoryview, ``to_bytes`` bytes."""

    def __init__(self, array: np.ndarray):
        super().__init__(memoryview(array))
        self._array = array

    def to_bytes(self) -> bytes:
        return self._array.tobytes()


def value_of(envelope: dict):
    assert envelope["ok"], envelope.get("error")
    return envelope["value"]


def error_of(envelope: dict) -> dict:
    assert not envelope["ok"], f"expected an error, got value {envelope.get('value')!r}"
    return envelope["error"]


@pytest.fixture
def engine_handle():
    handle = value_of(_bridge.create_engine({"hiddenDim": 8, "embedding_dim": 8, "seed": 3}))["handle"]
    yield handle
    _bridge.release(handle)


# ---------------------------------------------------------------- as_float32


@pytest.mark.parametrize(
    "value",
    [
        [1.0, 2.0, 3.0],
        (1, 2, 3),
        np.array([1, 2, 3], dtype=np.float64),
        memoryview(np.array([1, 2, 3], dtype=np.float32)),
        memoryview(np.array([1, 2, 3], dtype=np.float64)),
        np.array([1, 2, 3], dtype="<f4").tobytes(),
        bytearray(np.array([1, 2, 3], dtype="<f4").tobytes()),
        FakeTypedArray(np.array([1, 2, 3], dtype=np.float32)),
        FakeJsProxy([1, 2, 3]),
    ],
    ids=["list", "tuple", "float64", "memoryview-f", "memoryview-d", "bytes", "bytearray", "typed-array", "js-array"],
)
def test_as_float32_accepts(value):
    array = _bridge.as_float32(value)
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, [1.0, 2.0, 3.0])


def test_as_float32_keeps_float32_array():
    array = np.arange(4, dtype=np.float32)
    assert _bridge.as_float32(array) is array


def test_as_float32_rejects_partial_float():
    with pytest.raises(ValueError, match=r"x as raw bytes must hold float32 values .* got 5 bytes"):
        _bridge.as_float32(b"12345")


@pytest.mark.parametrize("value", ["1,2,3", {"a": 1}, None, 3.5], ids=["str", "dict", "none", "scalar"])
def test_as_float32_rejects_non_sequences(value):
    with pytest.raises(TypeError, match=r"query_embedding must be a Float32Array or a sequence of numbers, got"):
        _bridge.as_float32(value, "query_embedding")


def test_as_float32_rejects_non_numeric_items():
    with pytest.raises(TypeError, match=r"x must be a sequence of numbers, got \[1, 'two'\]"):
        _bridge.as_float32([1, "two"])


# ---------------------------------------------------------------- batches


def test_batch_reshapes_flat_data():
    batch = _bridge._as_batch(np.arange(6, dtype=np.float32), 2, "data")
    assert batch.shape == (2, 3)
    np.testing.assert_array_equal(batch[1], [3, 4, 5])


@pytest.mark.parametrize("count", [0, -1, 1.5, True, "2"])
def test_batch_rejects_bad_count(count):
    with pytest.raises(ValueError, match=r"n must be a positive int \(the number of vectors\), got"):
        _bridge._as_batch(np.zeros(4, dtype=np.float32), count)


def test_batch_rejects_uneven_data():
    with pytest.raises(ValueError, match=r"data has 5 values, which is not a multiple of n=2"):
        _bridge._as_batch(np.zeros(5, dtype=np.float32), 2, "data")


# ---------------------------------------------------------------- as_bytes


@pytest.mark.parametrize(
    "value",
    [b"abc", bytearray(b"abc"), memoryview(b"abc"), FakeTypedArray(np.frombuffer(b"abc", dtype=np.uint8))],
    ids=["bytes", "bytearray", "memoryview", "uint8array"],
)
def test_as_bytes_accepts(value):
    assert _bridge.as_bytes(value) == b"abc"


@pytest.mark.parametrize("value", ["abc", [1, 2], 7, None], ids=["str", "list", "int", "none"])
def test_as_bytes_rejects(value):
    with pytest.raises(TypeError, match=r"state must be a Uint8Array or bytes, got"):
        _bridge.as_bytes(value, "state")


# ---------------------------------------------------------------- to_plain and errors


def test_to_plain_converts_nested_results():
    @dataclasses.dataclass
    class Decision:
        model: str
        scores: np.ndarray

    plain = _bridge.to_plain(
        {
            "matrix": np.ones((2, 3), dtype=np.float64),
            "ints": np.array([1, 2]),
            "scalar": np.float32(0.5),
            "pair": (1, "a"),
            "raw": bytearray(b"x"),
            "decision": Decision("m", np.zeros(2, dtype=np.float32)),
            7: None,
        }
    )

    assert isinstance(plain["matrix"], memoryview)
    assert plain["matrix"].format == "f"
    assert plain["matrix"].tolist() == [1.0] * 6
    assert plain["ints"] == [1, 2]
    assert plain["scalar"] == 0.5
    assert type(plain["scalar"]) is float
    assert plain["pair"] == [1, "a"]
    assert plain["raw"] == b"x"
    assert plain["decision"]["model"] == "m"
    assert plain["decision"]["scores"].tolist() == [0.0, 0.0]
    assert plain["7"] is None


def test_key_error_message_is_unquoted():
    info = _bridge.error_info(KeyError("unknown trajectory_id 5"))
    assert info["message"] == "unknown trajectory_id 5"
    assert info["pythonType"] == "KeyError"
    assert info["name"] == "PythonError"


def test_error_info_keeps_traceback():
    try:
        raise ValueError("x must be finite")
    except ValueError as error:
        info = _bridge.error_info(error)
    assert info["message"] == "x must be finite"
    assert "Traceback" in info["stack"]
    assert "ValueError: x must be finite" in info["stack"]


def test_unexpected_error_is_logged(caplog, engine_handle, monkeypatch):
    engine = _bridge._REGISTRY.get(engine_handle)[1]

    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine, "flush", broken)
    with caplog.at_level("ERROR", logger="sona_web"):
        error = error_of(_bridge.invoke(engine_handle, "flush"))

    assert error["pythonType"] == "RuntimeError"
    assert "bridge call failed" in caplog.text


# ---------------------------------------------------------------- config


def test_build_config_maps_both_spellings():
    config = _bridge.build_config({"hiddenDim": 64, "embedding_dim": 32, "microLoraRank": 1, "enableSimd": False})
    assert config == SonaConfig.default(hidden_dim=64, embedding_dim=32, micro_lora_rank=1, enable_simd=False)


def test_build_config_applies_preset():
    config = _bridge.build_config(FakeJsProxy({"preset": "edge_deployment", "seed": 4}))
    assert config == SonaConfig.edge_deployment(seed=4)


def test_build_config_defaults():
    assert _bridge.build_config(None) == SonaConfig.default()


def test_build_config_rejects_non_mapping():
    with pytest.raises(TypeError, match=r"options must be an object of config fields, got list"):
        _bridge.build_config([1, 2])


def test_build_config_rejects_unknown_option():
    with pytest.raises(KeyError, match=r"unknown config option 'hiddenDimension'; valid fields are"):
        _bridge.build_config({"hiddenDimension": 8})


def test_build_config_rejects_both_spellings():
    with pytest.raises(ValueError, match=r"config field 'hidden_dim' is given twice"):
        _bridge.build_config({"hiddenDim": 8, "hidden_dim": 8})


@pytest.mark.parametrize("preset", ["fastest", 3])
def test_build_config_rejects_unknown_preset(preset):
    with pytest.raises(ValueError, match=r"unknown preset .*; choose one of"):
        _bridge.build_config({"preset": preset})


def test_build_config_passes_field_errors_through():
    with pytest.raises(ValueError, match=r"micro_lora_rank must be 1 or 2, got 3"):
        _bridge.build_config({"microLoraRank": 3})


# ---------------------------------------------------------------- engines through handles


def test_engine_calls_through_handle(engine_handle):
    query = (np.full(8, 0.5) / np.sqrt(2.0)).astype(np.float32)
    trajectory_id = value_of(_bridge.invoke(engine_handle, "begin_trajectory", FakeTypedArray(query)))
    value_of(_bridge.invoke(engine_handle, "add_step", trajectory_id, np.eye(8)[0], [1.0], 1.0))
    value_of(_bridge.invoke(engine_handle, "set_trajectory_route", trajectory_id, "concise"))
    assert value_of(_bridge.invoke(engine_handle, "end_trajectory", trajectory_id, 1.0)) is None

    adapted = value_of(_bridge.invoke(engine_handle, "apply_micro_lora", query.tobytes()))
    assert isinstance(adapted, memoryview)
    assert np.abs(np.asarray(adapted) - query).max() > 0
    assert value_of(_bridge.invoke(engine_handle, "stats"))["trajectories_recorded"] == 1
    assert value_of(_bridge.invoke(engine_handle, "routes")) == ["concise"]


def test_batch_matches_single_calls(engine_handle):
    rows = np.arange(16, dtype=np.float32).reshape(2, 8) / 10
    batch = np.asarray(value_of(_bridge.invoke(engine_handle, "apply_micro_lora_batch", rows.ravel(), 2)))
    single = np.asarray(value_of(_bridge.invoke(engine_handle, "apply_micro_lora", rows[1])))
    np.testing.assert_array_equal(batch[8:], single)


def test_base_lora_batch(engine_handle):
    rows = np.ones(16, dtype=np.float32)
    out = value_of(_bridge.invoke(engine_handle, "apply_base_lora_batch", 0, rows, 2))
    assert len(out) == 16


def test_engine_errors_come_back_typed(engine_handle):
    error = error_of(_bridge.invoke(engine_handle, "apply_micro_lora", np.zeros(3)))
    assert error["pythonType"] == "ValueError"
    assert error["message"] == "x must have shape (8,) or (n, 8), got (3,)"

    error = error_of(_bridge.invoke(engine_handle, "end_trajectory", 424242, 0.5))
    assert error["pythonType"] == "KeyError"
    assert error["message"].startswith("unknown trajectory_id 424242")


def test_unknown_handle_is_key_error():
    error = error_of(_bridge.invoke(10**9, "stats"))
    assert error["pythonType"] == "KeyError"
    assert error["message"] == "unknown handle 1000000000: the engine or router was closed or never created"


def test_private_attributes_are_not_callable(engine_handle):
    error = error_of(_bridge.invoke(engine_handle, "__class__"))
    assert error["pythonType"] == "KeyError"
    assert error["message"].startswith("unknown engine method '__class__'; callable methods are")


def test_too_many_arguments_is_type_error(engine_handle):
    error = error_of(_bridge.invoke(engine_handle, "stats", 1))
    assert error["pythonType"] == "TypeError"
    assert error["message"] == "stats() takes at most 0 arguments, got 1"


def test_state_round_trip_replaces_in_place(engine_handle):
    query = np.linspace(-1, 1, 8).astype(np.float32)
    trajectory_id = value_of(_bridge.invoke(engine_handle, "begin_trajectory", query))
    value_of(_bridge.invoke(engine_handle, "add_step", trajectory_id, np.eye(8)[2], [1.0], 1.0))
    value_of(_bridge.invoke(engine_handle, "end_trajectory", trajectory_id, 1.0))
    expected = np.asarray(value_of(_bridge.invoke(engine_handle, "transform", query)))
    state = value_of(_bridge.invoke(engine_handle, "save_state"))

    other = value_of(_bridge.create_engine({"hiddenDim": 8, "embeddingDim": 8}))["handle"]
    before = np.asarray(value_of(_bridge.invoke(other, "transform", query)))
    config = value_of(_bridge.invoke(other, "load_state", memoryview(state)))
    after = np.asarray(value_of(_bridge.invoke(other, "transform", query)))
    restored = value_of(_bridge.create_engine(None, FakeTypedArray(np.frombuffer(state, dtype=np.uint8))))

    assert np.abs(before - expected).max() > 0
    np.testing.assert_array_equal(after, expected)
    assert config["seed"] == 3
    assert restored["config"]["seed"] == 3
    _bridge.release(other)
    _bridge.release(restored["handle"])


def test_damaged_state_leaves_engine(engine_handle):
    error = error_of(_bridge.invoke(engine_handle, "load_state", b"\x00" * 8))
    assert error["pythonType"] == "ValueError"
    assert value_of(_bridge.invoke(engine_handle, "config"))["seed"] == 3


def test_embed_uses_embedding_dim(engine_handle):
    single = value_of(_bridge.embed(engine_handle, "hello world"))
    many = value_of(_bridge.embed(engine_handle, FakeJsProxy(["hello", "world", "again"])))
    assert len(single) == 8
    assert len(many) == 24
    error = error_of(_bridge.embed(engine_handle, 42))
    assert error["pythonType"] == "TypeError"


def test_release_and_memory_info(engine_handle):
    count = value_of(_bridge.memory_info())["handles"]
    assert value_of(_bridge.release(engine_handle)) is True
    assert value_of(_bridge.release(engine_handle)) is False
    info = value_of(_bridge.memory_info())
    assert info["handles"] == count - 1
    assert info["pythonObjects"] > 0


# ---------------------------------------------------------------- routers


MODELS = [{"name": "large", "cost": 1.0}, {"name": "small", "cost": 0.0}]


def test_router_options_split_from_config():
    handle = value_of(
        _bridge.create_router(
            MODELS,
            {"seed": 4, "costWeight": 0.3, "n_patterns": 2, "ridge": 2.5, "linearPrior": False, "hiddenDim": 8, "embeddingDim": 8},
        )
    )["handle"]
    router = _bridge._REGISTRY.get(handle)[1]

    assert router.cost_weight == 0.3
    assert router.n_patterns == 2
    assert (router.ridge, router.linear_prior) == (2.5, False)
    assert router.engine.config.hidden_dim == 8
    assert router.engine.config.seed == 4

    decision = value_of(_bridge.invoke(handle, "route", np.ones(8, dtype=np.float32) / np.sqrt(8)))
    assert decision["model"] in ("large", "small")
    assert len(decision["scores"]) == 2
    value_of(_bridge.invoke(handle, "record_outcome", np.ones(8), "small", 1.0))
    assert value_of(_bridge.invoke(handle, "stats"))["outcomes"] == 1

    state = value_of(_bridge.invoke(handle, "save_state"))
    copy = value_of(_bridge.create_router(None, None, state))["handle"]
    assert value_of(_bridge.invoke(copy, "stats"))["outcomes"] == 1
    value_of(_bridge.invoke(copy, "load_state", state))
    _bridge.release(handle)
    _bridge.release(copy)


def test_router_without_config_uses_default():
    handle = value_of(_bridge.create_router(FakeJsProxy(MODELS), {}))["handle"]
    assert _bridge._REGISTRY.get(handle)[1].engine.config == SonaConfig.default()
    _bridge.release(handle)


def test_router_rejects_non_object_options():
    error = error_of(_bridge.create_router(MODELS, [1]))
    assert error["pythonType"] == "TypeError"
    assert error["message"] == "options must be an object, got list"


def test_router_method_table_is_separate():
    handle = value_of(_bridge.create_router(MODELS, {}))["handle"]
    error = error_of(_bridge.invoke(handle, "apply_micro_lora", np.zeros(256)))
    assert error["message"].startswith("unknown router method 'apply_micro_lora'")
    _bridge.release(handle)
