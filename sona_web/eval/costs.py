"""Per-model costs: defaults, parsing of the ``--costs`` option, normalisation.

The reward of a routing decision is ``outcome - cost_weight * cost`` with costs
normalised to ``[0, 1]``: the cheapest model costs 0 and the dearest 1, so
with two models the normalised cost of a decision is 1 exactly when it calls
the strong model, and ``cost_weight`` (lambda) is in units of outcome.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["default_costs", "normalise_costs", "parse_costs"]


def default_costs(outcomes: np.ndarray) -> np.ndarray:
    """Rank the models by mean outcome and space their costs evenly over ``[0, 1]``.

    The least accurate model costs 0 and the most accurate 1; with two models
    this is weak = 0, strong = 1. Ties in mean outcome keep column order.
    Returns a float64 array of shape ``(m,)``.
    """
    means = np.asarray(outcomes, dtype=np.float64).mean(axis=0)
    m = means.shape[0]
    ranks = np.empty(m, dtype=np.float64)
    ranks[np.argsort(means, kind="stable")] = np.arange(m)
    return ranks / (m - 1)


def normalise_costs(costs) -> np.ndarray:
    """Map ``costs`` linearly onto ``[0, 1]`` (cheapest 0, dearest 1).

    Raises ``ValueError`` when a cost is negative or not finite, or when every
    model costs the same, because the quality-cost curve then has no x-axis.
    """
    values = np.asarray(costs, dtype=np.float64)
    if values.ndim != 1 or values.shape[0] < 2:
        raise ValueError(f"costs must list at least two models, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"costs must be finite and >= 0, got {values.tolist()}")
    low, high = float(values.min()), float(values.max())
    if high == low:
        raise ValueError(f"costs must not all be equal, got {values.tolist()}")
    return (values - low) / (high - low)


def parse_costs(text: str, model_names: tuple[str, ...]) -> np.ndarray:
    """Parse ``--costs``: comma-separated numbers in model order, or ``name=cost`` pairs.

    ``name=cost`` pairs must name every model once; a model's name may contain
    ``=`` only before the last one. Returns the raw (not yet normalised) costs.
    Raises ``ValueError`` naming the bad item.
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items and all("=" in item for item in items):
        return _parse_named(items, model_names)
    if len(items) != len(model_names):
        raise ValueError(
            f"--costs lists {len(items)} values but the data has {len(model_names)} models "
            f"{list(model_names)}; give one number per model or name=cost pairs"
        )
    return np.array([_parse_number(item, item) for item in items])


def _parse_named(items: list[str], model_names: tuple[str, ...]) -> np.ndarray:
    costs: dict[str, float] = {}
    for item in items:
        name, _, number = item.rpartition("=")
        name = name.strip()
        if name not in model_names:
            raise ValueError(f"--costs names unknown model {name!r}; models are {list(model_names)}")
        if name in costs:
            raise ValueError(f"--costs names model {name!r} twice")
        costs[name] = _parse_number(number, item)
    missing = [name for name in model_names if name not in costs]
    if missing:
        raise ValueError(f"--costs gives no cost for {missing}")
    return np.array([costs[name] for name in model_names])


def _parse_number(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--costs item {item!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"--costs item {item!r} is not finite")
    return value
