"""Conversion between an AdaptiveRouter and the bytes of :mod:`sona_web.state`."""

from __future__ import annotations

from collections import deque

import numpy as np

from . import state as state_format

__all__ = ["router_from_state", "router_to_state"]

KIND = "sona_web.AdaptiveRouter"


def router_to_state(router) -> bytes:
    arrays = {
        "engine": np.frombuffer(router.engine.save_state(), dtype=np.uint8),
        "count": router._count,
        "mean": router._mean,
        "sq_dev": router._sq_dev,
        "latency": router._latency,
        "prior_a_inv": router._prior.a_inv,
        "prior_b": router._prior.b,
        "gap_sq": router._gap_sq,
        "gap_noise": router._gap_noise,
        "gap_count": router._gap_count,
    }
    meta = {
        "models": router.models,
        "costs": router.costs.tolist(),
        "cost_weight": router.cost_weight,
        "exploration": router.exploration,
        "n_patterns": router.n_patterns,
        "learn_every": router.learn_every,
        "ridge": router.ridge,
        "linear_prior": router.linear_prior,
        "outcomes": router._outcomes,
        "rng": router._rng.bit_generator.state,
        "decisions": list(router._decisions),
    }
    return state_format.pack(KIND, meta, arrays)


def router_from_state(cls, data, clock):
    meta, arrays = state_format.unpack(data, KIND)
    from .engine import SonaEngine

    try:
        engine = SonaEngine.load_state(arrays["engine"].tobytes(), clock=clock)
        router = cls(
            list(zip(meta["models"], meta["costs"])),
            engine.config,
            cost_weight=meta["cost_weight"],
            exploration=meta["exploration"],
            n_patterns=meta["n_patterns"],
            learn_every=meta["learn_every"],
            ridge=meta["ridge"],
            linear_prior=meta["linear_prior"],
            clock=clock,
        )
        router.engine = engine
        for name in ("count", "mean", "sq_dev", "latency", "gap_sq", "gap_noise", "gap_count"):
            value = np.array(arrays[name], dtype=np.float64)
            if value.shape != (len(router.models),):
                raise ValueError(f"array {name} has shape {value.shape}, expected ({len(router.models)},)")
            setattr(router, f"_{name}", value)
        router._prior.load(arrays["prior_a_inv"], arrays["prior_b"])
        router._outcomes = int(meta["outcomes"])
        router._rng.bit_generator.state = meta["rng"]
        router._decisions = deque(meta["decisions"], maxlen=router._decisions.maxlen)
    except (KeyError, TypeError, IndexError) as error:
        raise ValueError(f"router state is incomplete or inconsistent: missing or malformed {error}") from None
    return router
