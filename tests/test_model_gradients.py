"""The full model's gradients (value heads, cosine term, MicroLoRA, stacked BaseLoRA) against finite differences."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sona_web.config import SonaConfig
from sona_web.model import Batch, SonaModel


@pytest.fixture
def model_and_batch():
    config = SonaConfig.default(hidden_dim=6, embedding_dim=6, base_lora_rank=4, base_lora_layers=2, enable_simd=False)
    rng = np.random.default_rng(0)
    model = SonaModel(config, rng)
    for _ in range(3):
        model.add_route(prior=0.5)
    model.heads_W = rng.standard_normal((3, 6))
    model.micro.lora_B = rng.standard_normal((6, 2)) * 0.3
    for layer in model.base:
        layer.lora_B = rng.standard_normal((6, 4)) * 0.1
    batch = Batch(
        x=rng.standard_normal((5, 6)),
        route=np.array([0, 2, -1, 1, 2]),
        quality=rng.random(5),
        target=rng.standard_normal((5, 6)),
        has_target=np.array([True, False, True, True, False]),
        advantage=rng.standard_normal(5),
    )
    return model, batch


def _parameters(model):
    yield "micro_A", model.micro, "lora_A"
    yield "micro_B", model.micro, "lora_B"
    for index, layer in enumerate(model.base):
        yield f"base{index}_A", layer, "lora_A"
        yield f"base{index}_B", layer, "lora_B"
    yield "heads_W", model, "heads_W"
    yield "heads_b", model, "heads_b"


def _objective(grads, name):
    # MicroLoRA descends the activation term only; everything else the whole loss.
    return grads.activation_loss if name.startswith("micro") else grads.loss


def _analytic(grads, name):
    if name.startswith("micro"):
        return grads.micro[0 if name.endswith("A") else 1]
    if name.startswith("base"):
        return grads.base[int(name[4])][0 if name.endswith("A") else 1]
    return grads.heads_W if name == "heads_W" else grads.heads_b


def test_every_gradient_matches_finite_differences(model_and_batch):
    model, batch = model_and_batch
    grads = model.gradients(batch)
    step = 1e-6
    for name, owner, attribute in _parameters(model):
        param = getattr(owner, attribute)
        numeric = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + step
            plus = _objective(model.gradients(batch), name)
            param[index] = original - step
            minus = _objective(model.gradients(batch), name)
            param[index] = original
            numeric[index] = (plus - minus) / (2 * step)
        assert_allclose(_analytic(grads, name), numeric, rtol=1e-5, atol=1e-7, err_msg=name)


def test_rows_without_route_train_no_head(model_and_batch):
    model, batch = model_and_batch
    batch.route[:] = -1
    grads = model.gradients(batch)
    assert not grads.heads_W.any()
    assert not grads.heads_b.any()
    assert np.abs(grads.micro[1]).sum() > 0


def test_micro_ignores_value_loss(model_and_batch):
    model, batch = model_and_batch
    batch.target = None
    grads = model.gradients(batch)
    assert not grads.micro[0].any()
    assert not grads.micro[1].any()
    assert np.abs(grads.base[0][1]).sum() > 0


def test_fold_micro_keeps_representation(model_and_batch):
    model, batch = model_and_batch
    # With a zero base layer the rank-2 micro update fits in the rank-4 base
    # layer, so the fold is exact rather than a best rank-4 approximation.
    model.base[0].reset()
    before = model.represent(batch.x)
    residual = model.fold_micro()
    assert residual == pytest.approx(0.0, abs=1e-9)
    assert not model.micro.lora_B.any()
    assert_allclose(model.represent(batch.x), before, atol=1e-10)
