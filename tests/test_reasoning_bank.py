"""ReasoningBank: who shapes centroids, bounded size, incremental cycles, route statistics."""

import numpy as np
import pytest

from sona_web import SonaConfig, SonaEngine
from sona_web.reasoning_bank import ReasoningBank

DIM = 16


def unit_rows(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def blobs(rng, centres, count, spread=0.05):
    labels = rng.integers(len(centres), size=count)
    return labels, unit_rows(centres[labels] + spread * rng.standard_normal((count, centres.shape[1])))


def make_bank(capacity=32, threshold=0.5):
    return ReasoningBank(DIM, capacity, threshold, decay=0.99)


def update(bank, points, quality, routes=None, rng=None):
    routes = np.zeros(len(points), dtype=np.int64) if routes is None else routes
    labels = np.array([None] * len(points), dtype=object)
    recorded = np.zeros(len(points), dtype=bool)
    return bank.update(points, routes, quality, labels, 0.0, rng or np.random.default_rng(0), recorded)


def test_only_good_trajectories_shape_centroids():
    rng = np.random.default_rng(0)
    good_centre, bad_centre = unit_rows(rng.standard_normal((2, DIM)))
    _, good = blobs(rng, good_centre[None], 40)
    _, bad = blobs(rng, bad_centre[None], 40)
    bank = make_bank()
    bank.add_route()
    update(bank, np.vstack([good, bad]), np.r_[np.ones(40), np.zeros(40)])

    similarity_to_good = unit_rows(bank.centroids) @ good_centre
    assert len(bank) >= 1
    assert similarity_to_good.min() > 0.95
    assert bank.cluster_size.sum() == 40


def test_failures_still_feed_route_statistics():
    rng = np.random.default_rng(1)
    centre = unit_rows(rng.standard_normal((1, DIM)))
    _, points = blobs(rng, centre, 40)
    bank = make_bank()
    bank.add_route()
    bank.add_route()
    routes = np.r_[np.zeros(20, dtype=np.int64), np.ones(20, dtype=np.int64)]
    quality = np.r_[np.ones(20), np.zeros(20)]
    update(bank, points, quality, routes)

    totals = bank.route_count.sum(axis=0)
    assert totals.tolist() == [20.0, 20.0]
    assert bank.route_sum.sum(axis=0).tolist() == [20.0, 0.0]


def test_threshold_decides_membership():
    rng = np.random.default_rng(2)
    _, points = blobs(rng, unit_rows(rng.standard_normal((2, DIM))), 60)
    quality = np.linspace(0.0, 1.0, 60)
    strict, lenient = make_bank(threshold=0.9), make_bank(threshold=0.1)
    for bank in (strict, lenient):
        bank.add_route()
        update(bank, points, quality)
    assert strict.cluster_size.sum() == np.sum(quality >= 0.9)
    assert lenient.cluster_size.sum() == np.sum(quality >= 0.1)


def test_capacity_is_never_exceeded():
    rng = np.random.default_rng(3)
    centres = unit_rows(rng.standard_normal((40, DIM)))
    bank = make_bank(capacity=8)
    bank.add_route()
    for _ in range(10):
        _, points = blobs(rng, centres, 200)
        update(bank, points, np.ones(200), rng=rng)
        assert len(bank) <= 8


def test_new_kinds_of_query_get_new_patterns():
    rng = np.random.default_rng(4)
    first, second = unit_rows(rng.standard_normal((2, 4, DIM)).reshape(8, DIM)).reshape(2, 4, DIM)
    bank = make_bank()
    bank.add_route()
    _, points = blobs(rng, first, 200)
    update(bank, points, np.ones(200), rng=rng)
    _, points = blobs(rng, second, 200)
    summary = update(bank, points, np.ones(200), rng=rng)

    assert summary["patterns_created"] >= 1
    best_match = (unit_rows(bank.centroids) @ second.T).max(axis=0)
    assert best_match.min() > 0.9


def test_cycle_work_depends_only_on_new_trajectories():
    engine = SonaEngine.with_config(SonaConfig.default(hidden_dim=DIM, embedding_dim=DIM), clock=lambda: 0.0)
    rng = np.random.default_rng(5)
    for _ in range(3):
        for point in unit_rows(rng.standard_normal((100, DIM))):
            trajectory = engine.begin_trajectory(point)
            engine.end_trajectory(trajectory, 1.0)
        summary = engine.force_learn()
        assert summary["new_trajectories"] == 100
    assert engine.force_learn()["new_trajectories"] == 0


def test_near_duplicate_patterns_merge():
    bank = make_bank()
    bank.add_route()
    centre = unit_rows(np.random.default_rng(6).standard_normal((1, DIM)))
    bank._append(np.vstack([centre, centre * 1.0001]), 0.0)
    bank.cluster_size[:] = [3, 1]
    assert bank._merge_duplicates() == 1
    assert len(bank) == 1
    assert bank.cluster_size[0] == 4


def test_find_patterns_reports_route_statistics_and_access():
    clock = iter(range(10_000))
    engine = SonaEngine.with_config(
        SonaConfig.default(hidden_dim=DIM, embedding_dim=DIM), clock=lambda: float(next(clock))
    )
    rng = np.random.default_rng(7)
    centre = unit_rows(rng.standard_normal((1, DIM)))[0]
    for index in range(40):
        trajectory = engine.begin_trajectory(unit_rows((centre + 0.05 * rng.standard_normal(DIM))[None])[0])
        engine.set_trajectory_route(trajectory, "big" if index % 2 else "small")
        engine.add_trajectory_context(trajectory, "billing")
        engine.end_trajectory(trajectory, 1.0 if index % 2 else 0.0)
    engine.force_learn()

    first = engine.find_patterns(centre, k=1)[0]
    second = engine.find_patterns(centre, k=1)[0]
    assert first["pattern_type"] == "billing"
    assert second["access_count"] == first["access_count"] + 1
    assert second["last_accessed"] > first["last_accessed"]
    stats = first["route_stats"]
    assert stats["big"]["mean_quality"] == pytest.approx(1.0)
    assert stats["small"]["mean_quality"] == pytest.approx(0.0)
    assert first["similarity"] > 0.9
