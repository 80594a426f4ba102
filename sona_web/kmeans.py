"""k-means++ seeding (Arthur and Vassilvitskii 2007) and nearest-centre search.

The ReasoningBank clusters unit-norm representations, so squared Euclidean
distance ranks centres exactly as cosine similarity does.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kmeans_plusplus", "nearest_centres", "squared_distances"]


def squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Return the (n, k) matrix of squared Euclidean distances, clipped at 0 against rounding."""
    cross = points @ centres.T
    distances = (points * points).sum(axis=1)[:, None] - 2.0 * cross + (centres * centres).sum(axis=1)[None, :]
    return np.maximum(distances, 0.0)


def nearest_centres(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the index of each point's nearest centre and the squared distance to it."""
    distances = squared_distances(points, centres)
    index = distances.argmin(axis=1)
    return index, distances[np.arange(len(points)), index]


def kmeans_plusplus(
    points: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    existing: np.ndarray | None = None,
    n_local_trials: int | None = None,
) -> np.ndarray:
    """Choose ``n_clusters`` new centres among ``points`` by D^2 sampling.

    Each new centre is drawn with probability proportional to the squared
    distance to the nearest centre chosen so far. When ``existing`` centres are
    given, distances start from them, so the new centres cover what the
    existing ones miss; otherwise the first centre is drawn uniformly. As in
    the greedy variant of the paper, ``n_local_trials`` candidates
    (default ``2 + int(log(n_clusters))``) are drawn per step and the one that
    lowers the total potential most is kept.

    Parameters
    ----------
    points : ndarray of shape (n, d), validated by the caller.
    n_clusters : int, 1 <= n_clusters <= n.
    rng : numpy.random.Generator
    existing : ndarray of shape (m, d) or None

    Returns
    -------
    ndarray of shape (n_clusters,)
        Indices into ``points`` of the chosen centres. They are distinct
        unless ``points`` has fewer than ``n_clusters`` distinct rows.
    """
    n_points = len(points)
    if not 1 <= n_clusters <= n_points:
        raise ValueError(f"n_clusters={n_clusters} should be in [1, n_points={n_points}]")
    trials = n_local_trials if n_local_trials is not None else 2 + int(math.log(n_clusters))

    chosen: list[int] = []
    if existing is not None and len(existing):
        closest = squared_distances(points, existing).min(axis=1)
    else:
        first = int(rng.integers(n_points))
        chosen.append(first)
        closest = squared_distances(points, points[first : first + 1])[:, 0]

    while len(chosen) < n_clusters:
        candidates = _draw_candidates(closest, trials, rng)
        candidate_distances = squared_distances(points, points[candidates])
        potentials = np.minimum(closest[:, None], candidate_distances).sum(axis=0)
        best = int(np.argmin(potentials))
        chosen.append(int(candidates[best]))
        closest = np.minimum(closest, candidate_distances[:, best])
    return np.array(chosen, dtype=np.int64)


def _draw_candidates(closest: np.ndarray, trials: int, rng: np.random.Generator) -> np.ndarray:
    total = float(closest.sum())
    if total <= 0.0:
        # Every point already coincides with a centre: any point not yet a
        # centre is as good as another, and D^2 sampling is undefined.
        return rng.integers(len(closest), size=trials)
    cumulative = np.cumsum(closest)
    draws = rng.random(trials) * cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, draws, side="right"), len(closest) - 1)
