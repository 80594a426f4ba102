"""Input checks shared by the public entry points.

Every check raises before any state is touched, so a rejected call leaves the
engine exactly as it was. Private kernels elsewhere assume validated input.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = [
    "as_float_array",
    "as_vector",
    "as_vectors",
    "check_quality",
    "check_int",
    "check_real",
    "check_route",
    "check_text",
]


def as_float_array(value, name: str) -> np.ndarray:
    """Return ``value`` as a float32 array of any shape, or raise ``TypeError`` naming ``name`` if it is not numeric."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a sequence of numbers: {error}") from None
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array.ravel()))[0])
        raise ValueError(
            f"{name} must contain only finite numbers, found {array.ravel()[bad]} at flat index {bad}"
        )


def as_vector(value, dim: int, name: str) -> np.ndarray:
    """Return ``value`` as a finite float32 vector of shape (dim,), copying only when needed."""
    array = as_float_array(value, name)
    if array.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},), got {array.shape}")
    _check_finite(array, name)
    return array


def as_vectors(value, dim: int, name: str) -> tuple[np.ndarray, bool]:
    """Return ``value`` as a finite float32 array of shape (n, dim) and whether it was one vector."""
    array = as_float_array(value, name)
    if array.ndim == 1 and array.shape[0] == dim:
        _check_finite(array, name)
        return array[None, :], True
    if array.ndim == 2 and array.shape[1] == dim:
        _check_finite(array, name)
        return array, False
    raise ValueError(f"{name} must have shape ({dim},) or (n, {dim}), got {array.shape}")


def check_int(value, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int after checking its type (``TypeError``) and range [low, high] (``ValueError``)."""
    bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int {bounds}, got {type(value).__name__} {_short_repr(value)}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an int {bounds}, got {value}")
    return int(value)


def check_real(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a float after checking it is a finite real number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {_short_repr(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if low is not None and number < low:
        raise ValueError(f"{name} must be >= {low}, got {number}")
    if high is not None and number > high:
        raise ValueError(f"{name} must be <= {high}, got {number}")
    return number


def check_quality(value) -> float:
    return check_real(value, "quality", 0.0, 1.0)


def check_text(value, name: str, max_length: int = 256) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise ValueError(f"{name} must be at most {max_length} characters, got {len(value)}")
    return value


def check_route(value) -> str:
    return check_text(value, "route", max_length=128)


def _short_repr(value) -> str:
    # Error messages show the rejected value, cut short so that a large
    # array does not flood them.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
