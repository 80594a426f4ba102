"""Engine configuration: one dataclass, five named presets, one validation routine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRESETS", "SonaConfig"]


def _help(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass
class SonaConfig:
    """Settings of a :class:`~sona_web.engine.SonaEngine`.

    Each field's help text is in ``dataclasses.fields(SonaConfig)[i].metadata["help"]``
    and in docs/configuration.md. A learning rate or ``ewc_lambda`` of 0 and
    ``pattern_clusters=0`` switch the matching component off, which is how the
    ablations are run.
    """

    hidden_dim: int = _help("Width of the adapted representation and of step activations.", default=256)
    embedding_dim: int = _help(
        "Length of query embeddings passed to begin_trajectory. When it differs from hidden_dim, "
        "a fixed seeded random projection (Johnson-Lindenstrauss) maps queries to hidden_dim.",
        default=256,
    )
    micro_lora_rank: int = _help("Rank of the instant MicroLoRA adapter: 1 or 2.", default=2)
    micro_lora_alpha: float = _help("MicroLoRA output scaling is micro_lora_alpha / micro_lora_rank.", default=2.0)
    micro_lora_lr: float = _help("Learning rate of MicroLoRA in the instant loop; 0 freezes it.", default=0.1)
    head_lr: float = _help(
        "Learning rate of the per-route value heads in the instant loop; 0 leaves them to consolidation.",
        default=0.1,
    )
    base_lora_rank: int = _help("Rank of each BaseLoRA layer, 4 to 64.", default=8)
    base_lora_alpha: float = _help("BaseLoRA output scaling is base_lora_alpha / base_lora_rank.", default=8.0)
    base_lora_layers: int = _help("Number of stacked BaseLoRA layers, 1 to 8.", default=1)
    base_lora_lr: float = _help(
        "Learning rate of background consolidation. 0 freezes BaseLoRA and the background head "
        "updates, and MicroLoRA then decays instead of being folded into BaseLoRA.",
        default=0.02,
    )
    ewc_lambda: float = _help("Strength of the EWC++ penalty; 0 disables it.", default=2.0)
    ewc_fisher_alpha: float = _help(
        "Weight of the newest squared gradient in the running Fisher estimate, in (0, 1].", default=0.02
    )
    ewc_boundary_threshold: float = _help(
        "Task-boundary detector threshold: the shift statistic, which averages about 1 on a "
        "stationary stream, must stay above it for ewc_boundary_patience trajectories.",
        default=4.0,
    )
    ewc_boundary_patience: int = _help(
        "Consecutive trajectories above the threshold before a task boundary is recorded.", default=8
    )
    pattern_clusters: int = _help(
        "Maximum number of ReasoningBank patterns; 0 disables the pattern store.", default=64
    )
    pattern_decay: float = _help(
        "Factor applied to every pattern's weight per background cycle; unused patterns fade and "
        "are pruned first when the store is full.",
        default=0.995,
    )
    pattern_stats_decay: float = _help(
        "Factor applied to a route's statistics in a pattern each time a new outcome of that route "
        "reaches the pattern, in (0, 1]. Below 1 the router forgets old evidence (discounted "
        "Thompson sampling) and recovers after a route's quality changes; 1 keeps all evidence.",
        default=0.995,
    )
    quality_threshold: float = _help(
        "Trajectories with quality >= this value shape pattern centroids; all feed route statistics.",
        default=0.5,
    )
    trajectory_capacity: int = _help("Size of the replay buffer of ended trajectories.", default=10_000)
    max_active_trajectories: int = _help(
        "Begun but unended trajectories kept at once; beyond it the oldest expire.", default=1024
    )
    max_steps_per_trajectory: int = _help(
        "Steps kept per trajectory; later steps are rejected with ValueError.", default=256
    )
    micro_batch_size: int = _help(
        "Ended trajectories collected before one instant update; flush() applies a partial batch.", default=1
    )
    replay_batch_size: int = _help(
        "Older buffered trajectories replayed per background cycle besides the new ones.", default=256
    )
    background_interval_ms: int = _help("Minimum time between background cycles started by tick().", default=10_000)
    enable_simd: bool = _help(
        "Compute in float32, which numpy's SIMD kernels process twice as wide as float64. False "
        "computes adapters in float64 and rounds the result to float32, as a precise reference.",
        default=True,
    )
    seed: int = _help("Seed of the engine's random generator (initialisation, replay sampling, exploration).", default=0)

    @classmethod
    def default(cls, **overrides: Any) -> "SonaConfig":
        """Balanced settings for a router or chat app at 256 dimensions."""
        return cls.preset("default", **overrides)

    @classmethod
    def max_throughput(cls, **overrides: Any) -> "SonaConfig":
        """Rank-1 MicroLoRA, updates in batches of 16, fewer patterns, less replay."""
        return cls.preset("max_throughput", **overrides)

    @classmethod
    def max_quality(cls, **overrides: Any) -> "SonaConfig":
        """Rank-16 BaseLoRA over two layers, more patterns, more replay, frequent cycles."""
        return cls.preset("max_quality", **overrides)

    @classmethod
    def edge_deployment(cls, **overrides: Any) -> "SonaConfig":
        """Small footprint: 128 dimensions, rank-4 BaseLoRA, a 1,000-trajectory buffer."""
        return cls.preset("edge_deployment", **overrides)

    @classmethod
    def batch_processing(cls, **overrides: Any) -> "SonaConfig":
        """Large buffers and batches of 32 for offline replay of logged traffic."""
        return cls.preset("batch_processing", **overrides)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SonaConfig":
        """Build the preset called ``name`` with ``overrides`` applied, then validate it."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        config = cls.from_dict({**PRESETS[name], **overrides})
        return config

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SonaConfig":
        """Build a validated config from a mapping; unknown keys raise ``KeyError``."""
        if not isinstance(values, dict):
            raise TypeError(f"config must be a dict, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown config field(s) {unknown}; valid fields are {sorted(known)}")
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "SonaConfig":
        """Return a validated copy with ``changes`` applied."""
        return SonaConfig.from_dict({**self.to_dict(), **changes})

    def validate(self) -> "SonaConfig":
        """Check every field; raise ``TypeError`` or ``ValueError`` naming the field, rule and value."""
        for item in dataclasses.fields(self):
            _check_type(item.name, getattr(self, item.name), item.type)
        for name, low, high in _RANGES:
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
        if self.micro_lora_rank not in (1, 2):
            raise ValueError(
                f"micro_lora_rank must be 1 or 2, got {self.micro_lora_rank}: MicroLoRA is the "
                "instant, low-rank adapter; put deeper adaptation in base_lora_rank (4 to 64)"
            )
        if self.base_lora_rank > self.hidden_dim:
            raise ValueError(
                f"base_lora_rank must be <= hidden_dim={self.hidden_dim}, got {self.base_lora_rank}: "
                "a low-rank adapter cannot have more directions than its width"
            )
        if not 0.0 < self.ewc_fisher_alpha <= 1.0:
            raise ValueError(f"ewc_fisher_alpha must be in (0, 1], got {self.ewc_fisher_alpha}")
        for name in ("pattern_decay", "pattern_stats_decay"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        return self


# Field -> (low, high) bounds checked by validate(); the bounds keep every
# array small enough for a browser tab and every rate in a stable range.
_RANGES = [
    ("hidden_dim", 4, 8192),
    ("embedding_dim", 2, 8192),
    # A zero alpha would zero the scaling that merging divides by; a learning rate of 0 switches learning off.
    ("micro_lora_alpha", 1e-3, 1e3),
    ("micro_lora_lr", 0.0, 10.0),
    ("head_lr", 0.0, 10.0),
    ("base_lora_rank", 4, 64),
    ("base_lora_alpha", 1e-3, 1e3),
    ("base_lora_layers", 1, 8),
    ("base_lora_lr", 0.0, 10.0),
    ("ewc_lambda", 0.0, 1e6),
    ("ewc_boundary_threshold", 1.0, 1e6),
    ("ewc_boundary_patience", 1, 100_000),
    ("pattern_clusters", 0, 4096),
    ("quality_threshold", 0.0, 1.0),
    ("trajectory_capacity", 1, 1_000_000),
    ("max_active_trajectories", 1, 1_000_000),
    ("max_steps_per_trajectory", 1, 65_536),
    ("micro_batch_size", 1, 4096),
    ("replay_batch_size", 0, 1_000_000),
    ("background_interval_ms", 0, 86_400_000),
    ("seed", 0, 2**63 - 1),
]

_TYPES = {"int": int, "float": float, "bool": bool}


def _check_type(name: str, value: Any, annotation: str) -> None:
    expected = _TYPES[annotation]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if expected is not bool and isinstance(value, bool) or not isinstance(value, expected):
        raise TypeError(f"{name} must be {annotation}, got {type(value).__name__} {value!r}")


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "max_throughput": {
        "micro_lora_rank": 1,
        "micro_lora_alpha": 1.0,
        "micro_batch_size": 16,
        "pattern_clusters": 32,
        "replay_batch_size": 64,
        "background_interval_ms": 30_000,
    },
    "max_quality": {
        "base_lora_rank": 16,
        "base_lora_alpha": 16.0,
        "base_lora_layers": 2,
        "pattern_clusters": 256,
        "replay_batch_size": 1024,
        "background_interval_ms": 5_000,
    },
    "edge_deployment": {
        "hidden_dim": 128,
        "embedding_dim": 128,
        "base_lora_rank": 4,
        "base_lora_alpha": 4.0,
        "pattern_clusters": 32,
        "trajectory_capacity": 1_000,
        "max_active_trajectories": 128,
        "replay_batch_size": 64,
    },
    "batch_processing": {
        "micro_batch_size": 32,
        "trajectory_capacity": 100_000,
        "replay_batch_size": 2048,
        "pattern_clusters": 256,
        "background_interval_ms": 60_000,
    },
}
