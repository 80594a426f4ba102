"""Optional routers backed by other libraries, used only when they are installed.

* ``vw_cb_adf``: Vowpal Wabbit's contextual bandit with action-dependent
  features (``--cb_explore_adf``, epsilon-greedy exploration at VW's default
  epsilon 0.05), tested with vowpalwabbit 9.11.9. The query is a shared
  namespace ``s``, each model an action namespace ``a`` holding its index,
  and ``-q sa`` crosses them so that every model gets its own weights on the
  query (the disjoint setting of LinUCB).
* ``river_linucb``: River's ``bandit.LinUCBDisjoint`` with its defaults,
  tested with river 0.26.1. River's own documentation calls it too slow for
  practical use, and it is: run it on ``--quick`` or a small ``--limit``.

Neither library is a dependency of sona_web; :func:`missing_extra` tells why
one is unavailable.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from .baselines import Router

__all__ = ["RiverLinUCBRouter", "VowpalWabbitRouter", "missing_extra"]

_MODULES = {"vw_cb_adf": "vowpalwabbit", "river_linucb": "river"}


def missing_extra(name: str) -> str | None:
    """Return why the optional router ``name`` cannot run, or ``None`` when it can."""
    module = _MODULES[name]
    if importlib.util.find_spec(module) is None:
        return f"{name} skipped: the Python package {module!r} is not installed (pip install {module})"
    return None


def _dense_features(x: np.ndarray) -> str:
    return " ".join(f"{i}:{value:.6g}" for i, value in enumerate(x) if value != 0.0)


class VowpalWabbitRouter(Router):
    """Route with ``vowpalwabbit.Workspace("--cb_explore_adf ...")``; VW minimises cost, so cost = -reward."""

    name = "vw_cb_adf"

    def __init__(self, n_models: int, seed: int = 0) -> None:
        import vowpalwabbit

        self.n_models = n_models
        self._workspace = vowpalwabbit.Workspace(f"--cb_explore_adf -q sa --quiet --random_seed {seed}")
        self._rng = np.random.default_rng(seed)
        self._last_pmf: list[float] = []

    def _example(self, x: np.ndarray, label: tuple[int, float, float] | None = None) -> list[str]:
        lines = [f"shared |s {_dense_features(x)}"]
        for index in range(self.n_models):
            prefix = ""
            if label is not None and label[0] == index:
                prefix = f"0:{label[1]:.6g}:{label[2]:.6g} "
            lines.append(f"{prefix}|a m{index}")
        return lines

    def route(self, x):
        pmf = np.asarray(self._workspace.predict(self._example(x)), dtype=np.float64)
        pmf = pmf / pmf.sum()
        index = int(min(np.searchsorted(np.cumsum(pmf), self._rng.random(), side="right"), self.n_models - 1))
        self._last_pmf = pmf.tolist()
        return index, float(pmf[index])

    def update(self, x, model_index, reward):
        # The probability that VW logged for the chosen action weights its
        # importance-weighted update; the harness always calls update right
        # after route on the same x.
        probability = self._last_pmf[model_index] if self._last_pmf else 1.0 / self.n_models
        self._workspace.learn(self._example(x, (model_index, -reward, probability)))

    def close(self) -> None:
        self._workspace.finish()


class RiverLinUCBRouter(Router):
    """Route with ``river.bandit.LinUCBDisjoint`` on the embedding as a dict of features."""

    name = "river_linucb"

    def __init__(self, n_models: int, seed: int = 0) -> None:
        from river import bandit

        self.n_models = n_models
        self._policy = bandit.LinUCBDisjoint(seed=seed)
        self._arms = list(range(n_models))

    @staticmethod
    def _context(x: np.ndarray) -> dict[int, float]:
        return {i: float(value) for i, value in enumerate(x)}

    def route(self, x):
        return int(self._policy.pull(self._arms, context=self._context(x))), 1.0

    def update(self, x, model_index, reward):
        self._policy.update(model_index, self._context(x), float(reward))
