"""Symmetric int8 quantisation with one float32 scale per matrix row.

A row ``w`` is stored as ``q = round(w / s)`` with ``s = max(|w|) / 127``, so
each element's rounding error is at most ``s / 2``. Weight files mark such a
matrix by storing ``NAME.int8`` (int8) and ``NAME.scale`` (float32, one per
row) in place of ``NAME``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dequantize_rows", "get_matrix", "quantize_rows"]

INT8_SUFFIX = ".int8"
SCALE_SUFFIX = ".scale"


def quantize_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantise a 2-D float array to ``(q, scale)``: int8 ``(rows, cols)``, float32 ``(rows,)``."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {matrix.shape}")

    scale = np.abs(matrix).max(axis=1) / 127.0
    # An all-zero row keeps scale 1 so that dequantisation never divides by 0.
    scale[scale == 0.0] = 1.0
    q = np.clip(np.rint(matrix / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def dequantize_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Return the float32 matrix ``q * scale[:, None]``."""
    return q.astype(np.float32) * scale.astype(np.float32)[:, None]


def get_matrix(tensors: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Return tensor ``name`` as float32, dequantising it if stored as int8 rows.

    Raises ``KeyError`` if neither ``name`` nor its int8 pair is in ``tensors``.
    """
    if name in tensors:
        return np.asarray(tensors[name], dtype=np.float32)
    if name + INT8_SUFFIX in tensors and name + SCALE_SUFFIX in tensors:
        return dequantize_rows(tensors[name + INT8_SUFFIX], tensors[name + SCALE_SUFFIX])
    raise KeyError(f"tensor {name!r} not found in the weights file (nor {name + INT8_SUFFIX!r})")
