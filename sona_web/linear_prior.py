"""RidgePrior: an exact online Bayesian linear model of each model's quality.

The router needs a global estimate of every model's quality on a query, one
that is right on average before the ReasoningBank has local evidence. A value
head trained by stochastic gradient steps in background cycles lags behind the
data and gives no measure of its own uncertainty. A ridge regression per model
on ``[x, 1]`` is exact after every outcome. Its posterior variance gives the
number of observations its prediction is worth at a query, so the router can
weigh it against the patterns' counts without a hand-set constant.

``A^-1`` (with ``A = ridge * I + sum z z^T``) is updated by the
Sherman-Morrison formula: an outcome costs O(d^2), not an O(d^3) inversion.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RidgePrior"]


class RidgePrior:
    """One ridge regression of quality on ``[x, 1]`` per model.

    Parameters
    ----------
    n_models : int
        Number of models (rows of every array).
    dim : int
        Length of the feature vectors ``x``; a constant 1 is appended.
    ridge : float
        Strength of the zero-mean Gaussian prior on the weights, in
        observations: ``ridge=1`` counts as one observation per direction.
    """

    def __init__(self, n_models: int, dim: int, ridge: float = 1.0) -> None:
        if not ridge > 0 or not np.isfinite(ridge):
            raise ValueError(f"ridge must be a finite number > 0, got {ridge!r}; 1.0 is the usual prior")
        size = dim + 1
        self.ridge = float(ridge)
        self.a_inv = np.tile(np.eye(size) / ridge, (n_models, 1, 1))
        self.b = np.zeros((n_models, size))
        self.theta = np.zeros((n_models, size))

    @staticmethod
    def _features(x: np.ndarray) -> np.ndarray:
        z = np.empty(x.shape[0] + 1)
        z[:-1] = x
        z[-1] = 1.0
        return z

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return each model's predicted quality at ``x`` and the spread of that prediction.

        The spread is ``z^T A^-1 z``: the prediction's variance in units of
        one observation's noise variance, so ``1 / spread`` is the number of
        observations whose mean would be as certain.
        """
        z = self._features(x)
        a_inv_z = self.a_inv @ z
        return self.theta @ z, a_inv_z @ z

    def update(self, x: np.ndarray, index: int, quality: float) -> None:
        """Add one observed ``quality`` of model ``index`` at ``x``."""
        z = self._features(x)
        a_inv = self.a_inv[index]
        a_inv_z = a_inv @ z
        a_inv -= np.outer(a_inv_z, a_inv_z) / (1.0 + z @ a_inv_z)
        self.b[index] += quality * z
        self.theta[index] = a_inv @ self.b[index]

    def load(self, a_inv: np.ndarray, b: np.ndarray) -> None:
        """Replace the statistics with saved ones; raises ``ValueError`` on a shape or value mismatch."""
        for name, value, expected in (("prior_a_inv", a_inv, self.a_inv.shape), ("prior_b", b, self.b.shape)):
            if value.shape != expected:
                raise ValueError(f"array {name} has shape {value.shape}, expected {expected}")
            if not np.isfinite(value).all():
                raise ValueError(f"array {name} contains non-finite values")
        self.a_inv = np.array(a_inv, dtype=np.float64)
        self.b = np.array(b, dtype=np.float64)
        # The same product as update(), so a restored prior predicts bit for bit.
        self.theta = np.stack([a_inv @ b for a_inv, b in zip(self.a_inv, self.b)])
