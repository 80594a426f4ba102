"""ReasoningBank: clusters of good trajectories with per-route outcome statistics.

Centroids live in the adapted representation space and are shaped only by
trajectories whose quality reaches ``quality_threshold``. Route statistics are
fed by every ended trajectory near a pattern, good or bad, because learning
which route to avoid needs the failures. The per-route count, sum and sum of
squares of quality give a Gaussian estimate of each route's quality near the
pattern, which the router blends with the value heads.

A background cycle costs in proportion to its new trajectories. They are
assigned to the nearest centroids, which move by mini-batch k-means steps with
per-centroid rates ``1 / cluster_size``. New good points also seed new
patterns by k-means++ D^2 sampling, with the existing centroids counted as
chosen, until the cap is reached. Near duplicates merge, weights decay each
cycle, and the lightest patterns give way when new ones need room.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .kmeans import kmeans_plusplus, nearest_centres, squared_distances

__all__ = ["ReasoningBank"]

# Good points per new pattern: fewer would give centroids of one or two
# trajectories, whose route statistics are noise.
MIN_POINTS_PER_PATTERN = 4
# Centroids closer than this cosine similarity are merged into one pattern.
MERGE_SIMILARITY = 0.98
# Labels kept per pattern for its pattern_type; bounded so memory stays flat.
MAX_LABELS = 8


class ReasoningBank:
    def __init__(self, dim: int, capacity: int, quality_threshold: float, decay: float, stats_decay: float = 1.0):
        self.dim = dim
        self.capacity = capacity
        self.quality_threshold = quality_threshold
        self.decay = decay
        self.stats_decay = stats_decay
        self.next_id = 0
        self.inertia = 0.0
        self._allocate(0, 0)

    def _allocate(self, n_patterns: int, n_routes: int) -> None:
        self._query_cache = None
        self.centroids = np.zeros((n_patterns, self.dim), dtype=np.float64)
        self.ids = np.zeros(n_patterns, dtype=np.int64)
        self.cluster_size = np.zeros(n_patterns)
        self.total_weight = np.zeros(n_patterns)
        self.quality_sum = np.zeros(n_patterns)
        self.outcomes = np.zeros(n_patterns)
        self.created_at = np.zeros(n_patterns)
        self.last_accessed = np.zeros(n_patterns)
        self.access_count = np.zeros(n_patterns, dtype=np.int64)
        self.route_count = np.zeros((n_patterns, n_routes))
        self.route_sum = np.zeros((n_patterns, n_routes))
        self.route_sumsq = np.zeros((n_patterns, n_routes))
        self.labels: list[Counter] = [Counter() for _ in range(n_patterns)]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_routes(self) -> int:
        return self.route_count.shape[1]

    def add_route(self) -> None:
        pad = np.zeros((len(self), 1))
        self.route_count = np.hstack([self.route_count, pad])
        self.route_sum = np.hstack([self.route_sum, pad])
        self.route_sumsq = np.hstack([self.route_sumsq, pad])

    # Queries -------------------------------------------------------------

    def nearest(self, h: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the indices of the ``k`` most similar patterns to ``h`` (d,) and their cosine similarity."""
        if not len(self):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        norms, _ = self._query_view()
        similarity = (self.centroids @ h) / (norms * np.linalg.norm(h) + 1e-12)
        k = min(k, len(self))
        top = np.argpartition(-similarity, k - 1)[:k]
        top = top[np.argsort(-similarity[top], kind="stable")]
        return top, similarity[top]

    def touch(self, indices: np.ndarray, now: float) -> None:
        self.access_count[indices] += 1
        self.last_accessed[indices] = now

    def describe(self, indices: np.ndarray, similarity: np.ndarray, routes: list[str]) -> list[dict]:
        """Return one dict per pattern in ``indices``, as find_patterns documents them.

        Each column is converted to Python values once for all the patterns,
        because per-field numpy scalar conversions dominated find_patterns.
        """
        columns = {
            name: getattr(self, name)[indices].tolist()
            for name in ("ids", "cluster_size", "total_weight", "quality_sum", "outcomes",
                         "created_at", "last_accessed", "access_count", "route_count", "route_sum")
        }
        centroids = self.centroids[indices].astype(np.float32)
        similarity = np.asarray(similarity, dtype=np.float64).tolist()
        described = []
        for row, index in enumerate(np.asarray(indices).tolist()):
            counts, sums = columns["route_count"][row], columns["route_sum"][row]
            outcomes = columns["outcomes"][row]
            labels = self.labels[index]
            described.append({
                "id": int(columns["ids"][row]),
                "centroid": centroids[row],
                "cluster_size": int(columns["cluster_size"][row]),
                "total_weight": columns["total_weight"][row],
                "avg_quality": columns["quality_sum"][row] / outcomes if outcomes else 0.0,
                "created_at": columns["created_at"][row],
                "last_accessed": columns["last_accessed"][row],
                "access_count": int(columns["access_count"][row]),
                # max() returns the first of equal counts, as Counter.most_common does.
                "pattern_type": max(labels, key=labels.get) if labels else "general",
                "route_stats": {
                    routes[r]: {"count": count, "mean_quality": sums[r] / count}
                    for r, count in enumerate(counts)
                    if count > 0
                },
                "similarity": similarity[row],
            })
        return described

    # Learning ------------------------------------------------------------

    def record_outcomes(self, h: np.ndarray, routes: np.ndarray, quality: np.ndarray) -> None:
        """Add outcomes of rows ``h`` (n, d) to the route statistics of their nearest patterns."""
        if not len(self) or not len(h):
            return
        _, units = self._query_view()
        index, _ = nearest_centres(_unit(h), units)
        self._add_stats(index, routes, quality)

    def _add_stats(self, index, routes, quality) -> None:
        known = routes >= 0
        if self.stats_decay < 1.0 and known.any():
            # Discounting a route's evidence in a pattern each time that route
            # has a new outcome there keeps about 1 / (1 - stats_decay) recent
            # outcomes per route and pattern, so a route whose quality changed
            # is re-learned. Other routes keep their evidence, because
            # discounting them too would erase the evidence on a model the
            # router seldom picks, which costs decisions when nothing changed.
            cells = np.unique(index[known] * self.route_count.shape[1] + routes[known])
            rows, columns = np.divmod(cells, self.route_count.shape[1])
            for name in ("route_count", "route_sum", "route_sumsq"):
                getattr(self, name)[rows, columns] *= self.stats_decay
        np.add.at(self.quality_sum, index, quality)
        np.add.at(self.outcomes, index, 1.0)
        np.add.at(self.route_count, (index[known], routes[known]), 1.0)
        np.add.at(self.route_sum, (index[known], routes[known]), quality[known])
        np.add.at(self.route_sumsq, (index[known], routes[known]), quality[known] ** 2)

    def update(self, h, routes, quality, labels, now, rng, stats_recorded: np.ndarray) -> dict:
        """Run one incremental clustering step on new trajectories; return counts for the cycle summary.

        ``stats_recorded`` marks rows whose outcome already reached a pattern's
        route statistics when the trajectory ended; the others are added here.
        """
        self._query_cache = None
        self.total_weight *= self.decay
        points = _unit(h)
        good = quality >= self.quality_threshold
        created = self._spawn(points[good], rng, now)

        if len(self):
            index, distance = nearest_centres(points, self._unit_centroids())
            pending = ~stats_recorded
            self._add_stats(index[pending], routes[pending], quality[pending])
            self._move_centroids(points[good], index[good], distance[good], labels[good])

        merged = self._merge_duplicates()
        self._query_cache = None
        return {"patterns_created": created, "patterns_merged": merged, "good_trajectories": int(good.sum())}

    def _spawn(self, points: np.ndarray, rng: np.random.Generator, now: float) -> int:
        if not len(points) or self.capacity == 0:
            return 0
        # D^2 sampling with the existing centroids counted as chosen already
        # favours the points they cover worst, so every good point may seed.
        candidates = points
        wanted = len(candidates) // MIN_POINTS_PER_PATTERN
        wanted = min(wanted, max(self.capacity - len(self), self._prunable()))
        if wanted <= 0:
            return 0

        existing = self._unit_centroids() if len(self) else None
        chosen = kmeans_plusplus(candidates, wanted, rng, existing=existing)
        self._make_room(wanted)
        self._append(candidates[chosen], now)
        return wanted

    def _prunable(self) -> int:
        # When full, patterns whose weight decayed below a quarter of the
        # median may give way to new ones.
        if not len(self):
            return 0
        return int(np.sum(self.total_weight < 0.25 * np.median(self.total_weight)))

    def _make_room(self, count: int) -> None:
        excess = len(self) + count - self.capacity
        if excess > 0:
            lightest = np.argsort(self.total_weight, kind="stable")[:excess]
            self._keep(np.setdiff1d(np.arange(len(self)), lightest))

    def _append(self, centres: np.ndarray, now: float) -> None:
        count = len(centres)
        start = len(self)
        self.centroids = np.vstack([self.centroids, centres])
        self.ids = np.append(self.ids, np.arange(self.next_id, self.next_id + count))
        self.next_id += count
        for name in ("cluster_size", "total_weight", "quality_sum", "outcomes", "last_accessed"):
            setattr(self, name, np.append(getattr(self, name), np.zeros(count)))
        self.created_at = np.append(self.created_at, np.full(count, now))
        self.last_accessed[start:] = now
        self.access_count = np.append(self.access_count, np.zeros(count, dtype=np.int64))
        pad = np.zeros((count, self.n_routes))
        self.route_count = np.vstack([self.route_count, pad])
        self.route_sum = np.vstack([self.route_sum, pad])
        self.route_sumsq = np.vstack([self.route_sumsq, pad])
        self.labels.extend(Counter() for _ in range(count))

    def _move_centroids(self, points, index, distance, labels) -> None:
        if not len(points):
            return
        counts = np.bincount(index.astype(np.intp), minlength=len(self)).astype(np.float64)
        # bincount over flat (row, column) indices adds in the same order as
        # np.add.at into zeros, so the sums are identical, at a tenth of the
        # cost for a thousand 256-d points.
        flat = (index[:, None] * self.dim + np.arange(self.dim)).ravel().astype(np.intp)
        sums = np.bincount(flat, weights=points.ravel(), minlength=len(self) * self.dim).reshape(len(self), self.dim)
        touched = counts > 0
        self.cluster_size += counts
        self.total_weight += counts
        # Mini-batch k-means: each centroid moves toward its new members' mean
        # at rate (new members) / (all members so far), so it stays the running
        # mean of everything ever assigned to it.
        rate = counts[touched] / self.cluster_size[touched]
        means = sums[touched] / counts[touched, None]
        self.centroids[touched] += rate[:, None] * (means - self.centroids[touched])
        # Running mean squared member distance: the scale that decides when a
        # point is far enough from every centroid to seed a new pattern.
        batch_inertia = float(distance.mean())
        if self.inertia == 0.0:
            self.inertia = batch_inertia
        else:
            self.inertia += 0.1 * (batch_inertia - self.inertia)
        for row, label in zip(index, labels):
            if label:
                self._count_label(int(row), label)

    def _count_label(self, row: int, label: str) -> None:
        counter = self.labels[row]
        if label in counter or len(counter) < MAX_LABELS:
            counter[label] += 1

    def _merge_duplicates(self) -> int:
        if len(self) < 2:
            return 0
        units = self._unit_centroids()
        similarity = units @ units.T
        np.fill_diagonal(similarity, -1.0)
        merged = 0
        removed: set[int] = set()
        for a, b in zip(*np.nonzero(np.triu(similarity > MERGE_SIMILARITY))):
            if a in removed or b in removed:
                continue
            self._merge_into(int(a), int(b))
            removed.add(int(b))
            merged += 1
        if removed:
            self._keep(np.setdiff1d(np.arange(len(self)), sorted(removed)))
        return merged

    def _merge_into(self, keep: int, drop: int) -> None:
        sizes = self.cluster_size[[keep, drop]]
        total = sizes.sum()
        if total > 0:
            self.centroids[keep] = (sizes[0] * self.centroids[keep] + sizes[1] * self.centroids[drop]) / total
        for name in ("cluster_size", "total_weight", "quality_sum", "outcomes", "access_count"):
            getattr(self, name)[keep] += getattr(self, name)[drop]
        for name in ("route_count", "route_sum", "route_sumsq"):
            getattr(self, name)[keep] += getattr(self, name)[drop]
        self.created_at[keep] = min(self.created_at[keep], self.created_at[drop])
        self.last_accessed[keep] = max(self.last_accessed[keep], self.last_accessed[drop])
        self.labels[keep].update(self.labels[drop])

    def _keep(self, rows: np.ndarray) -> None:
        for name in _ROW_ARRAYS:
            setattr(self, name, getattr(self, name)[rows])
        self.labels = [self.labels[i] for i in rows]

    def _query_view(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the centroids' norms and unit centroids, cached for the queries between cycles.

        Centroids change only in update(), load() and _allocate(), which drop
        the cache. Recomputing both for every query cost more than the search.
        """
        if self._query_cache is None:
            self._query_cache = (np.linalg.norm(self.centroids, axis=1), self._unit_centroids())
        return self._query_cache

    def _unit_centroids(self) -> np.ndarray:
        return _unit(self.centroids)

    # Persistence ---------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {name: getattr(self, name) for name in _ROW_ARRAYS}
        meta = {
            "next_id": self.next_id,
            "inertia": self.inertia,
            "labels": [dict(counter) for counter in self.labels],
        }
        return arrays, meta

    def load(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        for name in _ROW_ARRAYS:
            setattr(self, name, np.array(arrays[name]))
        self._query_cache = None
        self.next_id = int(meta["next_id"])
        self.inertia = float(meta["inertia"])
        self.labels = [Counter(labels) for labels in meta["labels"]]


_ROW_ARRAYS = (
    "centroids", "ids", "cluster_size", "total_weight", "quality_sum", "outcomes", "created_at",
    "last_accessed", "access_count", "route_count", "route_sum", "route_sumsq",
)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-12)
