"""Trajectories in flight and the replay buffer of ended ones.

An active trajectory keeps its steps' activations until it ends. Then only
what learning needs is stored: the query embedding (float16), the
reward-weighted target of its steps (int8 with a scale, only when it had
steps), the quality, the route and the context label. That keeps a stored
256-d trajectory near 530 bytes, or 790 with steps.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ActiveTrajectory", "ActiveSet", "ReplayBuffer", "step_target"]


@dataclass
class ActiveTrajectory:
    embedding: np.ndarray
    activations: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    attention_entropy: list = field(default_factory=list)
    route: str | None = None
    context: str | None = None
    # False for trajectories begun while the engine was disabled: their later
    # calls are accepted and ignored, so the app's flow does not break.
    record: bool = True


def step_target(activations: list, rewards: list) -> np.ndarray | None:
    """Return the softmax(reward)-weighted mean of the steps' activations, or None without steps.

    The softmax keeps every weight positive, so the target stays a convex
    combination of what the model actually produced, and the best-rewarded
    steps dominate it.
    """
    if not activations:
        return None
    rewards_array = np.asarray(rewards, dtype=np.float64)
    weights = np.exp(rewards_array - rewards_array.max())
    weights /= weights.sum()
    return (weights @ np.asarray(activations, dtype=np.float64)).astype(np.float32)


class ActiveSet:
    """Begun, unended trajectories, bounded: beginning one more expires the oldest."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: OrderedDict[int, ActiveTrajectory] = OrderedDict()
        self.expired = 0

    def add(self, trajectory_id: int, trajectory: ActiveTrajectory) -> None:
        while len(self.items) >= self.capacity:
            self.items.popitem(last=False)
            self.expired += 1
        self.items[trajectory_id] = trajectory

    def get(self, trajectory_id) -> ActiveTrajectory:
        if isinstance(trajectory_id, bool) or not isinstance(trajectory_id, (int, np.integer)):
            raise TypeError(f"trajectory_id must be an int, got {type(trajectory_id).__name__}")
        try:
            return self.items[int(trajectory_id)]
        except KeyError:
            raise KeyError(
                f"unknown trajectory_id {trajectory_id}: it was never begun, has already ended, "
                f"or expired (at most {self.capacity} trajectories stay active); call begin_trajectory first"
            ) from None

    def pop(self, trajectory_id: int) -> ActiveTrajectory:
        return self.items.pop(int(trajectory_id))

    def __len__(self) -> int:
        return len(self.items)


class ReplayBuffer:
    """A ring buffer of ended trajectories stored column-wise.

    ``new`` counts the trajectories added since the last background cycle;
    they sit just before ``head`` in the ring.
    """

    def __init__(self, capacity: int, dim: int):
        self.capacity = capacity
        self.dim = dim
        self.embeddings = np.zeros((capacity, dim), dtype=np.float16)
        self.quality = np.zeros(capacity, dtype=np.float32)
        self.route = np.full(capacity, -1, dtype=np.int16)
        self.context = np.full(capacity, -1, dtype=np.int32)
        self.time = np.zeros(capacity, dtype=np.float64)
        self.has_target = np.zeros(capacity, dtype=bool)
        # True once the outcome reached a pattern's route statistics.
        self.in_bank = np.zeros(capacity, dtype=bool)
        # Allocated on the first trajectory with steps: most router traffic has none.
        self.targets: np.ndarray | None = None
        self.target_scale: np.ndarray | None = None
        self.head = 0
        self.size = 0
        self.new = 0
        self.dropped = 0

    def add(self, embedding, quality, route, context, time, target, in_bank: bool) -> None:
        slot = self.head
        if self.size == self.capacity:
            self.dropped += 1
        self.embeddings[slot] = embedding
        self.quality[slot] = quality
        self.route[slot] = route
        self.context[slot] = context
        self.time[slot] = time
        self.has_target[slot] = target is not None
        self.in_bank[slot] = in_bank
        if target is not None:
            if self.targets is None:
                self._allocate_targets()
            # int8 with one scale per row: the cosine objective ignores the
            # target's length, and rounding kept the cosine to the original
            # above 0.9998 on heavy-tailed random 256-d vectors.
            # The scale is rounded to float32 before the division. A target
            # near the smallest float32 has a scale of 0 in float32, so it is
            # stored as zeros instead of dividing by zero.
            scale = np.float32(float(np.abs(target).max()) / 127.0)
            self.target_scale[slot] = scale
            self.targets[slot] = np.round(target / scale) if scale > 0 else 0
        self.head = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.new = min(self.new + 1, self.capacity)

    def _allocate_targets(self) -> None:
        self.targets = np.zeros((self.capacity, self.dim), dtype=np.int8)
        self.target_scale = np.zeros(self.capacity, dtype=np.float32)

    def target_rows(self, rows: np.ndarray) -> np.ndarray:
        """Return the step targets of slots ``rows`` as float64 (zeros where a trajectory had no steps)."""
        return self.targets[rows].astype(np.float64) * self.target_scale[rows, None]

    def new_indices(self) -> np.ndarray:
        return (self.head - 1 - np.arange(self.new)[::-1]) % self.capacity

    def sample_old(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Draw up to ``count`` distinct slots among those not in the newest batch."""
        old = self.size - self.new
        if old <= 0 or count <= 0:
            return np.zeros(0, dtype=np.int64)
        picks = rng.choice(old, size=min(count, old), replace=False)
        return (self.head - self.new - 1 - picks) % self.capacity

    def nbytes(self) -> int:
        arrays = [self.embeddings, self.quality, self.route, self.context, self.time, self.has_target, self.in_bank]
        total = sum(a.nbytes for a in arrays)
        if self.targets is not None:
            total += self.targets.nbytes + self.target_scale.nbytes
        return total

    def state(self) -> dict[str, np.ndarray]:
        # Until the ring wraps, slots [0, size) are the only ones in use.
        used = slice(0, self.size)
        arrays = {
            name: getattr(self, name)[used]
            for name in ("embeddings", "quality", "route", "context", "time", "has_target", "in_bank")
        }
        arrays["counters"] = np.array([self.head, self.size, self.new, self.dropped], dtype=np.int64)
        if self.targets is not None:
            arrays["targets"] = self.targets[used]
            arrays["target_scale"] = self.target_scale[used]
        return arrays

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.head, self.size, self.new, self.dropped = (int(v) for v in arrays["counters"])
        if not 0 <= self.size <= self.capacity or not 0 <= self.head < self.capacity:
            raise ValueError(f"buffer counters head={self.head}, size={self.size} do not fit capacity {self.capacity}")
        used = slice(0, self.size)
        for name in ("embeddings", "quality", "route", "context", "time", "has_target", "in_bank"):
            getattr(self, name)[used] = arrays[name]
        if "targets" in arrays:
            self._allocate_targets()
            self.targets[used] = arrays["targets"]
            self.target_scale[used] = arrays["target_scale"]
        else:
            self.targets = None
            self.target_scale = None
