"""Names of the routers the evaluation can run, and how each is built.

A router is built fresh for every (seed, cost weight) run from a
:class:`RouterContext`. The names, in the order the harness runs them:

``always_weak``, ``always_strong``: the cheapest and the dearest model.
``egreedy``, ``linucb``, ``knn``, ``thompson_kmeans``: the baselines of
:mod:`sona_web.eval.baselines` at their default hyper-parameters.
``sona`` and its ablations ``sona_no_micro_lora``, ``sona_no_base_lora``,
``sona_no_ewc``, ``sona_no_reasoning_bank``, ``sona_no_linear_prior``:
sona-web's ``AdaptiveRouter``.
``random``: random routing at the per-model shares of the matched router
(``sona`` by default) in the same seed and cost weight run.
``vw_cb_adf``, ``river_linucb``: optional, when those packages are installed.
``river_linucb`` takes milliseconds per update, so it runs only when named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import baselines, extras, sona_adapter

__all__ = [
    "DEFAULT_OPTIONAL_ROUTERS",
    "DEFAULT_ROUTERS",
    "OPTIONAL_ROUTERS",
    "RouterContext",
    "make_router",
    "missing_dependency",
]


@dataclass(frozen=True)
class RouterContext:
    """Inputs of a router factory.

    ``costs`` are normalised to [0, 1]; ``shares`` (per-model call shares of
    the matched router, or ``None``) is read only by ``random``.
    """

    model_names: tuple[str, ...]
    dim: int
    costs: np.ndarray
    cost_weight: float
    seed: int
    shares: np.ndarray | None = None

    @property
    def n_models(self) -> int:
        return len(self.model_names)


def _random(context: RouterContext):
    shares = context.shares
    if shares is None:
        shares = np.full(context.n_models, 1.0 / context.n_models)
    return baselines.RandomRouter(shares, seed=context.seed)


_FACTORIES: dict[str, Callable[[RouterContext], baselines.Router]] = {
    "always_weak": lambda c: baselines.FixedRouter(int(np.argmin(c.costs)), name="always_weak"),
    "always_strong": lambda c: baselines.FixedRouter(int(np.argmax(c.costs)), name="always_strong"),
    "egreedy": lambda c: baselines.EpsilonGreedyRouter(c.n_models, c.dim, seed=c.seed),
    "linucb": lambda c: baselines.LinUCBRouter(c.n_models, c.dim, seed=c.seed),
    "knn": lambda c: baselines.KNNRouter(c.n_models, c.dim, seed=c.seed),
    "thompson_kmeans": lambda c: baselines.KMeansThompsonRouter(c.n_models, c.dim, seed=c.seed),
    "random": _random,
    "vw_cb_adf": lambda c: extras.VowpalWabbitRouter(c.n_models, seed=c.seed),
    "river_linucb": lambda c: extras.RiverLinUCBRouter(c.n_models, seed=c.seed),
}
for _variant in sona_adapter.VARIANTS:
    _FACTORIES[_variant] = lambda c, _v=_variant: sona_adapter.SonaRouter(
        c.model_names, c.costs, c.cost_weight, c.dim, c.seed, variant=_v
    )

DEFAULT_ROUTERS: tuple[str, ...] = (
    "always_weak",
    "always_strong",
    *sona_adapter.VARIANTS,
    "egreedy",
    "linucb",
    "knn",
    "thompson_kmeans",
    "random",
)
OPTIONAL_ROUTERS: tuple[str, ...] = ("vw_cb_adf", "river_linucb")
DEFAULT_OPTIONAL_ROUTERS: tuple[str, ...] = ("vw_cb_adf",)


def missing_dependency(name: str) -> str | None:
    """Return why router ``name`` cannot run here, or ``None`` when it can.

    Raises ``KeyError`` for an unknown name.
    """
    if name not in _FACTORIES:
        raise KeyError(f"unknown router {name!r}; known routers are {sorted(_FACTORIES)}")
    if name in OPTIONAL_ROUTERS:
        return extras.missing_extra(name)
    if name in sona_adapter.VARIANTS:
        return sona_adapter.missing_reason(name)
    return None


def make_router(name: str, context: RouterContext) -> baselines.Router:
    """Build a fresh router called ``name``; raises ``KeyError`` for an unknown name."""
    if name not in _FACTORIES:
        raise KeyError(f"unknown router {name!r}; known routers are {sorted(_FACTORIES)}")
    router = _FACTORIES[name](context)
    router.name = name
    return router
