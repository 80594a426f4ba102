"""Baseline online routers that share one interface with sona-web's router.

Every router implements

* ``route(x) -> (model_index, probability)``: pick a model for the query
  embedding ``x`` (float32 array of shape ``(dim,)``). ``probability`` is the
  chance that the router's policy picks that model for ``x``, or ``nan``
  where the policy has no closed form (Thompson sampling).
* ``update(x, model_index, reward)``: learn from the reward of the chosen
  model only (bandit feedback). The reward is ``outcome - lambda * cost``.

The hyper-parameters are the textbook defaults named in each class and were
not chosen by looking at any evaluation result. Randomness comes only from a
``numpy.random.default_rng(seed)`` owned by each router, and ties between
equal scores are broken at random, so that with the same seed and the same
stream a router makes the same decisions. The linear baselines keep their
per-model ridge regressions in :class:`sona_web.linear_prior.RidgePrior`,
the same exact Sherman-Morrison update that sona-web's router uses.
"""

from __future__ import annotations

import math

import numpy as np

from ..linear_prior import RidgePrior

__all__ = [
    "EpsilonGreedyRouter",
    "FixedRouter",
    "KMeansThompsonRouter",
    "KNNRouter",
    "LinUCBRouter",
    "RandomRouter",
    "Router",
]


class Router:
    """Interface of an online router; subclasses override :meth:`route` and :meth:`update`."""

    name = "router"

    def route(self, x: np.ndarray) -> tuple[int, float]:
        raise NotImplementedError

    def update(self, x: np.ndarray, model_index: int, reward: float) -> None:
        raise NotImplementedError


def _argmax_random_tie(scores: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """Return the index of the maximum score, a uniform pick among ties, and the tie count."""
    best = np.flatnonzero(scores == scores.max())
    if best.shape[0] == 1:
        return int(best[0]), 1
    return int(best[rng.integers(best.shape[0])]), int(best.shape[0])


def _check_models(n_models: int) -> None:
    if not isinstance(n_models, int) or n_models < 2:
        raise ValueError(f"n_models must be an int >= 2, got {n_models!r}")


class FixedRouter(Router):
    """Route every query to one model (always-weak, always-strong)."""

    def __init__(self, model_index: int, name: str = "fixed") -> None:
        if not isinstance(model_index, int) or model_index < 0:
            raise ValueError(f"model_index must be an int >= 0, got {model_index!r}")
        self.model_index = model_index
        self.name = name

    def route(self, x):
        return self.model_index, 1.0

    def update(self, x, model_index, reward):
        pass


class RandomRouter(Router):
    """Pick model ``j`` with probability ``probabilities[j]``, ignoring the query.

    The harness gives it the share of calls each model got from a learning
    router at the same cost weight, so the random router lies on the straight
    line between the weak and the strong model at a matched cost.
    """

    def __init__(self, probabilities, seed: int = 0, name: str = "random") -> None:
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 1 or p.shape[0] < 2 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(f"probabilities must be >= 0 and sum to 1 over >= 2 models, got {p.tolist()}")
        self.probabilities = p / p.sum()
        self._cumulative = np.cumsum(self.probabilities)
        self._rng = np.random.default_rng(seed)
        self.name = name

    def route(self, x):
        # Inverse-CDF sampling with one uniform draw per decision keeps the
        # random stream identical whatever the probabilities are.
        index = int(np.searchsorted(self._cumulative, self._rng.random(), side="right"))
        index = min(index, self.probabilities.shape[0] - 1)
        return index, float(self.probabilities[index])

    def update(self, x, model_index, reward):
        pass


class EpsilonGreedyRouter(Router):
    """Epsilon-greedy over per-model online ridge regressions.

    With probability ``epsilon`` pick a model uniformly at random, otherwise
    the model with the highest predicted reward. Defaults: ``epsilon=0.1``
    (the usual textbook value), ``ridge=1.0`` (identity prior).
    """

    name = "egreedy"

    def __init__(self, n_models: int, dim: int, epsilon: float = 0.1, ridge: float = 1.0, seed: int = 0) -> None:
        _check_models(n_models)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.n_models = n_models
        self.epsilon = epsilon
        self._arms = RidgePrior(n_models, dim, ridge)
        self._rng = np.random.default_rng(seed)

    def route(self, x):
        explore_draw = self._rng.random()
        predicted, _ = self._arms.predict(x)
        greedy, ties = _argmax_random_tie(predicted, self._rng)
        if explore_draw < self.epsilon:
            chosen = int(self._rng.integers(self.n_models))
        else:
            chosen = greedy
        probability = self.epsilon / self.n_models + (1.0 - self.epsilon) / ties * (chosen == greedy)
        return chosen, float(probability)

    def update(self, x, model_index, reward):
        self._arms.update(x, model_index, reward)


class LinUCBRouter(Router):
    """LinUCB with disjoint linear models (Li, Chu, Langford, Schapire, WWW 2010, Algorithm 1).

    Score of model ``a``: ``theta_a . z + alpha * sqrt(z^T A_a^-1 z)`` with
    ``z = [x, 1]``. Defaults: ``alpha=1.0``, ``ridge=1.0`` (A starts as the
    identity, as in the paper).
    """

    name = "linucb"

    def __init__(self, n_models: int, dim: int, alpha: float = 1.0, ridge: float = 1.0, seed: int = 0) -> None:
        _check_models(n_models)
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.alpha = alpha
        self._arms = RidgePrior(n_models, dim, ridge)
        self._rng = np.random.default_rng(seed)

    def route(self, x):
        # The spread z^T A^-1 z is LinUCB's variance term for z = [x, 1].
        predicted, spread = self._arms.predict(x)
        scores = predicted + self.alpha * np.sqrt(np.maximum(spread, 0.0))
        chosen, ties = _argmax_random_tie(scores, self._rng)
        return chosen, 1.0 / ties

    def update(self, x, model_index, reward):
        self._arms.update(x, model_index, reward)


class KNNRouter(Router):
    """Nearest neighbours over the latest past queries, by cosine similarity.

    For the ``k`` most similar of the last ``memory`` queries, the score of a
    model is the mean reward it earned on those of them it served, shrunk
    toward an optimistic prior: ``(sum + prior_reward) / (count + 1)``. A
    model that served none of the neighbours scores ``prior_reward`` exactly,
    so it is tried (optimism for unseen models). The memory is a ring buffer:
    it bounds the cost of a decision (one ``memory x dim`` product) and the
    memory of a browser tab, and lets old evidence age out. Defaults: ``k=10``,
    ``prior_reward=1.0`` (the largest reward an outcome in [0, 1] can give),
    ``memory=4096``.
    """

    name = "knn"

    def __init__(
        self, n_models: int, dim: int, k: int = 10, prior_reward: float = 1.0, memory: int = 4096, seed: int = 0
    ) -> None:
        _check_models(n_models)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if not isinstance(memory, int) or memory < k:
            raise ValueError(f"memory must be an int >= k={k}, got {memory!r}")
        self.n_models = n_models
        self.k = k
        self.prior_reward = float(prior_reward)
        self._vectors = np.zeros((memory, dim), dtype=np.float32)
        self._arms = np.zeros(memory, dtype=np.intp)
        self._rewards = np.zeros(memory, dtype=np.float64)
        self._size = 0
        self._next = 0
        self._rng = np.random.default_rng(seed)

    def route(self, x):
        scores = np.full(self.n_models, self.prior_reward)
        if self._size:
            neighbours = self._neighbours(x)
            arms = self._arms[neighbours]
            sums = np.bincount(arms, weights=self._rewards[neighbours], minlength=self.n_models)
            counts = np.bincount(arms, minlength=self.n_models)
            scores = (sums + self.prior_reward) / (counts + 1.0)
        chosen, ties = _argmax_random_tie(scores, self._rng)
        return chosen, 1.0 / ties

    def update(self, x, model_index, reward):
        norm = float(np.linalg.norm(x))
        slot = self._next
        self._vectors[slot] = x / norm if norm > 0 else x
        self._arms[slot] = model_index
        self._rewards[slot] = reward
        self._next = (slot + 1) % self._vectors.shape[0]
        self._size = min(self._size + 1, self._vectors.shape[0])

    def _neighbours(self, x: np.ndarray) -> np.ndarray:
        if self._size <= self.k:
            return np.arange(self._size)
        similarities = self._vectors[: self._size] @ x
        return np.argpartition(-similarities, self.k - 1)[: self.k]


class KMeansThompsonRouter(Router):
    """Gaussian Thompson sampling per model inside online k-means clusters.

    Clusters: the first ``n_clusters`` queries seed the centroids, then each
    query joins the nearest centroid (Euclidean), which moves toward it by
    ``1 / size`` (MacQueen's sequential k-means). In every cluster, each model
    keeps a Gaussian posterior of its mean reward with one pseudo-observation
    of ``prior_mean`` and noise standard deviation ``noise_sd``. Routing
    draws one sample per model and takes the largest. Defaults:
    ``n_clusters=16``, ``prior_mean=0.5`` (the middle of [0, 1]),
    ``noise_sd=0.5`` (the largest standard deviation of an outcome in [0, 1]).
    """

    name = "thompson_kmeans"

    def __init__(
        self,
        n_models: int,
        dim: int,
        n_clusters: int = 16,
        prior_mean: float = 0.5,
        noise_sd: float = 0.5,
        seed: int = 0,
    ) -> None:
        _check_models(n_models)
        if not isinstance(n_clusters, int) or n_clusters < 1:
            raise ValueError(f"n_clusters must be an int >= 1, got {n_clusters!r}")
        if not noise_sd > 0:
            raise ValueError(f"noise_sd must be > 0, got {noise_sd!r}")
        self.n_models = n_models
        self.prior_mean = float(prior_mean)
        self.noise_sd = float(noise_sd)
        self.centroids = np.zeros((n_clusters, dim))
        self.cluster_sizes = np.zeros(n_clusters, dtype=np.int64)
        self._n_seeded = 0
        self._counts = np.zeros((n_clusters, n_models))
        self._sums = np.zeros((n_clusters, n_models))
        self._rng = np.random.default_rng(seed)

    def route(self, x):
        counts = np.zeros(self.n_models)
        sums = np.zeros(self.n_models)
        if self._n_seeded:
            cluster = self._nearest(x)
            counts, sums = self._counts[cluster], self._sums[cluster]
        mean = (sums + self.prior_mean) / (counts + 1.0)
        sd = self.noise_sd / np.sqrt(counts + 1.0)
        samples = mean + sd * self._rng.standard_normal(self.n_models)
        chosen, _ = _argmax_random_tie(samples, self._rng)
        return chosen, math.nan

    def update(self, x, model_index, reward):
        cluster = self._assign(np.asarray(x, dtype=np.float64))
        self._counts[cluster, model_index] += 1.0
        self._sums[cluster, model_index] += reward

    def _nearest(self, x: np.ndarray) -> int:
        centroids = self.centroids[: self._n_seeded]
        distances = np.einsum("ij,ij->i", centroids, centroids) - 2.0 * (centroids @ x)
        return int(np.argmin(distances))

    def _assign(self, x: np.ndarray) -> int:
        if self._n_seeded < self.centroids.shape[0]:
            cluster = self._n_seeded
            self._n_seeded += 1
        else:
            cluster = self._nearest(x)
        self.cluster_sizes[cluster] += 1
        self.centroids[cluster] += (x - self.centroids[cluster]) / self.cluster_sizes[cluster]
        return cluster
