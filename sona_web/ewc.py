"""EWC++: an online diagonal Fisher, anchors at task boundaries, and a quadratic penalty.

Elastic weight consolidation (Kirkpatrick et al. 2017) keeps parameters that
mattered for an earlier task near their values at the end of that task. EWC++
(Chaudhry et al. 2018) replaces the per-task Fisher pass with a running average
of squared gradients, so it works on a stream. Here the stream also decides
when a task ends: :class:`ShiftDetector` watches the query distribution.

The penalty is ``ewc_lambda * sum(F * (theta - anchor)**2)`` over every
protected parameter group, where ``F`` is the protected Fisher of the group
divided by its mean. The normalisation makes ``ewc_lambda`` comparable across
groups and data sets: raw squared gradients of a quality loss differ by orders
of magnitude between a value head and a LoRA factor.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EWCPlusPlus", "ShiftDetector"]

_EPS = 1e-12


class EWCPlusPlus:
    """Running and protected diagonal Fisher estimates for named parameter groups."""

    def __init__(self, ewc_lambda: float, fisher_alpha: float):
        self.ewc_lambda = ewc_lambda
        self.fisher_alpha = fisher_alpha
        self.fisher: dict[str, np.ndarray] = {}
        self.protected: dict[str, np.ndarray] = {}
        self.anchor: dict[str, np.ndarray] = {}
        self.tasks = 0

    @property
    def active(self) -> bool:
        return self.ewc_lambda > 0.0 and bool(self.anchor)

    def accumulate(self, name: str, squared_grad: np.ndarray, count: int = 1) -> None:
        """Fold the mean squared gradient of ``count`` samples into the running Fisher.

        One sample moves the estimate by ``fisher_alpha``; ``count`` samples at
        once move it by ``1 - (1 - fisher_alpha) ** count``, as if they had
        arrived one by one with equal squared gradients.
        """
        weight = 1.0 - (1.0 - self.fisher_alpha) ** count
        current = self.fisher.get(name)
        if current is None or current.shape != squared_grad.shape:
            self.fisher[name] = np.asarray(squared_grad, dtype=np.float64).copy()
            return
        current *= 1.0 - weight
        current += weight * squared_grad

    def accumulate_rows(self, name: str, rows: np.ndarray, squared_grad: np.ndarray, shape) -> None:
        """Update the running Fisher of a (R, d) group whose sample touched only row ``rows``."""
        current = self.fisher.get(name)
        if current is None or current.shape != tuple(shape):
            current = _grow(current, shape)
            self.fisher[name] = current
        current *= 1.0 - self.fisher_alpha
        np.add.at(current, rows, self.fisher_alpha * squared_grad)

    def consolidate(self, params: dict[str, np.ndarray]) -> None:
        """Record a task boundary: anchor ``params`` and add the running Fisher to the protected one."""
        for name, value in params.items():
            running = self.fisher.get(name)
            if running is None:
                continue
            running = _grow(running, value.shape)
            mean = float(running.mean())
            if mean <= _EPS:
                continue
            normalised = running / mean
            previous = _grow(self.protected.get(name), value.shape)
            self.protected[name] = previous + normalised
            self.anchor[name] = np.array(value, dtype=np.float64)
        self.tasks += 1

    def penalty(self, params: dict[str, np.ndarray]) -> float:
        """Return ``ewc_lambda * sum(F * (theta - anchor)**2)`` over the protected groups."""
        total = 0.0
        for name, fisher, anchor in self._protected_groups(params):
            diff = np.asarray(params[name], dtype=np.float64) - anchor
            total += float(np.sum(fisher * diff**2))
        return self.ewc_lambda * total

    def penalty_grad(self, name: str, value: np.ndarray) -> np.ndarray:
        """Return the gradient of :meth:`penalty` with respect to group ``name`` at ``value``."""
        fisher, anchor = self._aligned(name, value.shape)
        if fisher is None:
            return np.zeros_like(value, dtype=np.float64)
        return 2.0 * self.ewc_lambda * fisher * (value - anchor)

    def step(self, name: str, value: np.ndarray, grad: np.ndarray, lr: float) -> None:
        """Apply one gradient step of the loss plus penalty to ``value`` in place.

        The penalty part is taken implicitly (a proximal step):
        ``theta <- (theta - lr * grad + c * anchor) / (1 + c)`` with
        ``c = 2 * lr * ewc_lambda * F``. To first order in ``lr`` this equals an
        explicit step on the penalised loss, but it never overshoots the anchor,
        whatever ``lr * ewc_lambda * F`` is.
        """
        fisher, anchor = self._aligned(name, value.shape) if self.ewc_lambda > 0 else (None, None)
        if fisher is None:
            value -= (lr * grad).astype(value.dtype, copy=False)
            return
        coupling = 2.0 * lr * self.ewc_lambda * fisher
        updated = (value - lr * grad + coupling * anchor) / (1.0 + coupling)
        value[...] = updated

    def _aligned(self, name: str, shape):
        fisher = self.protected.get(name)
        if fisher is None:
            return None, None
        return _grow(fisher, shape), _grow(self.anchor[name], shape)

    def _protected_groups(self, params):
        for name, fisher in self.protected.items():
            if name in params:
                value = params[name]
                yield name, _grow(fisher, value.shape), _grow(self.anchor[name], value.shape)

    def state(self) -> dict[str, np.ndarray]:
        arrays = {}
        for prefix, group in (("fisher", self.fisher), ("protected", self.protected), ("anchor", self.anchor)):
            for name, value in group.items():
                arrays[f"{prefix}/{name}"] = value
        return arrays

    def load(self, arrays: dict[str, np.ndarray], tasks: int) -> None:
        groups = {"fisher": self.fisher, "protected": self.protected, "anchor": self.anchor}
        for group in groups.values():
            group.clear()
        for key, value in arrays.items():
            prefix, name = key.split("/", 1)
            groups[prefix][name] = np.array(value, dtype=np.float64)
        self.tasks = tasks


def _grow(array: np.ndarray | None, shape) -> np.ndarray:
    """Zero-pad ``array`` to ``shape``; value heads gain rows when a new route appears."""
    shape = tuple(shape)
    if array is None:
        return np.zeros(shape, dtype=np.float64)
    if array.shape == shape:
        return array
    grown = np.zeros(shape, dtype=np.float64)
    grown[tuple(slice(0, n) for n in array.shape)] = array
    return grown


class ShiftDetector:
    """Detect a lasting shift in the mean of a vector stream (a task boundary).

    Two exponential moving averages follow the stream: a fast one (weight
    ``fast``) and a slow one (weight ``slow``). On a stationary stream with
    total variance ``v`` the squared distance between them has expectation of
    about ``v * (fast / (2 - fast) + slow / (2 - slow))``; the statistic is the
    squared distance divided by that, so it averages about 1 whatever the data's
    scale. A boundary is reported when the statistic stays above ``threshold``
    for ``patience`` consecutive samples, after at least ``warmup`` samples
    since the last boundary; the slow average then restarts from the fast one.
    """

    def __init__(self, dim: int, threshold: float, patience: int, fast: float = 0.1, slow: float = 0.01):
        self.threshold = threshold
        self.patience = patience
        self.fast_weight = fast
        self.slow_weight = slow
        self.warmup = int(round(2.0 / slow))
        self.fast_mean = np.zeros(dim)
        self.slow_mean = np.zeros(dim)
        self.variance = 0.0
        self.seen = 0
        self.above = 0
        self.last_statistic = 0.0
        self._noise_factor = fast / (2.0 - fast) + slow / (2.0 - slow)

    def update(self, x: np.ndarray) -> bool:
        """Feed one vector; return True when a task boundary is detected at this sample."""
        if self.seen == 0:
            self.fast_mean[...] = x
            self.slow_mean[...] = x
        self.seen += 1
        residual = x - self.slow_mean
        self.variance += self.slow_weight * (float(residual @ residual) - self.variance)
        self.fast_mean += self.fast_weight * (x - self.fast_mean)
        self.slow_mean += self.slow_weight * (x - self.slow_mean)
        if self.seen < self.warmup or self.variance <= _EPS:
            return False

        gap = self.fast_mean - self.slow_mean
        self.last_statistic = float(gap @ gap) / (self.variance * self._noise_factor)
        self.above = self.above + 1 if self.last_statistic > self.threshold else 0
        if self.above < self.patience:
            return False

        self.slow_mean[...] = self.fast_mean
        self.seen = 1
        self.above = 0
        return True

    def state(self) -> dict[str, np.ndarray]:
        scalars = [self.variance, self.seen, self.above, self.last_statistic]
        return {"fast_mean": self.fast_mean, "slow_mean": self.slow_mean, "scalars": np.array(scalars)}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.fast_mean = np.array(arrays["fast_mean"], dtype=np.float64)
        self.slow_mean = np.array(arrays["slow_mean"], dtype=np.float64)
        variance, seen, above, statistic = arrays["scalars"].tolist()
        self.variance, self.seen, self.above, self.last_statistic = variance, int(seen), int(above), statistic
