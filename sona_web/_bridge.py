"""Entry points that the JavaScript bridge (web/host.js) calls inside Pyodide.

Engines and routers stay in Python, in a table of integer handles, so the page
never keeps a long-lived proxy of them. Every entry point returns a plain
envelope, ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": {...}}``,
whose values are made only of dict, list, str, int, float, bool, None, bytes
and 1-D float32 ``memoryview``. Pyodide's ``toJs`` turns a buffer into a
freshly copied typed array, so results cross into JavaScript with one copy
out of the Wasm heap and can then be transferred between threads.

Arguments from JavaScript arrive as Python primitives or as ``JsProxy``
objects. A proxy is recognised by its ``to_py`` method (which turns a typed
array into a memoryview and an object into a dict) instead of by importing
``pyodide``, so the module also runs, and is tested, in CPython with bytes,
memoryviews and lists.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
import re
import traceback
from typing import Any, Callable

import numpy as np

from . import AdaptiveRouter, SonaEngine
from .config import PRESETS, SonaConfig

__all__ = [
    "as_bytes",
    "as_float32",
    "build_config",
    "create_engine",
    "create_router",
    "embed",
    "error_info",
    "invoke",
    "memory_info",
    "release",
    "to_plain",
]

_LOG = logging.getLogger("sona_web")

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")

# Exceptions that mean "the caller passed bad input". Others are bugs and are
# logged with their traceback before they are sent to the page.
_INPUT_ERRORS = (ValueError, TypeError, KeyError)


# ---------------------------------------------------------------- conversion


def _unwrap_js(value: Any) -> Any:
    """Turn a JsProxy into a Python value: a typed array into a memoryview, others by ``to_py``."""
    if hasattr(value, "to_py"):
        return value.to_py()
    return value


# memoryview formats of JavaScript typed arrays that numpy can read directly.
_BUFFER_DTYPES = {"f": np.float32, "d": np.float64, "e": np.float16}


def as_float32(value: Any, name: str = "x") -> np.ndarray:
    """Convert a vector argument to a float32 ndarray.

    Accepts an ndarray, a list or tuple of numbers, a typed array from
    JavaScript, a memoryview with a numeric format, or bytes holding
    little-endian float32 values. Shape checks are left to the engine, which
    names the expected dimension in its message.

    Raises ``TypeError`` for a str, None, a mapping or a non-numeric sequence,
    and ``ValueError`` for a byte string whose length is not a multiple of 4.
    """
    value = _unwrap_js(value)

    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)

    if isinstance(value, (bytes, bytearray)) or (
        isinstance(value, memoryview) and value.format in ("B", "b", "c")
    ):
        raw = memoryview(value).cast("B")
        if raw.nbytes % 4:
            raise ValueError(
                f"{name} as raw bytes must hold float32 values (a multiple of 4 bytes), "
                f"got {raw.nbytes} bytes"
            )
        return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False)

    if isinstance(value, memoryview):
        # np.frombuffer with a known dtype is several times faster in Pyodide
        # than np.asarray, which parses the buffer's format string.
        dtype = _BUFFER_DTYPES.get(value.format)
        array = np.asarray(value) if dtype is None or value.ndim != 1 else np.frombuffer(value, dtype)
        return array.astype(np.float32, copy=False)

    if isinstance(value, (str, dict)) or value is None or not hasattr(value, "__len__"):
        raise TypeError(
            f"{name} must be a Float32Array or a sequence of numbers, got {type(value).__name__}"
        )
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a sequence of numbers, got {_preview(value)} ({exc})"
        ) from None


def _as_batch(value: Any, count: Any, name: str = "x") -> np.ndarray:
    """Reshape a flat vector argument into ``count`` rows."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"n must be a positive int (the number of vectors), got {count!r}")

    flat = as_float32(value, name).reshape(-1)
    if flat.size % count:
        raise ValueError(
            f"{name} has {flat.size} values, which is not a multiple of n={count}"
        )
    return flat.reshape(count, flat.size // count)


def as_bytes(value: Any, name: str = "data") -> bytes:
    """Convert a binary argument (Uint8Array, bytes, bytearray, memoryview) to bytes.

    Raises ``TypeError`` for anything else, such as a str or a list.
    """
    if hasattr(value, "to_bytes") and not isinstance(value, int):
        return value.to_bytes()
    value = _unwrap_js(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be a Uint8Array or bytes, got {type(value).__name__}")


def _plain_argument(value: Any) -> Any:
    return _unwrap_js(value)


def to_plain(value: Any) -> Any:
    """Convert an engine result to the types that the envelope allows.

    Float arrays become flat float32 memoryviews (a ``(n, d)`` batch becomes
    ``n * d`` values in row order), other arrays become lists, numpy scalars
    become Python numbers, tuples become lists and dataclass instances (such
    as ``RouteDecision``) become dicts of their fields.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return value.tolist()
        if value.dtype != np.float32 or value.ndim != 1 or not value.flags.c_contiguous:
            value = np.ascontiguousarray(value, dtype=np.float32).reshape(-1)
        return memoryview(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Field by field rather than through to_dict(), which turns arrays
        # into lists; here they become Float32Array on the page.
        return {item.name: to_plain(getattr(value, item.name)) for item in dataclasses.fields(value)}
    return value


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- errors


def error_info(exc: BaseException) -> dict[str, str]:
    """Describe ``exc`` as ``{name, message, pythonType, stack}`` for the page.

    ``message`` is the text the exception was raised with. A ``KeyError``'s
    ``str()`` adds quotes around it, so its single argument is used instead.
    """
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        message = exc.args[0]
    else:
        message = str(exc)
    return {
        "name": "PythonError",
        "message": message,
        "pythonType": type(exc).__name__,
        "stack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _envelope(function: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Run ``function`` and wrap its plain result or its exception."""
    try:
        return {"ok": True, "value": to_plain(function(*args))}
    except Exception as exc:  # every failure must reach the page as a rejected promise
        if isinstance(exc, _INPUT_ERRORS):
            _LOG.debug("bridge call rejected: %s: %s", type(exc).__name__, exc)
        else:
            _LOG.error("bridge call failed", exc_info=exc)
        return {"ok": False, "error": error_info(exc)}


# ---------------------------------------------------------------- handles


class _Registry:
    """Engines and routers created from JavaScript, by integer handle."""

    def __init__(self) -> None:
        self._objects: dict[int, Any] = {}
        self._kinds: dict[int, str] = {}
        self._counter = itertools.count(1)

    def add(self, kind: str, obj: Any) -> int:
        handle = next(self._counter)
        self._objects[handle] = obj
        self._kinds[handle] = kind
        return handle

    def get(self, handle: Any) -> tuple[str, Any]:
        if handle not in self._objects:
            raise KeyError(f"unknown handle {handle!r}: the engine or router was closed or never created")
        return self._kinds[handle], self._objects[handle]

    def replace(self, handle: int, obj: Any) -> None:
        self.get(handle)
        self._objects[handle] = obj

    def remove(self, handle: Any) -> bool:
        self._kinds.pop(handle, None)
        return self._objects.pop(handle, None) is not None

    def __len__(self) -> int:
        return len(self._objects)


_REGISTRY = _Registry()

# Embedders by output dimension, shared by all engines because the hashed
# embedder is stateless apart from its hash cache.
_EMBEDDERS: dict[int, Any] = {}


# ---------------------------------------------------------------- config


def _snake_case(key: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", key).lower()


def build_config(options: Any) -> SonaConfig:
    """Build a validated ``SonaConfig`` from page options.

    ``options`` maps config field names, in camelCase (``hiddenDim``) or
    snake_case (``hidden_dim``), to values, plus an optional ``preset`` name
    (default ``"default"``). Raises ``TypeError`` if ``options`` is not a
    mapping, ``KeyError`` for an unknown field, ``ValueError`` when one field
    is given in both spellings or the preset is unknown, and whatever
    ``SonaConfig.validate`` raises for a bad value.
    """
    options = _unwrap_js(options)
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be an object of config fields, got {type(options).__name__}")

    fields = {item.name for item in dataclasses.fields(SonaConfig)}
    preset = "default"
    overrides: dict[str, Any] = {}
    for key, value in options.items():
        if key == "preset":
            preset = value
            continue
        name = _snake_case(str(key))
        if name not in fields:
            raise KeyError(f"unknown config option {key!r}; valid fields are {sorted(fields)}")
        if name in overrides:
            raise ValueError(f"config field {name!r} is given twice (camelCase and snake_case)")
        overrides[name] = value

    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return SonaConfig.preset(preset, **overrides)


# ---------------------------------------------------------------- methods

# Argument converters per public method. Methods not listed here cannot be
# called from the page, which keeps attributes such as ``__class__`` out of
# reach. Trailing optional arguments may be omitted.
_VECTOR = as_float32
_PLAIN = _plain_argument

_ENGINE_METHODS: dict[str, tuple[Callable[[Any], Any], ...]] = {
    "begin_trajectory": (_VECTOR,),
    "add_trajectory_step": (_PLAIN, _VECTOR, _VECTOR, _PLAIN),
    "add_step": (_PLAIN, _VECTOR, _VECTOR, _PLAIN),
    "set_trajectory_route": (_PLAIN, _PLAIN),
    "add_trajectory_context": (_PLAIN, _PLAIN),
    "end_trajectory": (_PLAIN, _PLAIN),
    "apply_micro_lora": (_VECTOR,),
    "apply_base_lora": (_PLAIN, _VECTOR),
    "tick": (),
    "force_learn": (),
    "flush": (),
    "find_patterns": (_VECTOR, _PLAIN),
    "transform": (_VECTOR,),
    "predict_quality": (_VECTOR,),
    "get_stats": (),
    "stats": (),
    "set_enabled": (_PLAIN,),
    "is_enabled": (),
    "save_state": (),
}

_ROUTER_METHODS: dict[str, tuple[Callable[[Any], Any], ...]] = {
    "route": (_VECTOR,),
    "record_outcome": (_VECTOR, _PLAIN, _PLAIN, _PLAIN),
    "tick": (),
    "decisions": (),
    "save_state": (),
    "stats": (),
}


def _call_method(handle: Any, method: Any, arguments: tuple) -> Any:
    kind, target = _REGISTRY.get(handle)

    special = _SPECIAL_METHODS.get((kind, method))
    if special is not None:
        return special(handle, target, *arguments)

    table = _ENGINE_METHODS if kind == "engine" else _ROUTER_METHODS
    converters = table.get(method)
    if converters is None:
        raise KeyError(f"unknown {kind} method {method!r}; callable methods are {sorted(table)}")
    if len(arguments) > len(converters):
        raise TypeError(
            f"{method}() takes at most {len(converters)} arguments, got {len(arguments)}"
        )

    converted = [convert(value) for convert, value in zip(converters, arguments)]
    return getattr(target, method)(*converted)


def _apply_micro_lora_batch(handle: int, engine: Any, data: Any, count: Any) -> Any:
    return engine.apply_micro_lora(_as_batch(data, count, "data"))


def _apply_base_lora_batch(handle: int, engine: Any, layer: Any, data: Any, count: Any) -> Any:
    return engine.apply_base_lora(layer, _as_batch(data, count, "data"))


def _load_engine_state(handle: int, engine: Any, data: Any) -> dict[str, Any]:
    restored = SonaEngine.load_state(as_bytes(data))
    _REGISTRY.replace(handle, restored)
    return restored.config.to_dict()


def _load_router_state(handle: int, router: Any, data: Any) -> None:
    _REGISTRY.replace(handle, AdaptiveRouter.load_state(as_bytes(data)))


def _engine_config(handle: int, engine: Any) -> dict[str, Any]:
    return engine.config.to_dict()


def _engine_routes(handle: int, engine: Any) -> list[str]:
    return list(engine.routes)


def _embed(handle: int, engine: Any, texts: Any) -> np.ndarray:
    # Imported here so that a page that never embeds text skips the module.
    from .embedders import get_embedder

    dim = engine.config.embedding_dim
    if dim not in _EMBEDDERS:
        _EMBEDDERS[dim] = get_embedder("hashed", dim=dim)
    return _EMBEDDERS[dim].embed(_unwrap_js(texts))


_SPECIAL_METHODS: dict[tuple[str, str], Callable[..., Any]] = {
    ("engine", "apply_micro_lora_batch"): _apply_micro_lora_batch,
    ("engine", "apply_base_lora_batch"): _apply_base_lora_batch,
    ("engine", "load_state"): _load_engine_state,
    ("engine", "config"): _engine_config,
    ("engine", "routes"): _engine_routes,
    ("engine", "embed"): _embed,
    ("router", "load_state"): _load_router_state,
}


def _create_engine(options: Any, state: Any = None) -> dict[str, Any]:
    if state is not None:
        engine = SonaEngine.load_state(as_bytes(state, "state"))
    else:
        engine = SonaEngine.with_config(build_config(options))
    return {"handle": _REGISTRY.add("engine", engine), "config": engine.config.to_dict()}


# AdaptiveRouter keyword arguments that are not SonaConfig fields.
_ROUTER_OPTIONS = ("seed", "cost_weight", "exploration", "n_patterns", "learn_every", "ridge", "linear_prior")


def _create_router(models: Any, options: Any, state: Any = None) -> dict[str, Any]:
    if state is not None:
        router = AdaptiveRouter.load_state(as_bytes(state, "state"))
        return {"handle": _REGISTRY.add("router", router)}

    options = _unwrap_js(options) or {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be an object, got {type(options).__name__}")

    router_kwargs: dict[str, Any] = {}
    config_options: dict[str, Any] = {}
    for key, value in options.items():
        name = _snake_case(str(key))
        if name in _ROUTER_OPTIONS:
            router_kwargs[name] = value
        else:
            config_options[key] = value

    config = build_config(config_options) if config_options else None
    router = AdaptiveRouter(_unwrap_js(models), config=config, **router_kwargs)
    return {"handle": _REGISTRY.add("router", router)}


# ---------------------------------------------------------------- entry points


def create_engine(options: Any = None, state: Any = None) -> dict[str, Any]:
    """Create an engine from config ``options``, or restore it from ``state`` bytes.

    The envelope's value is ``{"handle": int, "config": dict}``.
    """
    return _envelope(_create_engine, options, state)


def create_router(models: Any, options: Any = None, state: Any = None) -> dict[str, Any]:
    """Create an ``AdaptiveRouter`` over ``models``, or restore it from ``state`` bytes.

    ``options`` may contain the router's keyword arguments (``seed``,
    ``cost_weight``, ``exploration``, ``n_patterns``, ``learn_every``,
    ``ridge``, ``linear_prior``, in either spelling) and config fields (as in :func:`build_config`). Without
    config fields the router uses ``SonaConfig.default()``.
    """
    return _envelope(_create_router, models, options, state)


def invoke(handle: Any, method: Any, *args: Any) -> dict[str, Any]:
    """Call ``method`` of the engine or router behind ``handle`` with ``args``.

    The arguments come one by one rather than as a list: converting a
    JavaScript array costs several times more than the engine call itself
    in Pyodide, while separate arguments cross almost for free.
    """
    return _envelope(_call_method, handle, method, args)


def embed(handle: Any, texts: Any) -> dict[str, Any]:
    """Embed ``texts`` with the hashed embedder at the engine's ``embedding_dim``.

    The value is ``n * embedding_dim`` float32 values for ``n`` texts.
    """
    return invoke(handle, "embed", texts)


def release(handle: Any) -> dict[str, Any]:
    """Drop the object behind ``handle``; the value is whether it existed."""
    return _envelope(_REGISTRY.remove, handle)


def memory_info() -> dict[str, Any]:
    """Count live Python objects (after a full collection) and open handles."""
    def collect() -> dict[str, int]:
        gc.collect()
        return {"pythonObjects": len(gc.get_objects()), "handles": len(_REGISTRY)}

    return _envelope(collect)
