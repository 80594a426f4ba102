"""RidgePrior: the router's exact online ridge regression per model."""

import numpy as np
import pytest

from sona_web.linear_prior import RidgePrior


def _batch_ridge(features, targets, ridge):
    z = np.hstack([features, np.ones((len(features), 1))])
    gram = z.T @ z + ridge * np.eye(z.shape[1])
    return np.linalg.solve(gram, z.T @ targets), np.linalg.inv(gram)


def test_online_updates_equal_the_batch_solution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6))
    arm = rng.integers(2, size=300)
    quality = rng.random(300)
    prior = RidgePrior(2, 6, ridge=2.0)
    for row, index, value in zip(x, arm, quality):
        prior.update(row, int(index), float(value))

    probe = rng.standard_normal(6)
    predicted, spread = prior.predict(probe)
    for index in range(2):
        weights, gram_inv = _batch_ridge(x[arm == index], quality[arm == index], 2.0)
        z = np.append(probe, 1.0)
        assert predicted[index] == pytest.approx(z @ weights, abs=1e-9)
        assert spread[index] == pytest.approx(z @ gram_inv @ z, rel=1e-9)


def test_spread_shrinks_with_observations_near_the_query():
    rng = np.random.default_rng(1)
    prior = RidgePrior(2, 4)
    query = np.array([1.0, 0.0, 0.0, 0.0])
    before = prior.predict(query)[1]
    for _ in range(50):
        prior.update(query + 0.05 * rng.standard_normal(4), 0, 1.0)
    after = prior.predict(query)[1]
    # Only model 0 was observed. Its spread falls from 2 (|z|^2 with
    # z = [query, 1] under the unit prior, worth half an observation) to
    # about 1/50, and model 1's stays.
    assert before[0] == pytest.approx(2.0)
    assert after[0] < before[0] / 20
    assert after[1] == before[1]


def test_load_restores_predictions_bit_for_bit():
    rng = np.random.default_rng(2)
    prior = RidgePrior(3, 5)
    for _ in range(40):
        prior.update(rng.standard_normal(5), int(rng.integers(3)), float(rng.random()))
    copy = RidgePrior(3, 5)
    copy.load(prior.a_inv.copy(), prior.b.copy())
    probe = rng.standard_normal(5)
    assert np.array_equal(copy.predict(probe)[0], prior.predict(probe)[0])


@pytest.mark.parametrize(
    "a_inv, b, message",
    [
        (np.zeros((3, 5, 5)), np.zeros((3, 6)), "prior_a_inv has shape"),
        (np.full((3, 6, 6), np.nan), np.zeros((3, 6)), "prior_a_inv contains non-finite"),
        (np.zeros((3, 6, 6)), np.zeros((2, 6)), "prior_b has shape"),
    ],
)
def test_load_rejects_bad_arrays_and_keeps_the_statistics(a_inv, b, message):
    prior = RidgePrior(3, 5)
    prior.update(np.ones(5), 1, 1.0)
    before = prior.a_inv.copy(), prior.b.copy()
    with pytest.raises(ValueError, match=message):
        prior.load(a_inv, b)
    assert np.array_equal(prior.a_inv, before[0])
    assert np.array_equal(prior.b, before[1])


@pytest.mark.parametrize("ridge", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_ridge_is_rejected(ridge):
    with pytest.raises(ValueError, match="ridge must be a finite number > 0, got"):
        RidgePrior(2, 3, ridge=ridge)
