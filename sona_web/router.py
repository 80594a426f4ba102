"""AdaptiveRouter: choose the model most likely to satisfy the user at the lowest cost.

For a query, each model's quality is estimated twice. Its value head, a
linear model of the adapted representation, captures broad trends. The route
statistics of the nearest ReasoningBank patterns are local averages that
capture sharply defined kinds of query. They are blended as a Gaussian posterior
in which the head counts as ``PRIOR_STRENGTH`` pseudo-observations and each
pattern contributes its observations weighted by its similarity. The router
then subtracts ``cost_weight`` times each model's relative cost and explores
by Thompson sampling: it draws one quality per model from the posterior and
takes the best draw. The probability of the chosen model under that policy is
estimated from further draws and logged for off-policy evaluation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from ._validation import as_vector, check_real, check_route
from .config import SonaConfig
from .engine import SonaEngine

__all__ = ["AdaptiveRouter", "RouteDecision"]

# Pseudo-observations given to the value head's estimate.
PRIOR_STRENGTH = 2.0
# Similarity scale: a pattern this much less similar than the nearest one
# counts e times less.
SIMILARITY_SCALE = 0.05
# Draws used to estimate the probability of the chosen model.
PROPENSITY_DRAWS = 256
# Decisions kept in the log returned by decisions().
DECISION_LOG_SIZE = 10_000


@dataclass
class RouteDecision:
    """The outcome of :meth:`AdaptiveRouter.route`."""

    model_index: int
    model: str
    scores: list[float]
    estimates: list[float]
    uncertainty: list[float]
    explored: bool
    probability: float
    patterns: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return plain Python values (centroids as lists), ready for JSON."""
        data = asdict(self)
        data["patterns"] = [{**p, "centroid": np.asarray(p["centroid"]).tolist()} for p in self.patterns]
        return data


class AdaptiveRouter:
    """Route queries among models and learn from the outcome of each choice.

    Parameters
    ----------
    models : list of (name, cost) pairs or {"name", "cost"} dicts
        At least two models with distinct names and finite costs >= 0.
    config : SonaConfig, optional
        Engine settings; ``hidden_dim`` and ``embedding_dim`` must match the query embeddings.
    cost_weight : float
        Quality the router gives up to avoid the most expensive model; costs
        are divided by the largest cost, so 0.1 means "call the most expensive
        model only where it earns at least 0.1 more quality".
    exploration : float
        Scale of the Thompson draws' spread; 0 routes greedily.
    n_patterns : int
        Nearest patterns consulted per decision.
    learn_every : int
        Run a background cycle after this many recorded outcomes, so that a
        replayed evaluation learns at a fixed, reproducible cadence; apps may
        also call :meth:`tick`.
    seed : int, optional
        Overrides ``config.seed``.
    """

    def __init__(
        self,
        models,
        config: SonaConfig | None = None,
        *,
        cost_weight: float = 0.1,
        exploration: float = 1.0,
        n_patterns: int = 4,
        learn_every: int = 128,
        seed: int | None = None,
        clock=None,
    ):
        names, costs = _parse_models(models)
        config = config if config is not None else SonaConfig.default()
        if not isinstance(config, SonaConfig):
            raise TypeError(f"config must be a SonaConfig, got {type(config).__name__}")
        if seed is not None:
            config = config.replace(seed=seed)
        self.cost_weight = check_real(cost_weight, "cost_weight", 0.0)
        self.exploration = check_real(exploration, "exploration", 0.0)
        if isinstance(n_patterns, bool) or not isinstance(n_patterns, int) or not 1 <= n_patterns <= 64:
            raise ValueError(f"n_patterns must be an int in [1, 64], got {n_patterns!r}")
        if isinstance(learn_every, bool) or not isinstance(learn_every, int) or learn_every < 1:
            raise ValueError(f"learn_every must be an int >= 1, got {learn_every!r}")
        self.n_patterns = n_patterns
        self.learn_every = learn_every
        self.models = names
        self.costs = np.array(costs)
        self.engine = SonaEngine.with_config(config, clock=clock)
        for name in names:
            self.engine._register_route(name)
        self._init_learning_state()

    def _init_learning_state(self) -> None:
        self._rng = np.random.default_rng([self.engine.config.seed, 1])
        max_cost = self.costs.max()
        self._relative_cost = self.costs / max_cost if max_cost > 0 else np.zeros_like(self.costs)
        count = len(self.models)
        self._outcomes = 0
        self._count = np.zeros(count)
        self._mean = np.full(count, 0.5)
        self._sq_dev = np.zeros(count)
        self._latency = np.zeros(count)
        self._decisions: deque = deque(maxlen=DECISION_LOG_SIZE)

    # Deciding -------------------------------------------------------------

    def route(self, query_embedding) -> RouteDecision:
        """Choose a model for one query embedding of shape (embedding_dim,)."""
        x = as_vector(query_embedding, self.engine.config.embedding_dim, "query_embedding")
        mean, std, patterns = self._posterior(x)
        scores = mean - self.cost_weight * self._relative_cost
        draws = self._rng.standard_normal((PROPENSITY_DRAWS + 1, len(self.models)))
        sampled = scores + self.exploration * std * draws
        choices = sampled.argmax(axis=1)
        chosen = int(choices[0])
        probability = float(np.mean(choices[1:] == chosen))
        decision = RouteDecision(
            model_index=chosen,
            model=self.models[chosen],
            scores=scores.tolist(),
            estimates=mean.tolist(),
            uncertainty=std.tolist(),
            explored=chosen != int(scores.argmax()),
            probability=max(probability, 1.0 / PROPENSITY_DRAWS),
            patterns=patterns,
        )
        self._decisions.append(
            {"model_index": chosen, "probability": decision.probability, "scores": decision.scores}
        )
        return decision

    def _posterior(self, x: np.ndarray):
        engine = self.engine
        model = engine._model
        h = engine._represent(x[None, :]).astype(np.float64)
        order = [engine._route_index[name] for name in self.models]
        head = model.predict(h)[0][order]

        variance = self._pooled_variance()
        counts = np.zeros(len(self.models))
        sums = np.zeros(len(self.models))
        patterns: list[dict] = []
        bank = engine._bank
        if len(bank):
            indices, similarity = bank.nearest(h[0], self.n_patterns)
            weights = np.exp((similarity - similarity.max()) / SIMILARITY_SCALE)
            counts = weights @ bank.route_count[indices][:, order]
            sums = weights @ bank.route_sum[indices][:, order]
            bank.touch(indices, engine._clock())
            patterns = bank.describe(indices, similarity, engine._routes)

        evidence = PRIOR_STRENGTH + counts
        mean = (PRIOR_STRENGTH * np.clip(head, 0.0, 1.0) + sums) / evidence
        std = np.sqrt(variance / evidence)
        return mean, std, patterns

    def _pooled_variance(self) -> np.ndarray:
        # Per-model variance of observed quality, shrunk toward 0.25 (the
        # largest variance a quality in [0, 1] can have) while data is scarce.
        shrink = 4.0
        return (self._sq_dev + shrink * 0.25) / (self._count + shrink)

    # Learning -------------------------------------------------------------

    def record_outcome(self, query_embedding, model, quality: float, latency_ms: float = 0.0) -> None:
        """Teach the router that ``model`` earned ``quality`` in [0, 1] on this query."""
        x = as_vector(query_embedding, self.engine.config.embedding_dim, "query_embedding")
        index = self._model_index(model)
        quality = check_real(quality, "quality", 0.0, 1.0)
        latency_ms = check_real(latency_ms, "latency_ms", 0.0)

        engine = self.engine
        trajectory_id = engine.begin_trajectory(x)
        engine.set_trajectory_route(trajectory_id, self.models[index])
        engine.end_trajectory(trajectory_id, quality)
        self._update_model_stats(index, quality, latency_ms)
        self._outcomes += 1
        if self._outcomes % self.learn_every == 0:
            engine.force_learn()

    def _update_model_stats(self, index: int, quality: float, latency_ms: float) -> None:
        # Welford's update of the per-model mean and sum of squared deviations.
        self._count[index] += 1
        delta = quality - self._mean[index]
        self._mean[index] += delta / self._count[index]
        self._sq_dev[index] += delta * (quality - self._mean[index])
        self._latency[index] += (latency_ms - self._latency[index]) / self._count[index]

    def _model_index(self, model) -> int:
        if isinstance(model, (int, np.integer)) and not isinstance(model, bool):
            if not 0 <= model < len(self.models):
                raise ValueError(f"model index must be in [0, {len(self.models) - 1}], got {model}")
            return int(model)
        if isinstance(model, str):
            if model not in self.models:
                raise KeyError(f"unknown model {model!r}; known models are {self.models}")
            return self.models.index(model)
        raise TypeError(f"model must be a model name or index, got {type(model).__name__}")

    def tick(self) -> dict | None:
        return self.engine.tick()

    def decisions(self) -> list[dict]:
        """Return the logged decisions (model index, its probability, scores), oldest first."""
        return list(self._decisions)

    def stats(self) -> dict:
        return {
            "outcomes": self._outcomes,
            "models": {
                name: {
                    "cost": float(self.costs[i]),
                    "count": int(self._count[i]),
                    "mean_quality": float(self._mean[i]),
                    "mean_latency_ms": float(self._latency[i]),
                }
                for i, name in enumerate(self.models)
            },
            "engine": self.engine.stats(),
        }

    # Persistence ----------------------------------------------------------

    def save_state(self) -> bytes:
        from ._router_state import router_to_state

        return router_to_state(self)

    @classmethod
    def load_state(cls, data, *, clock=None) -> "AdaptiveRouter":
        from ._router_state import router_from_state

        return router_from_state(cls, data, clock)


def _parse_models(models) -> tuple[list[str], list[float]]:
    if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
        raise TypeError(f"models must be a list of (name, cost) pairs or dicts, got {type(models).__name__}")
    names, costs = [], []
    for item in models:
        if isinstance(item, dict):
            if set(item) - {"name", "cost"} or "name" not in item:
                raise ValueError(f"a model dict needs keys 'name' and optionally 'cost', got {sorted(item)}")
            name, cost = item["name"], item.get("cost", 0.0)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            name, cost = item
        else:
            raise TypeError(f"each model must be a (name, cost) pair or a dict, got {item!r}")
        names.append(check_route(name))
        costs.append(check_real(cost, f"cost of model {name!r}", 0.0))
    if len(names) < 2:
        raise ValueError(f"a router needs at least 2 models, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be distinct, got {names}")
    return names, costs
