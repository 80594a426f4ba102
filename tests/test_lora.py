"""LoRA adapter: identity at init, exact gradients, rank-preserving merge."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sona_web.lora import LoRAAdapter


def make_adapter(dim=6, rank=2, alpha=2.0, dtype=np.float64, seed=0):
    return LoRAAdapter(dim, rank, alpha, np.random.default_rng(seed), dtype)


def test_fresh_adapter_is_identity():
    adapter = make_adapter(dtype=np.float32)
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    assert_allclose(adapter.forward(x), x, rtol=0, atol=0)


def test_forward_matches_formula():
    adapter = make_adapter()
    rng = np.random.default_rng(2)
    adapter.lora_B = rng.standard_normal((6, 2))
    x = rng.standard_normal(6)
    expected = x + adapter.scaling * adapter.lora_B @ (adapter.lora_A @ x)
    assert_allclose(adapter.forward(x[None, :])[0], expected, rtol=1e-12)
    assert adapter.scaling == pytest.approx(1.0)


def test_lora_A_rows_are_orthonormal():
    adapter = make_adapter(dim=16, rank=2)
    assert_allclose(adapter.lora_A @ adapter.lora_A.T, np.eye(2), atol=1e-12)


def _loss(adapter, x, weights):
    return float(np.sum(weights * adapter.forward(x)))


@pytest.mark.parametrize("name", ["lora_A", "lora_B"])
def test_gradients_match_finite_differences(name):
    rng = np.random.default_rng(3)
    adapter = make_adapter()
    adapter.lora_B = rng.standard_normal((6, 2))
    x = rng.standard_normal((5, 6))
    weights = rng.standard_normal((5, 6))
    grad_A, grad_B, _ = adapter.gradients(x, weights)
    analytic = {"lora_A": grad_A, "lora_B": grad_B}[name]

    param = getattr(adapter, name)
    numeric = np.zeros_like(param)
    step = 1e-6
    for index in np.ndindex(param.shape):
        original = param[index]
        param[index] = original + step
        plus = _loss(adapter, x, weights)
        param[index] = original - step
        minus = _loss(adapter, x, weights)
        param[index] = original
        numeric[index] = (plus - minus) / (2 * step)
    assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_input_gradient_matches_dense_map():
    rng = np.random.default_rng(4)
    adapter = make_adapter()
    adapter.lora_B = rng.standard_normal((6, 2))
    grad_out = rng.standard_normal((3, 6))
    _, _, grad_x = adapter.gradients(rng.standard_normal((3, 6)), grad_out)
    dense = np.eye(6) + adapter.delta_weight()
    assert_allclose(grad_x, grad_out @ dense, rtol=1e-12)


def test_squared_gradients_sum_per_row_squares():
    rng = np.random.default_rng(5)
    adapter = make_adapter()
    adapter.lora_B = rng.standard_normal((6, 2))
    x = rng.standard_normal((4, 6))
    grad_out = rng.standard_normal((4, 6))
    squared_A, squared_B = adapter.squared_gradients(x, grad_out)
    rows = [adapter.gradients(x[i : i + 1], grad_out[i : i + 1]) for i in range(4)]
    assert_allclose(squared_A, sum(r[0] ** 2 for r in rows), rtol=1e-10)
    assert_allclose(squared_B, sum(r[1] ** 2 for r in rows), rtol=1e-10)


def test_absorb_is_exact_when_ranks_fit():
    rng = np.random.default_rng(6)
    base = make_adapter(dim=10, rank=4, alpha=4.0, seed=1)
    base.lora_B = rng.standard_normal((10, 4))
    base.lora_B[:, 2:] = 0.0  # base update has rank 2, micro adds rank 2: the sum fits in rank 4
    micro = make_adapter(dim=10, rank=2, alpha=2.0, seed=2)
    micro.lora_B = rng.standard_normal((10, 2))
    expected = base.delta_weight() + micro.delta_weight()
    residual = base.absorb(micro)
    assert_allclose(base.delta_weight(), expected, atol=1e-10)
    assert residual == pytest.approx(0.0, abs=1e-10)


def test_absorb_keeps_best_rank_approximation():
    rng = np.random.default_rng(7)
    base = make_adapter(dim=12, rank=4, alpha=4.0, seed=1)
    base.lora_B = rng.standard_normal((12, 4))
    micro = make_adapter(dim=12, rank=2, alpha=2.0, seed=2)
    micro.lora_B = rng.standard_normal((12, 2))
    total = base.delta_weight() + micro.delta_weight()
    residual = base.absorb(micro)

    u, s, vt = np.linalg.svd(total)
    best = (u[:, :4] * s[:4]) @ vt[:4]
    assert_allclose(base.delta_weight(), best, atol=1e-9)
    assert residual == pytest.approx(np.sqrt(np.sum(s[4:] ** 2)))
    assert base.lora_A.shape == (4, 12)
    assert base.lora_B.shape == (12, 4)


def test_reset_restores_identity():
    adapter = make_adapter()
    adapter.lora_B += 1.0
    adapter.reset()
    x = np.ones((1, 6))
    assert_allclose(adapter.forward(x), x)
