"""Conversion between a SonaEngine and the bytes of :mod:`sona_web.state`.

Kept apart from the engine so that the list of what is saved sits in one
place: a field added to the engine and forgotten here breaks the round-trip
test, which compares a restored engine's outputs with the original's.
"""

from __future__ import annotations

import numpy as np

from . import state as state_format
from .config import SonaConfig

__all__ = ["engine_from_state", "engine_to_state", "split_prefix"]

KIND = "sona_web.SonaEngine"


def engine_to_state(engine) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    _put(arrays, "model", engine._model.state())
    _put(arrays, "ewc", engine._ewc.state())
    _put(arrays, "detector", engine._detector.state())
    _put(arrays, "buffer", engine._buffer.state())
    bank_arrays, bank_meta = engine._bank.state()
    _put(arrays, "bank", bank_arrays)
    if engine._projection is not None:
        arrays["projection"] = engine._projection
    pending = _pending_arrays(engine._pending, engine.config.hidden_dim)
    _put(arrays, "pending", pending)

    meta = {
        "config": engine.config.to_dict(),
        "routes": engine._routes,
        "contexts": engine._contexts,
        "counters": engine._counters,
        "baseline": engine._baseline,
        "next_id": engine._next_id,
        "enabled": engine._enabled,
        "last_cycle_time": engine._last_cycle_time,
        "last_cycle_ms": engine._last_cycle_ms,
        "attention_entropy": engine._attention_entropy,
        "expired": engine._active.expired,
        "ewc_tasks": engine._ewc.tasks,
        "rng": engine._rng.bit_generator.state,
        "bank": bank_meta,
    }
    return state_format.pack(KIND, meta, arrays)


def engine_from_state(cls, data, clock):
    meta, arrays = state_format.unpack(data, KIND)
    try:
        return _restore(cls, meta, arrays, clock)
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(f"state is incomplete or inconsistent: missing or malformed {error}") from None
    except ValueError as error:
        raise ValueError(f"state is incomplete or inconsistent: {error}") from None


def _restore(cls, meta, arrays, clock):
    config = SonaConfig.from_dict(meta["config"])
    engine = cls.with_config(config, clock=clock)
    _check_shapes(engine, arrays)

    engine._model.load(split_prefix(arrays, "model"))
    engine._ewc.load(split_prefix(arrays, "ewc"), int(meta["ewc_tasks"]))
    engine._detector.load(split_prefix(arrays, "detector"))
    engine._buffer.load(split_prefix(arrays, "buffer"))
    engine._bank.load(split_prefix(arrays, "bank"), meta["bank"])
    if "projection" in arrays:
        engine._projection = arrays["projection"].astype(np.float32)
    engine._pending = _pending_rows(split_prefix(arrays, "pending"))

    engine._routes = list(meta["routes"])
    engine._route_index = {route: i for i, route in enumerate(engine._routes)}
    engine._contexts = list(meta["contexts"])
    engine._context_index = {context: i for i, context in enumerate(engine._contexts)}
    engine._counters = {key: int(value) for key, value in meta["counters"].items()}
    engine._baseline = float(meta["baseline"])
    engine._next_id = int(meta["next_id"])
    engine._enabled = bool(meta["enabled"])
    engine._last_cycle_time = float(meta["last_cycle_time"])
    engine._last_cycle_ms = float(meta["last_cycle_ms"])
    engine._attention_entropy = float(meta["attention_entropy"])
    engine._active.expired = int(meta["expired"])
    engine._rng.bit_generator.state = meta["rng"]
    return engine


def _check_shapes(engine, arrays) -> None:
    fresh = engine._model.state()
    for name, value in fresh.items():
        stored = arrays[f"model/{name}"]
        if name.startswith("heads"):
            continue
        if stored.shape != value.shape:
            raise ValueError(f"array model/{name} has shape {stored.shape}, the config implies {value.shape}")
    n_routes = arrays["model/heads/b"].shape[0]
    if arrays["model/heads/W"].shape != (n_routes, engine.config.hidden_dim):
        raise ValueError(f"array model/heads/W has shape {arrays['model/heads/W'].shape}")


def _put(arrays: dict, prefix: str, group: dict) -> None:
    for name, value in group.items():
        arrays[f"{prefix}/{name}"] = value


def split_prefix(arrays: dict, prefix: str) -> dict:
    start = len(prefix) + 1
    return {key[start:]: value for key, value in arrays.items() if key.startswith(prefix + "/")}


def _pending_arrays(pending: list[tuple], dim: int) -> dict:
    count = len(pending)
    targets = np.zeros((count, dim), dtype=np.float32)
    has_target = np.zeros(count, dtype=bool)
    for i, row in enumerate(pending):
        if row[3] is not None:
            targets[i] = row[3]
            has_target[i] = True
    return {
        "x": np.array([row[0] for row in pending], dtype=np.float32).reshape(count, dim),
        "route": np.array([row[1] for row in pending], dtype=np.int64),
        "quality": np.array([row[2] for row in pending], dtype=np.float64),
        "advantage": np.array([row[4] for row in pending], dtype=np.float64),
        "target": targets,
        "has_target": has_target,
    }


def _pending_rows(arrays: dict) -> list[tuple]:
    rows = []
    for i in range(len(arrays["route"])):
        target = arrays["target"][i] if arrays["has_target"][i] else None
        rows.append((arrays["x"][i], int(arrays["route"][i]), float(arrays["quality"][i]), target, float(arrays["advantage"][i])))
    return rows
