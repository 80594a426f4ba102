"""EWC++: penalty and its gradient, the proximal step, the running Fisher, the shift detector."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sona_web.ewc import EWCPlusPlus, ShiftDetector


def protected_ewc(ewc_lambda=3.0, seed=0):
    rng = np.random.default_rng(seed)
    ewc = EWCPlusPlus(ewc_lambda, fisher_alpha=0.5)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}
    for name, value in params.items():
        ewc.accumulate(name, rng.random(value.shape) + 0.1)
    ewc.consolidate(params)
    return ewc, params, rng


def test_penalty_matches_hand_computation():
    ewc = EWCPlusPlus(2.0, fisher_alpha=1.0)
    ewc.accumulate("w", np.array([1.0, 3.0]))
    ewc.consolidate({"w": np.array([0.0, 0.0])})
    # Fisher normalised by its mean 2: [0.5, 1.5]; penalty = 2 * (0.5 * 1 + 1.5 * 4)
    assert ewc.penalty({"w": np.array([1.0, 2.0])}) == pytest.approx(13.0)


def test_penalty_gradient_matches_finite_differences():
    ewc, params, rng = protected_ewc()
    moved = {name: value + rng.standard_normal(value.shape) for name, value in params.items()}
    step = 1e-6
    for name, value in moved.items():
        analytic = ewc.penalty_grad(name, value)
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + step
            plus = ewc.penalty(moved)
            value[index] = original - step
            minus = ewc.penalty(moved)
            value[index] = original
            numeric[index] = (plus - minus) / (2 * step)
        assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_proximal_step_matches_explicit_step_for_small_lr():
    ewc, params, rng = protected_ewc()
    value = params["w"] + rng.standard_normal((3, 4))
    grad = rng.standard_normal((3, 4))
    lr = 1e-5
    explicit = value - lr * (grad + ewc.penalty_grad("w", value))
    proximal = value.copy()
    ewc.step("w", proximal, grad, lr)
    # They differ by about c * lr * |total gradient| with c = 2 * lr * lambda * F,
    # which is 1.2e-4 * 1e-5 * 20 < 1e-7 here; the step itself is about 1e-4.
    assert_allclose(proximal, explicit, rtol=0, atol=1e-7)
    assert np.abs(proximal - value).max() > 1e-5


def test_proximal_step_never_overshoots_anchor():
    ewc, params, _ = protected_ewc(ewc_lambda=1e6)
    value = params["w"] + 1.0
    ewc.step("w", value, np.zeros_like(value), lr=10.0)
    distance = value - params["w"]
    assert np.all(distance >= 0)
    assert np.all(distance < 1.0)


def test_step_without_protection_is_plain_gradient_descent():
    ewc = EWCPlusPlus(5.0, fisher_alpha=0.1)
    value = np.array([1.0, 2.0])
    ewc.step("w", value, np.array([1.0, -1.0]), lr=0.5)
    assert_allclose(value, [0.5, 2.5])


def test_zero_lambda_disables_the_penalty():
    ewc, params, _ = protected_ewc(ewc_lambda=0.0)
    moved = {name: value + 1.0 for name, value in params.items()}
    assert ewc.penalty(moved) == 0.0
    value = moved["w"].copy()
    ewc.step("w", value, np.zeros_like(value), lr=1.0)
    assert_allclose(value, moved["w"])
    assert not ewc.active


def test_running_fisher_follows_alpha():
    ewc = EWCPlusPlus(1.0, fisher_alpha=0.25)
    ewc.accumulate("w", np.array([4.0]))
    ewc.accumulate("w", np.array([0.0]))
    assert_allclose(ewc.fisher["w"], [3.0])
    ewc.accumulate("w", np.array([0.0]), count=2)
    assert_allclose(ewc.fisher["w"], [3.0 * 0.75**2])


def test_row_accumulation_decays_all_rows():
    ewc = EWCPlusPlus(1.0, fisher_alpha=0.5)
    ewc.accumulate_rows("W", np.array([1]), np.array([[2.0, 2.0]]), (2, 2))
    ewc.accumulate_rows("W", np.array([0]), np.array([[4.0, 0.0]]), (2, 2))
    assert_allclose(ewc.fisher["W"], [[2.0, 0.0], [0.5, 0.5]])


def test_protected_fisher_grows_with_new_heads():
    ewc = EWCPlusPlus(1.0, fisher_alpha=1.0)
    ewc.accumulate("W", np.ones((1, 2)))
    ewc.consolidate({"W": np.zeros((1, 2))})
    grown = np.ones((2, 2))
    gradient = ewc.penalty_grad("W", grown)
    assert_allclose(gradient, [[2.0, 2.0], [0.0, 0.0]])
    assert ewc.tasks == 1


def _mixture_stream(rng, centres, count):
    labels = rng.integers(len(centres), size=count)
    points = centres[labels] + 0.5 * rng.standard_normal((count, centres.shape[1]))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_detector_quiet_on_stationary_stream():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 32))
    detector = ShiftDetector(32, threshold=4.0, patience=8)
    fired = sum(detector.update(x) for x in _mixture_stream(rng, centres, 20_000))
    assert fired == 0


def test_detector_fires_once_at_switch():
    rng = np.random.default_rng(1)
    task_a = rng.standard_normal((3, 32))
    task_b = rng.standard_normal((3, 32))
    detector = ShiftDetector(32, threshold=4.0, patience=8)
    stream = np.concatenate([_mixture_stream(rng, task_a, 3000), _mixture_stream(rng, task_b, 3000)])
    fired_at = [i for i, x in enumerate(stream) if detector.update(x)]
    assert len(fired_at) == 1
    assert 3000 <= fired_at[0] < 3100


def test_detector_statistic_is_scale_free():
    rng = np.random.default_rng(2)
    stream = rng.standard_normal((2000, 8))
    small = ShiftDetector(8, threshold=4.0, patience=8)
    large = ShiftDetector(8, threshold=4.0, patience=8)
    for x in stream:
        small.update(x)
        large.update(1000.0 * x)
    assert small.last_statistic == pytest.approx(large.last_statistic, rel=1e-6)
