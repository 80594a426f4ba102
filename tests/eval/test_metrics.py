"""Quality-cost metrics on hand-computed toy curves."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sona_web.eval import metrics

WEAK, STRONG = 0.6, 0.8


def test_apgr_diagonal_is_half():
    shares = [0.25, 0.5, 0.75]
    accuracies = [WEAK + s * (STRONG - WEAK) for s in shares]
    assert_allclose(metrics.apgr(shares, accuracies, WEAK, STRONG), 0.5)


def test_apgr_endpoints_only_is_half():
    assert_allclose(metrics.apgr([], [], WEAK, STRONG), 0.5)


def test_apgr_perfect_router_is_one():
    # Strong accuracy at zero strong calls: the curve rises vertically at 0.
    assert_allclose(metrics.apgr([0.0], [STRONG], WEAK, STRONG), 1.0)


def test_apgr_hand_computed_curve():
    # PGR 0.5 at share 0.2: area = 0.2*0.25 + 0.8*0.75 = 0.65.
    assert_allclose(metrics.apgr([0.2], [0.7], WEAK, STRONG), 0.65)


def test_apgr_ignores_input_order():
    forward = metrics.apgr([0.2, 0.6], [0.7, 0.78], WEAK, STRONG)
    backward = metrics.apgr([0.6, 0.2], [0.78, 0.7], WEAK, STRONG)
    assert forward == backward


def test_pgr_values():
    assert_allclose(metrics.pgr([0.6, 0.7, 0.8, 0.9], WEAK, STRONG), [0.0, 0.5, 1.0, 1.5])


def test_pgr_rejects_tied_models():
    with pytest.raises(ValueError, match="must differ to define PGR"):
        metrics.pgr(0.7, 0.7, 0.7)


def test_cpt_interpolates_first_crossing():
    # PGR 0.5 at share 0.2, then 1.0 at share 1: CPT(50%) = 0.2,
    # CPT(80%) = 0.2 + (0.8 - 0.5) / (1.0 - 0.5) * 0.8 = 0.68.
    assert_allclose(metrics.cpt([0.2], [0.7], WEAK, STRONG, 0.5), 0.2)
    assert_allclose(metrics.cpt([0.2], [0.7], WEAK, STRONG, 0.8), 0.68)


def test_cpt_inside_first_segment():
    # From (0, PGR 0) to (0.4, PGR 1): PGR 0.5 at share 0.2.
    assert_allclose(metrics.cpt([0.4], [STRONG], WEAK, STRONG, 0.5), 0.2)


def test_cpt_on_dipping_curve_takes_first_crossing():
    shares = [0.2, 0.4]
    accuracies = [0.76, 0.64]  # PGR 0.8 then 0.2
    assert_allclose(metrics.cpt(shares, accuracies, WEAK, STRONG, 0.5), 0.2 * 0.5 / 0.8)


def test_cpt_of_perfect_router_is_zero():
    assert metrics.cpt([0.0], [STRONG], WEAK, STRONG, 0.8) == 0.0


def test_cpt_unreachable_target_is_nan():
    assert math.isnan(metrics.cpt([0.5], [0.7], WEAK, STRONG, 1.5))


def test_curve_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        metrics.quality_cost_curve([0.1, 0.2], [0.7], WEAK, STRONG)


def test_curve_rejects_share_outside_unit_interval():
    with pytest.raises(ValueError, match=r"shares must be in \[0, 1\]"):
        metrics.quality_cost_curve([1.2], [0.7], WEAK, STRONG)


def test_curve_adds_endpoints_sorted():
    x, y = metrics.quality_cost_curve([0.7, 0.3], [0.75, 0.65], WEAK, STRONG)
    assert_allclose(x, [0.0, 0.3, 0.7, 1.0])
    assert_allclose(y, [WEAK, 0.65, 0.75, STRONG])


def test_regret_against_per_query_oracle():
    rewards = np.array([[1.0, 0.8], [0.0, 0.8], [0.0, -0.2]])
    choices = np.array([1, 0, 1])
    # Regrets 0.2, 0.8, 0.2.
    assert_allclose(metrics.regret(rewards, choices), 1.2)


def test_mean_interval_uses_student_t():
    mean, low, high = metrics.mean_interval([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)
    assert_allclose((mean, low, high), (2.0, 2.0 - half, 2.0 + half))


def test_mean_interval_single_and_empty():
    assert metrics.mean_interval([0.4]) == (0.4, 0.4, 0.4)
    assert all(math.isnan(v) for v in metrics.mean_interval([math.nan]))
