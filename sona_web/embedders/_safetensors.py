"""Read and write the safetensors format with numpy alone.

A safetensors file starts with an 8-byte little-endian header length ``N``.
Then ``N`` bytes of JSON map each tensor name to its ``dtype``, ``shape`` and
``data_offsets`` (start and end, relative to the end of the header). The raw
little-endian tensor data follows. An optional ``__metadata__`` entry maps str to
str. The format is specified by the safetensors project (Hugging Face).
"""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["load_safetensors", "save_safetensors"]

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}

# Headers of real model files are a few kB; the cap stops a corrupt length
# field from making the parser copy the whole buffer as JSON.
_MAX_HEADER_BYTES = 100_000_000


def load_safetensors(data) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes into ``(tensors, metadata)``.

    ``data`` is bytes, a bytearray or a memoryview. The arrays are read-only
    views into ``data`` (no copy), in the stored dtype and shape.
    Raises ``ValueError`` for a truncated or malformed file or an unsupported
    dtype (bfloat16 and booleans are not supported).
    """
    view = memoryview(data).cast("B")
    if len(view) < 8:
        raise ValueError(f"safetensors data too short: {len(view)} bytes, need at least 8")

    header_bytes = int.from_bytes(view[:8], "little")
    if header_bytes > min(len(view) - 8, _MAX_HEADER_BYTES):
        raise ValueError(
            f"invalid safetensors header length {header_bytes} for {len(view)} bytes of data"
        )
    try:
        header = json.loads(bytes(view[8 : 8 + header_bytes]))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"invalid safetensors header JSON: {error}") from None
    if not isinstance(header, dict):
        raise ValueError("invalid safetensors header: expected a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    base = 8 + header_bytes
    tensors = {
        name: _read_tensor(view, base, name, entry) for name, entry in header.items()
    }
    return tensors, dict(metadata)


def _read_tensor(view: memoryview, base: int, name: str, entry) -> np.ndarray:
    try:
        dtype = _DTYPES[entry["dtype"]]
        shape = tuple(int(n) for n in entry["shape"])
        start, end = (int(n) for n in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"invalid or unsupported safetensors entry for tensor {name!r}: {entry!r:.200}"
        ) from None

    count = math.prod(shape)
    if end - start != count * dtype.itemsize or start < 0 or base + end > len(view):
        raise ValueError(
            f"tensor {name!r}: data_offsets {[start, end]} do not fit shape {list(shape)} "
            f"of {entry['dtype']} in {len(view) - base} bytes of data"
        )
    return np.frombuffer(view, dtype=dtype, count=count, offset=base + start).reshape(shape)


def save_safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """Serialise ``tensors`` (name to array) and str ``metadata`` to safetensors bytes.

    Tensors are stored in name order, each at an offset aligned to 8 bytes.
    Raises ``ValueError`` for a dtype that :func:`load_safetensors` cannot read.
    """
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}

    chunks = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _NAMES:
            raise ValueError(f"tensor {name!r}: unsupported dtype {array.dtype}")
        raw = array.astype(dtype, copy=False).tobytes()
        padding = -len(raw) % 8
        header[name] = {
            "dtype": _NAMES[dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw + b"\0" * padding)
        offset += len(raw) + padding

    header_json = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Spaces after the JSON are allowed and align the data section to 8 bytes.
    header_json += b" " * (-len(header_json) % 8)
    return len(header_json).to_bytes(8, "little") + header_json + b"".join(chunks)
