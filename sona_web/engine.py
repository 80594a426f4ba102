"""SonaEngine: records trajectories and learns from them at two speeds.

The instant loop runs when a trajectory ends (or when ``micro_batch_size``
have ended): one gradient step on MicroLoRA and the chosen route's value head.
The background loop (:meth:`SonaEngine.tick`, :meth:`SonaEngine.force_learn`)
replays buffered trajectories into BaseLoRA and the heads under the EWC++
penalty, folds MicroLoRA into BaseLoRA, and updates the ReasoningBank.
See :mod:`sona_web.model` for the loss.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

import numpy as np

from ._validation import as_float_array, as_vector, as_vectors, check_int, check_real, check_route, check_text
from .config import SonaConfig
from .ewc import EWCPlusPlus, ShiftDetector
from .model import Batch, SonaModel
from .reasoning_bank import ReasoningBank
from .trajectory import ActiveSet, ActiveTrajectory, ReplayBuffer, step_target

__all__ = ["SonaEngine", "SonaEngineBuilder"]

logger = logging.getLogger("sona_web")

MAX_ROUTES = 256
MAX_CONTEXT_LABELS = 4096
MAX_ATTENTION_LENGTH = 65_536
# Weight of the newest quality in the running baseline that advantages are
# measured against; about the last 50 trajectories count.
BASELINE_RATE = 0.02
# Rows per mini-batch in background replay.
REPLAY_BATCH = 64
# Global norm above which a MicroLoRA gradient is scaled down. A guard, not a
# tuning knob: normal steps on unit-norm queries stay far below it.
MAX_MICRO_GRAD_NORM = 1.0
# Without consolidation (base_lora_lr=0), MicroLoRA halves each cycle instead
# of being folded, so fast weights stay fresh.
MICRO_DECAY = 0.5


class SonaEngine:
    """An online-learning engine for one representation space.

    Parameters
    ----------
    hidden_dim : int, optional
        Width of the adapted representation (256 when omitted); with ``config``
        it must match ``config.hidden_dim``.
    config : SonaConfig, optional
        Full settings; ``SonaConfig.default(hidden_dim=hidden_dim, embedding_dim=hidden_dim)`` when omitted.
    clock : callable returning seconds, optional
        Time source for ``tick`` and pattern timestamps (``time.time`` by default);
        tests pass a fake clock to make runs reproducible.

    Examples
    --------
    >>> import numpy as np
    >>> engine = SonaEngine(hidden_dim=8)
    >>> tid = engine.begin_trajectory(np.ones(8) / np.sqrt(8))
    >>> engine.set_trajectory_route(tid, "concise")
    >>> engine.end_trajectory(tid, 1.0)
    >>> engine.stats()["trajectories_recorded"]
    1
    """

    def __init__(
        self,
        hidden_dim: int | None = None,
        *,
        config: SonaConfig | None = None,
        clock: Callable[[], float] | None = None,
    ):
        if config is None:
            width = 256 if hidden_dim is None else hidden_dim
            config = SonaConfig.default(hidden_dim=width, embedding_dim=width)
        elif not isinstance(config, SonaConfig):
            raise TypeError(f"config must be a SonaConfig, got {type(config).__name__}")
        elif hidden_dim is not None and hidden_dim != config.hidden_dim:
            raise ValueError(f"hidden_dim={hidden_dim} disagrees with config.hidden_dim={config.hidden_dim}; pass one")
        config.validate()
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        self.config = SonaConfig.from_dict(config.to_dict())
        self._clock = clock or time.time
        self._init_state()

    def _init_state(self) -> None:
        config = self.config
        self._rng = np.random.default_rng(config.seed)
        self._projection = None
        if config.embedding_dim != config.hidden_dim:
            # Johnson-Lindenstrauss: a Gaussian map scaled by 1/sqrt(hidden_dim)
            # keeps inner products of unit vectors in expectation.
            gaussian = self._rng.standard_normal((config.embedding_dim, config.hidden_dim))
            self._projection = (gaussian / np.sqrt(config.hidden_dim)).astype(np.float32)

        self._model = SonaModel(config, self._rng)
        self._ewc = EWCPlusPlus(config.ewc_lambda, config.ewc_fisher_alpha)
        self._detector = ShiftDetector(config.hidden_dim, config.ewc_boundary_threshold, config.ewc_boundary_patience)
        self._bank = ReasoningBank(
            config.hidden_dim,
            config.pattern_clusters,
            config.quality_threshold,
            config.pattern_decay,
            config.pattern_stats_decay,
        )

        self._active = ActiveSet(config.max_active_trajectories)
        self._buffer = ReplayBuffer(config.trajectory_capacity, config.hidden_dim)
        self._routes: list[str] = []
        self._route_index: dict[str, int] = {}
        self._contexts: list[str] = []
        self._context_index: dict[str, int] = {}

        self._pending: list[tuple] = []
        self._baseline = 0.5
        self._next_id = 1
        self._enabled = True
        self._last_cycle_time = self._clock()
        self._counters = {
            "trajectories_recorded": 0,
            "instant_updates": 0,
            "background_cycles": 0,
            "steps_recorded": 0,
        }
        self._attention_entropy = 0.0
        self._last_cycle_ms = 0.0

    # Construction ---------------------------------------------------------

    @classmethod
    def with_config(cls, config: SonaConfig, *, clock: Callable[[], float] | None = None) -> "SonaEngine":
        if not isinstance(config, SonaConfig):
            raise TypeError(f"config must be a SonaConfig, got {type(config).__name__}")
        return cls(config.hidden_dim, config=config, clock=clock)

    @classmethod
    def builder(cls) -> "SonaEngineBuilder":
        return SonaEngineBuilder()

    # Trajectories ---------------------------------------------------------

    def begin_trajectory(self, query_embedding) -> int:
        """Start a trajectory for a query embedding of shape (embedding_dim,); return its id.

        Query embeddings are L2-normalised on entry, here and in every method
        that takes one; a zero vector stays zero.
        """
        embedding = as_vector(query_embedding, self.config.embedding_dim, "query_embedding").copy()
        trajectory_id = self._next_id
        self._next_id += 1
        self._active.add(trajectory_id, ActiveTrajectory(embedding, record=self._enabled))
        return trajectory_id

    def add_trajectory_step(self, trajectory_id: int, activations, attention, reward: float) -> None:
        """Record one step: activations (hidden_dim,), attention weights (1-D, any length), reward."""
        trajectory = self._active.get(trajectory_id)
        activations = as_vector(activations, self.config.hidden_dim, "activations").copy()
        attention = as_float_array(attention, "attention")
        if attention.ndim != 1 or not 1 <= attention.size <= MAX_ATTENTION_LENGTH:
            raise ValueError(
                f"attention must be a 1-D array of 1 to {MAX_ATTENTION_LENGTH} weights, got shape {attention.shape}"
            )
        attention = as_vector(attention, attention.size, "attention")
        if (attention < 0).any():
            raise ValueError(f"attention weights must be >= 0, got minimum {float(attention.min())}")
        reward = check_real(reward, "reward")
        if len(trajectory.activations) >= self.config.max_steps_per_trajectory:
            raise ValueError(
                f"trajectory {trajectory_id} already has max_steps_per_trajectory="
                f"{self.config.max_steps_per_trajectory} steps; end it or raise the limit"
            )
        if not trajectory.record:
            return
        trajectory.activations.append(activations)
        trajectory.rewards.append(reward)
        trajectory.attention_entropy.append(_normalised_entropy(attention))

    add_step = add_trajectory_step

    def set_trajectory_route(self, trajectory_id: int, route: str) -> None:
        """Name the route (model or response style) that served the trajectory."""
        trajectory = self._active.get(trajectory_id)
        route = check_route(route)
        self._check_route_room(route)
        trajectory.route = route

    def _check_route_room(self, route: str) -> None:
        if route not in self._route_index and len(self._routes) >= MAX_ROUTES:
            raise ValueError(f"route {route!r} would exceed the maximum of {MAX_ROUTES} distinct routes")

    def add_trajectory_context(self, trajectory_id: int, context: str) -> None:
        """Attach a context label; the latest one becomes the trajectory's label and shapes pattern_type."""
        trajectory = self._active.get(trajectory_id)
        trajectory.context = check_text(context, "context")

    def end_trajectory(self, trajectory_id: int, quality: float) -> None:
        """End a trajectory with its quality in [0, 1] and learn from it."""
        pending = self._active.get(trajectory_id)
        quality = check_real(quality, "quality", 0.0, 1.0)
        if pending.record and pending.route:
            # Checked again here: several trajectories in flight may each carry a new route.
            self._check_route_room(pending.route)
        trajectory = self._active.pop(trajectory_id)
        # Disabling the engine also drops trajectories begun before it was disabled.
        if trajectory.record and self._enabled:
            self._record(trajectory, quality)

    def _record(self, trajectory: ActiveTrajectory, quality: float) -> None:
        x = self._project(trajectory.embedding[None, :])[0]
        route = self._register_route(trajectory.route) if trajectory.route else -1
        context = self._register_context(trajectory.context) if trajectory.context else -1
        target = step_target(trajectory.activations, trajectory.rewards)
        advantage = quality - self._baseline
        self._baseline += BASELINE_RATE * (quality - self._baseline)

        in_bank = self._record_in_bank(x, route, quality)
        self._buffer.add(x, quality, route, context, self._clock(), target, in_bank)
        self._counters["trajectories_recorded"] += 1
        self._counters["steps_recorded"] += len(trajectory.activations)
        if trajectory.attention_entropy:
            self._attention_entropy += 0.05 * (float(np.mean(trajectory.attention_entropy)) - self._attention_entropy)

        if self._detector.update(x):
            self._ewc.consolidate(self._model.slow_params())
            logger.info("task boundary detected after %d trajectories", self._counters["trajectories_recorded"])

        self._pending.append((x, route, quality, target, advantage))
        if len(self._pending) >= self.config.micro_batch_size:
            self._instant_update()

    def _record_in_bank(self, x: np.ndarray, route: int, quality: float) -> bool:
        if not len(self._bank):
            return False
        h = self._model.represent(x[None, :])
        self._bank.record_outcomes(h, np.array([route]), np.array([quality]))
        return True

    def _register_route(self, route: str) -> int:
        index = self._route_index.get(route)
        if index is None:
            index = len(self._routes)
            self._routes.append(route)
            self._route_index[route] = index
            self._model.add_route(prior=self._baseline)
            self._bank.add_route()
        return index

    def _register_context(self, context: str) -> int:
        index = self._context_index.get(context)
        if index is None:
            if len(self._contexts) >= MAX_CONTEXT_LABELS:
                return -1
            index = len(self._contexts)
            self._contexts.append(context)
            self._context_index[context] = index
        return index

    # Instant loop ---------------------------------------------------------

    def flush(self) -> int:
        """Apply the instant update to trajectories still waiting for a full micro-batch; return how many."""
        count = len(self._pending)
        if count:
            self._instant_update()
        return count

    def _instant_update(self) -> None:
        rows = self._pending
        self._pending = []
        batch = _make_batch(rows, self.config.hidden_dim)
        config = self.config
        # The instant loop steps MicroLoRA and the heads only: BaseLoRA is left to the background loop.
        grads = self._model.gradients(batch, base=False, micro=config.micro_lora_lr > 0)

        if config.micro_lora_lr > 0:
            grad_A, grad_B = (grad / len(rows) for grad in grads.micro)
            norm = float(np.sqrt(np.sum(grad_A**2) + np.sum(grad_B**2)))
            scale = config.micro_lora_lr * min(1.0, MAX_MICRO_GRAD_NORM / (norm + 1e-12))
            self._model.micro.lora_A -= (scale * grad_A).astype(self._model.dtype)
            self._model.micro.lora_B -= (scale * grad_B).astype(self._model.dtype)
        if config.head_lr > 0 and self._model.n_routes:
            route, error, h = grads.head_terms
            # Average each head's gradient over its own rows: summed over a
            # micro-batch of 128 or more, head_lr steps overshot and diverged.
            per_route = np.maximum(np.bincount(route.astype(np.intp), minlength=self._model.n_routes), 1)
            self._ewc.step("heads_W", self._model.heads_W, grads.heads_W / per_route[:, None], config.head_lr)
            self._ewc.step("heads_b", self._model.heads_b, grads.heads_b / per_route, config.head_lr)
            self._ewc.accumulate_rows("heads_W", route, (error[:, None] * h) ** 2, self._model.heads_W.shape)
            self._ewc.accumulate_rows("heads_b", route, error**2, self._model.heads_b.shape)
        self._counters["instant_updates"] += 1

    # Background loop ------------------------------------------------------

    def tick(self) -> dict | None:
        """Run a background cycle if ``background_interval_ms`` has passed and there is new data."""
        if not self._enabled:
            return None
        elapsed_ms = (self._clock() - self._last_cycle_time) * 1000.0
        has_new = self._buffer.new > 0 or bool(self._pending)
        if elapsed_ms < self.config.background_interval_ms or not has_new:
            return None
        return self.force_learn()

    def force_learn(self) -> dict:
        """Run a background cycle now and return its summary."""
        started = time.perf_counter()
        self.flush()
        new_rows = self._buffer.new_indices()
        old_rows = self._buffer.sample_old(self.config.replay_batch_size, self._rng)
        summary = {"new_trajectories": int(len(new_rows)), "replayed_trajectories": int(len(old_rows))}

        summary["replay_loss"] = self._consolidate(np.concatenate([new_rows, old_rows]))
        summary["micro_fold_residual"] = self._fold_micro()
        summary.update(self._update_bank(new_rows))
        self._buffer.new = 0

        self._counters["background_cycles"] += 1
        self._last_cycle_time = self._clock()
        self._last_cycle_ms = (time.perf_counter() - started) * 1000.0
        summary["cycle_ms"] = self._last_cycle_ms
        summary["patterns"] = len(self._bank)
        summary["ewc_tasks"] = self._ewc.tasks
        logger.debug("background cycle %s", summary)
        return summary

    def _consolidate(self, rows: np.ndarray) -> float:
        lr = self.config.base_lora_lr
        if lr <= 0 or not len(rows):
            return 0.0
        rows = rows[self._rng.permutation(len(rows))]
        total_loss = 0.0
        for start in range(0, len(rows), REPLAY_BATCH):
            batch = self._replay_batch(rows[start : start + REPLAY_BATCH])
            grads = self._model.gradients(batch, micro=False)
            total_loss += grads.loss
            self._apply_slow_step(grads, lr, len(batch.x))
        return total_loss / len(rows)

    def _apply_slow_step(self, grads, lr: float, count: int) -> None:
        # Mean rather than summed gradients: the step size then does not depend on the batch size.
        for index, layer in enumerate(self._model.base):
            grad_A, grad_B = grads.base[index]
            self._ewc.step(f"base{index}_A", layer.lora_A, grad_A / count, lr)
            self._ewc.step(f"base{index}_B", layer.lora_B, grad_B / count, lr)
            layer_in, grad_out = grads.layer_io[index]
            squared_A, squared_B = layer.squared_gradients(layer_in, grad_out)
            self._ewc.accumulate(f"base{index}_A", squared_A / count, count)
            self._ewc.accumulate(f"base{index}_B", squared_B / count, count)
        if self._model.n_routes:
            self._ewc.step("heads_W", self._model.heads_W, grads.heads_W / count, lr)
            self._ewc.step("heads_b", self._model.heads_b, grads.heads_b / count, lr)

    def _fold_micro(self) -> float:
        if self.config.base_lora_lr > 0:
            return self._model.fold_micro()
        self._model.micro.lora_B *= MICRO_DECAY
        return 0.0

    def _update_bank(self, rows: np.ndarray) -> dict:
        if self.config.pattern_clusters == 0 or not len(rows):
            return {"patterns_created": 0, "patterns_merged": 0, "good_trajectories": 0}
        buffer = self._buffer
        h = self._model.represent(buffer.embeddings[rows].astype(np.float32))
        labels = [self._contexts[c] if c >= 0 else None for c in buffer.context[rows]]
        return self._bank.update(
            h,
            buffer.route[rows].astype(np.int64),
            buffer.quality[rows].astype(np.float64),
            np.array(labels, dtype=object),
            self._clock(),
            self._rng,
            buffer.in_bank[rows],
        )

    def _replay_batch(self, rows: np.ndarray) -> Batch:
        buffer = self._buffer
        quality = buffer.quality[rows].astype(np.float64)
        has_target = buffer.has_target[rows]
        target = None
        if buffer.targets is not None and has_target.any():
            target = buffer.target_rows(rows)
        return Batch(
            x=buffer.embeddings[rows].astype(np.float32),
            route=buffer.route[rows].astype(np.int64),
            quality=quality,
            target=target,
            has_target=has_target,
            advantage=quality - self._baseline,
        )

    # Inference ------------------------------------------------------------

    def apply_micro_lora(self, x) -> np.ndarray:
        """Return ``x + scaling * lora_B @ (lora_A @ x)`` as float32 for x of shape (hidden_dim,) or (n, hidden_dim)."""
        rows, single = as_vectors(x, self.config.hidden_dim, "x")
        if not self._enabled:
            return rows[0].copy() if single else rows.copy()
        out = self._model.micro.forward(rows.astype(self._model.dtype, copy=False)).astype(np.float32)
        return out[0] if single else out

    def apply_base_lora(self, layer: int, x) -> np.ndarray:
        """Return BaseLoRA layer ``layer``'s adapted output as float32, same shapes as :meth:`apply_micro_lora`."""
        layers = len(self._model.base)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer must be an int, got {type(layer).__name__}")
        if not 0 <= layer < layers:
            raise ValueError(f"layer must be in [0, {layers - 1}] (base_lora_layers={layers}), got {layer}")
        rows, single = as_vectors(x, self.config.hidden_dim, "x")
        if not self._enabled:
            return rows[0].copy() if single else rows.copy()
        out = self._model.base[int(layer)].forward(rows.astype(self._model.dtype, copy=False)).astype(np.float32)
        return out[0] if single else out

    def transform(self, query_embedding) -> np.ndarray:
        """Return the full adapted representation ``h`` (float32) of query embeddings (embedding_dim,) or (n, embedding_dim)."""
        rows, single = as_vectors(query_embedding, self.config.embedding_dim, "query_embedding")
        h = self._represent(rows).astype(np.float32)
        return h[0] if single else h

    def predict_quality(self, query_embedding) -> dict[str, float]:
        """Return each known route's value-head estimate of quality for one query embedding."""
        x = as_vector(query_embedding, self.config.embedding_dim, "query_embedding")
        predicted = self._model.predict(self._represent(x[None, :]).astype(np.float64))[0]
        return {route: float(predicted[i]) for i, route in enumerate(self._routes)}

    def find_patterns(self, query_embedding, k: int = 5) -> list[dict]:
        """Return up to ``k`` learned patterns nearest to a query embedding (embedding_dim,), most similar first.

        Each is a dict with id, centroid (float32), cluster_size, total_weight,
        avg_quality, created_at, last_accessed, access_count, pattern_type,
        route_stats ({route: {count, mean_quality}}) and similarity. The
        returned patterns' access statistics are updated.
        """
        x = as_vector(query_embedding, self.config.embedding_dim, "query_embedding")
        k = check_int(k, "k", 1, 1000)
        if not self._enabled or not len(self._bank):
            return []
        h = self._represent(x[None, :])[0].astype(np.float64)
        indices, similarity = self._bank.nearest(h, int(k))
        self._bank.touch(indices, self._clock())
        return self._bank.describe(indices, similarity, self._routes)

    def _project(self, rows: np.ndarray) -> np.ndarray:
        """Map query embeddings to unit-norm rows of hidden_dim.

        Only a query's direction matters to the engine (patterns compare by
        cosine), and unit norm bounds every gradient: a query of norm 17 made
        float32 MicroLoRA gradients overflow before this normalisation.
        """
        rows = rows if self._projection is None else rows @ self._projection
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)

    def _represent(self, rows: np.ndarray) -> np.ndarray:
        if not self._enabled:
            return self._project(rows)
        return self._model.represent(self._project(rows))

    # Control and inspection -----------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
        self._enabled = enabled

    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def routes(self) -> list[str]:
        return list(self._routes)

    def stats(self) -> dict:
        """Return counters and sizes as a dict of plain Python values."""
        return {
            **self._counters,
            "active_trajectories": len(self._active),
            "buffered_trajectories": self._buffer.size,
            "new_trajectories": self._buffer.new,
            "expired_trajectories": self._active.expired,
            "dropped_trajectories": self._buffer.dropped,
            "pending_updates": len(self._pending),
            "patterns": len(self._bank),
            "pattern_inertia": self._bank.inertia,
            "routes": len(self._routes),
            "ewc_tasks": self._ewc.tasks,
            "boundary_statistic": self._detector.last_statistic,
            "quality_baseline": self._baseline,
            "mean_attention_entropy": self._attention_entropy,
            "last_cycle_ms": self._last_cycle_ms,
            "buffer_bytes": self._buffer.nbytes(),
            "enabled": self._enabled,
        }

    def get_stats(self) -> str:
        """Return :meth:`stats` as a JSON string."""
        return json.dumps(self.stats())

    # Persistence ----------------------------------------------------------

    def save_state(self) -> bytes:
        """Serialise everything learned (not trajectories still in flight) to bytes; see :mod:`sona_web.state`."""
        from ._engine_state import engine_to_state

        return engine_to_state(self)

    @classmethod
    def load_state(cls, data, *, clock: Callable[[], float] | None = None) -> "SonaEngine":
        """Rebuild an engine from :meth:`save_state` bytes; raise ``ValueError`` on damaged or foreign data."""
        from ._engine_state import engine_from_state

        return engine_from_state(cls, data, clock)


class SonaEngineBuilder:
    """Fluent construction: ``SonaEngine.builder().hidden_dim(256).preset("max_quality").build()``."""

    def __init__(self):
        self._preset = "default"
        self._config: SonaConfig | None = None
        self._overrides: dict = {}
        self._clock = None

    def hidden_dim(self, value: int) -> "SonaEngineBuilder":
        self._overrides["hidden_dim"] = value
        self._overrides.setdefault("embedding_dim", value)
        return self

    def embedding_dim(self, value: int) -> "SonaEngineBuilder":
        self._overrides["embedding_dim"] = value
        return self

    def preset(self, name: str) -> "SonaEngineBuilder":
        self._preset = name
        return self

    def config(self, config: SonaConfig) -> "SonaEngineBuilder":
        if not isinstance(config, SonaConfig):
            raise TypeError(f"config must be a SonaConfig, got {type(config).__name__}")
        self._config = config
        return self

    def set(self, **fields) -> "SonaEngineBuilder":
        self._overrides.update(fields)
        return self

    def clock(self, clock: Callable[[], float]) -> "SonaEngineBuilder":
        self._clock = clock
        return self

    def build(self) -> SonaEngine:
        if self._config is not None and self._preset != "default":
            raise ValueError(
                f"builder got both preset({self._preset!r}) and config(...); use one of them"
            )
        if self._config is not None:
            config = self._config.replace(**self._overrides)
        else:
            config = SonaConfig.preset(self._preset, **self._overrides)
        return SonaEngine.with_config(config, clock=self._clock)


def _make_batch(rows: list[tuple], dim: int) -> Batch:
    x = np.stack([row[0] for row in rows])
    route = np.array([row[1] for row in rows], dtype=np.int64)
    quality = np.array([row[2] for row in rows], dtype=np.float64)
    advantage = np.array([row[4] for row in rows], dtype=np.float64)
    has_target = np.array([row[3] is not None for row in rows])
    target = None
    if has_target.any():
        target = np.zeros((len(rows), dim))
        for i, row in enumerate(rows):
            if row[3] is not None:
                target[i] = row[3]
    return Batch(x, route, quality, target, has_target, advantage)


def _normalised_entropy(weights: np.ndarray) -> float:
    """Entropy of the attention distribution divided by its maximum, in [0, 1]."""
    # float64: in float32 a sum of large weights overflows, and a subnormal
    # weight divided by the total underflows to 0, whose log is -inf.
    weights = weights.astype(np.float64)
    total = float(weights.sum())
    if weights.size < 2 or total <= 0:
        return 0.0
    p = weights / total
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(weights.size))
