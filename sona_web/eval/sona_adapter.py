"""sona-web's ``AdaptiveRouter`` behind the evaluation's router interface, with its ablations.

``AdaptiveRouter`` learns the quality of each model and subtracts its own
``cost_weight * cost`` when it decides. So the adapter passes it the cost
weight lambda and the normalised costs, and reports the outcome (reward plus
``lambda * cost`` of the chosen model) rather than the reward.

The engine stamps patterns and trajectories with a clock. The adapter gives
it a clock that advances one second per recorded outcome instead of the wall
clock, so that a replay makes the same decisions however fast it runs.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from .baselines import Router

__all__ = ["ABLATIONS", "VARIANTS", "SonaRouter", "missing_reason"]

# Config overrides that switch one component off, per variant, as SonaConfig
# documents them. base_lora_lr=0 also stops the background replay of the value
# heads, and MicroLoRA then decays instead of being folded into BaseLoRA, so
# that ablation removes the whole background consolidation.
ABLATIONS: dict[str, dict[str, float | int]] = {
    "sona": {},
    "sona_no_micro_lora": {"micro_lora_lr": 0.0},
    "sona_no_base_lora": {"base_lora_lr": 0.0},
    "sona_no_ewc": {"ewc_lambda": 0.0},
    "sona_no_reasoning_bank": {"pattern_clusters": 0},
    "sona_no_linear_prior": {},
}
# AdaptiveRouter arguments per variant, for the parts that belong to the
# router rather than the engine. Without its ridge prior the router falls
# back to the engine's value heads, as it did before the prior existed.
ROUTER_OPTIONS: dict[str, dict[str, bool]] = {"sona_no_linear_prior": {"linear_prior": False}}
VARIANTS: tuple[str, ...] = tuple(ABLATIONS)


def missing_reason(name: str) -> str | None:
    """Return why the sona variant ``name`` cannot run, or ``None`` when it can."""
    if importlib.util.find_spec("sona_web.router") is None:
        return f"{name} skipped: sona_web.router (AdaptiveRouter) is not available in this checkout"
    return None


class SonaRouter(Router):
    """Adapter around ``sona_web.AdaptiveRouter`` for one cost weight and one seed."""

    def __init__(self, model_names, costs, cost_weight: float, dim: int, seed: int, variant: str = "sona") -> None:
        from sona_web.config import SonaConfig
        from sona_web.router import AdaptiveRouter

        if variant not in ABLATIONS:
            raise KeyError(f"unknown sona variant {variant!r}; expected one of {VARIANTS}")
        self.name = variant
        self._costs = np.asarray(costs, dtype=np.float64)
        self._cost_weight = float(cost_weight)
        config = SonaConfig.default(embedding_dim=dim, hidden_dim=dim, seed=seed, **ABLATIONS[variant])
        models = [(str(name), float(cost)) for name, cost in zip(model_names, self._costs)]
        self._now = 0.0
        self._router = AdaptiveRouter(
            models,
            config=config,
            seed=seed,
            cost_weight=self._cost_weight,
            clock=self._clock,
            **ROUTER_OPTIONS.get(variant, {}),
        )

    def _clock(self) -> float:
        return self._now

    def route(self, x):
        decision = self._router.route(x)
        return int(decision.model_index), float(decision.probability)

    def update(self, x, model_index, reward):
        quality = reward + self._cost_weight * self._costs[model_index]
        # Rounding can push reward + lambda * cost a hair outside [0, 1].
        quality = min(1.0, max(0.0, quality))
        self._router.record_outcome(x, int(model_index), quality)
        self._now += 1.0
