"""Low-rank adapters (LoRA, Hu et al. 2021) with exact gradients and a rank-preserving merge.

An adapter maps ``x`` of shape (n, d) to ``x + scaling * (x @ lora_A.T) @ lora_B.T``,
which is ``x + scaling * lora_B @ (lora_A @ x)`` for each row. ``lora_A`` has shape
(rank, d) and ``lora_B`` shape (d, rank). ``lora_B`` starts at zero, so a fresh
adapter returns its input unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LoRAAdapter"]


class LoRAAdapter:
    """One residual low-rank adapter of a square (d x d) map.

    Parameters
    ----------
    dim : int
        Input and output width d.
    rank : int
        Inner rank r.
    alpha : float
        ``scaling = alpha / rank``, as in peft, so that changing the rank does
        not change the size of the initial updates.
    rng : numpy.random.Generator
        Source of the initial ``lora_A``.
    dtype : numpy dtype
        float32 (fast) or float64 (reference precision).
    """

    def __init__(self, dim: int, rank: int, alpha: float, rng: np.random.Generator, dtype=np.float32):
        self.dim = dim
        self.rank = rank
        self.scaling = alpha / rank
        self.dtype = np.dtype(dtype)
        self.lora_A = _orthonormal_rows(rank, dim, rng).astype(self.dtype)
        self.lora_B = np.zeros((dim, rank), dtype=self.dtype)

    def delta(self, x: np.ndarray) -> np.ndarray:
        """Return ``scaling * (x @ lora_A.T) @ lora_B.T`` for x of shape (n, d)."""
        return ((x @ self.lora_A.T) @ self.lora_B.T) * self.scaling

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + self.delta(x)

    def gradients(self, x: np.ndarray, grad_out: np.ndarray):
        """Return (grad_A, grad_B, grad_x) of a loss whose gradient at the output is ``grad_out``.

        ``x`` and ``grad_out`` have shape (n, d); the parameter gradients are summed over rows.
        """
        projected = x @ self.lora_A.T
        back = grad_out @ self.lora_B
        grad_B = self.scaling * (grad_out.T @ projected)
        grad_A = self.scaling * (back.T @ x)
        grad_x = grad_out + self.scaling * (back @ self.lora_A)
        return grad_A, grad_B, grad_x

    def squared_gradients(self, x: np.ndarray, grad_out: np.ndarray):
        """Return the per-row squared parameter gradients summed over rows (for the Fisher).

        Each row's gradient is an outer product ``u v^T``, whose elementwise square is
        ``(u**2)(v**2)^T``, so the sum over rows is one matrix product.
        """
        projected = x @ self.lora_A.T
        back = grad_out @ self.lora_B
        scale = self.scaling**2
        grad_B_sq = scale * ((grad_out**2).T @ projected**2)
        grad_A_sq = scale * ((back**2).T @ x**2)
        return grad_A_sq, grad_B_sq

    def delta_weight(self) -> np.ndarray:
        """Return the dense (d, d) update ``scaling * lora_B @ lora_A``, for tests and inspection."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def absorb(self, other: "LoRAAdapter") -> float:
        """Add ``other``'s update to this adapter, keeping this adapter's rank.

        The sum of the two low-rank updates has rank at most r1 + r2. Its best
        rank-r1 approximation (Eckart-Young) is found from QR factorisations of
        the stacked factors and an SVD of a small (r1 + r2) square core, so the
        cost is O(d (r1 + r2)^2), not the O(d^3) of a dense SVD. Returns the
        Frobenius norm of the part that did not fit, so callers can log it.
        """
        stacked_B = np.concatenate([self.scaling * self.lora_B, other.scaling * other.lora_B], axis=1)
        stacked_A = np.concatenate([self.lora_A, other.lora_A], axis=0)
        q_b, r_b = np.linalg.qr(stacked_B.astype(np.float64))
        q_a, r_a = np.linalg.qr(stacked_A.T.astype(np.float64))
        left, singular, right_t = np.linalg.svd(r_b @ r_a.T)

        root = np.sqrt(singular[: self.rank])
        new_B = (q_b @ left[:, : self.rank]) * root / self.scaling
        new_A = (root[:, None] * right_t[: self.rank]) @ q_a.T
        rotation = _procrustes(new_A, self.lora_A.astype(np.float64))
        # B A = (B R)(R^T A) for any rotation R. Choosing the R that keeps A
        # closest to its old value keeps the factors' basis stable across
        # merges, so EWC++ anchors on lora_A and lora_B stay meaningful.
        self.lora_B = (new_B @ rotation).astype(self.dtype)
        self.lora_A = (rotation.T @ new_A).astype(self.dtype)
        return float(np.sqrt(np.sum(singular[self.rank :] ** 2)))

    def reset(self) -> None:
        """Zero ``lora_B``, so the adapter returns its input unchanged again."""
        self.lora_B[...] = 0.0

    def state(self) -> dict[str, np.ndarray]:
        return {"lora_A": self.lora_A, "lora_B": self.lora_B}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.lora_A = np.array(arrays["lora_A"], dtype=self.dtype)
        self.lora_B = np.array(arrays["lora_B"], dtype=self.dtype)


def _procrustes(new_A: np.ndarray, old_A: np.ndarray) -> np.ndarray:
    """Return the orthogonal R minimising ``||R.T @ new_A - old_A||`` (orthogonal Procrustes)."""
    left, _, right_t = np.linalg.svd(new_A @ old_A.T)
    return left @ right_t


def _orthonormal_rows(rank: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    # Orthonormal rows pass a unit-norm input's projection through at full
    # scale. With the usual uniform(+-1/sqrt(d)) init the first updates of
    # lora_B would be damped by about 1/sqrt(3), and rows could be correlated.
    gaussian = rng.standard_normal((dim, rank))
    q, _ = np.linalg.qr(gaussian)
    # C order, as load() rebuilds it: BLAS may round an F-ordered operand
    # differently, and a restored engine must reproduce outputs bit for bit.
    return np.ascontiguousarray(q.T)
