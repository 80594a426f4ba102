"""A versioned, checksummed container for named numpy arrays and JSON metadata.

Layout (all integers little-endian)::

    magic    8 bytes   b"SONAWEB\\x00"
    version  uint32    FORMAT_VERSION
    length   uint64    byte length of the JSON header
    header   JSON      {"kind", "meta", "arrays": [{"name", "dtype", "shape", "offset", "nbytes"}]}
    data     bytes     the arrays' raw bytes, in header order
    digest   32 bytes  SHA-256 of everything before it

No pickle: loading parses JSON and copies raw bytes into arrays of an
allow-listed dtype, so a state file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

__all__ = ["FORMAT_VERSION", "MAGIC", "pack", "unpack"]

MAGIC = b"SONAWEB\x00"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
_DIGEST_SIZE = 32
_DTYPES = {"<f2", "<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|b1", "|u1"}


def pack(kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise ``arrays`` and JSON-compatible ``meta`` under a ``kind`` label."""
    entries = []
    chunks = []
    offset = 0
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        data = array.astype(dtype, copy=False).tobytes()
        entries.append(
            {"name": name, "dtype": dtype.str, "shape": list(array.shape), "offset": offset, "nbytes": len(data)}
        )
        chunks.append(data)
        offset += len(data)
    header = json.dumps({"kind": kind, "meta": meta, "arrays": entries}, separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def unpack(data, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse bytes written by :func:`pack`; raise ``ValueError`` saying what is wrong with them."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"state must be bytes, got {type(data).__name__}")
    if len(data) < _PREFIX.size + _DIGEST_SIZE:
        raise ValueError(f"state is truncated: {len(data)} bytes is shorter than any sona-web state")
    magic, version, header_length = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("state is not a sona-web state (wrong magic bytes); pass bytes from save_state()")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"state format version {version} is newer than this sona-web reads ({FORMAT_VERSION}); upgrade sona-web"
        )
    body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("state is corrupted or truncated: its SHA-256 checksum does not match")

    header_end = _PREFIX.size + header_length
    try:
        header = json.loads(body[_PREFIX.size : header_end])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"state header is not valid JSON: {error}") from None
    well_formed = isinstance(header, dict) and isinstance(header.get("meta"), dict)
    if not well_formed or not isinstance(header.get("arrays"), list):
        raise ValueError("state header is malformed: it needs a 'kind', a 'meta' object and an 'arrays' list")
    if header.get("kind") != kind:
        raise ValueError(f"state contains a {header.get('kind')!r}, not a {kind!r}; load it with the matching class")
    arrays = {}
    for entry in header["arrays"]:
        name, array = _read_array(body, header_end, entry)
        arrays[name] = array
    return header["meta"], arrays


def _read_array(body: bytes, start: int, entry) -> tuple[str, np.ndarray]:
    # The digest only proves the bytes are the ones written, so a hand-made
    # header is checked as carefully as any other input.
    try:
        name, dtype, shape, offset, nbytes = (entry[key] for key in ("name", "dtype", "shape", "offset", "nbytes"))
    except (KeyError, TypeError):
        raise ValueError(
            f"state array entry {entry!r} is malformed: it needs name, dtype, shape, offset and nbytes"
        ) from None
    if not isinstance(name, str):
        raise ValueError(f"state array entry has a non-string name {name!r}")
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"state array {name!r} has unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in (offset, nbytes, *shape)):
        raise ValueError(f"state array {name!r} has a negative or non-integer offset, size or shape")
    begin = start + offset
    end = begin + nbytes
    if end > len(body):
        raise ValueError(f"state array {name!r} runs past the end of the data")
    expected = np.dtype(dtype).itemsize * int(np.prod(shape))
    if nbytes != expected:
        raise ValueError(
            f"state array {name!r} has {nbytes} bytes, but shape {tuple(shape)} of {dtype} needs {expected}"
        )
    array = np.frombuffer(body[begin:end], dtype=np.dtype(dtype)).copy()
    return name, array.reshape(shape)
