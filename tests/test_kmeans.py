"""k-means++ seeding: D^2 sampling properties on hand-made data."""

import numpy as np
import pytest

from sona_web.kmeans import kmeans_plusplus, nearest_centres, squared_distances


def test_squared_distances_match_direct_computation():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((7, 3))
    centres = rng.standard_normal((4, 3))
    direct = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(squared_distances(points, centres), direct, atol=1e-12)


def test_nearest_centres_on_toy_data():
    points = np.array([[0.0, 0.0], [10.0, 0.0], [9.0, 1.0]])
    centres = np.array([[10.0, 0.0], [0.0, 1.0]])
    index, distance = nearest_centres(points, centres)
    assert index.tolist() == [1, 0, 0]
    np.testing.assert_allclose(distance, [1.0, 0.0, 2.0])


def test_seeds_are_distinct_data_points():
    rng = np.random.default_rng(1)
    points = rng.standard_normal((200, 5))
    chosen = kmeans_plusplus(points, 10, np.random.default_rng(2))
    assert len(set(chosen.tolist())) == 10
    assert chosen.min() >= 0
    assert chosen.max() < 200


def test_one_seed_per_separated_blob():
    # Five tight, far-apart blobs: D^2 sampling all but never picks two seeds in one blob.
    rng = np.random.default_rng(3)
    blob_centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100], [50, 200]], dtype=float)
    labels = np.repeat(np.arange(5), 40)
    points = blob_centres[labels] + rng.standard_normal((200, 2)) * 0.1
    for seed in range(20):
        chosen = kmeans_plusplus(points, 5, np.random.default_rng(seed))
        assert sorted(labels[chosen].tolist()) == [0, 1, 2, 3, 4]


def test_d2_sampling_prefers_far_points():
    # One point at 0, many at 1, one far at 10. With a first centre at 0
    # excluded by passing it as existing, the far point carries 100 / (100 + 50)
    # of the D^2 mass, so single-trial sampling picks it about 2/3 of the time.
    points = np.concatenate([np.ones((50, 1)), [[10.0]]])
    existing = np.zeros((1, 1))
    picks = [
        int(kmeans_plusplus(points, 1, np.random.default_rng(seed), existing=existing, n_local_trials=1)[0])
        for seed in range(600)
    ]
    share_far = np.mean(np.array(picks) == 50)
    assert 0.6 < share_far < 0.73


def test_existing_centres_are_covered_first():
    points = np.array([[0.0], [0.1], [5.0], [5.1]])
    chosen = kmeans_plusplus(points, 1, np.random.default_rng(0), existing=np.array([[0.05]]))
    assert chosen[0] in (2, 3)


def test_greedy_trials_do_not_raise_potential():
    rng = np.random.default_rng(4)
    points = rng.standard_normal((300, 4))

    def potential(chosen):
        return squared_distances(points, points[chosen]).min(axis=1).sum()

    single = np.mean([potential(kmeans_plusplus(points, 8, np.random.default_rng(s), n_local_trials=1)) for s in range(30)])
    greedy = np.mean([potential(kmeans_plusplus(points, 8, np.random.default_rng(s))) for s in range(30)])
    assert greedy <= single


def test_same_seed_same_centres():
    points = np.random.default_rng(5).standard_normal((100, 3))
    first = kmeans_plusplus(points, 6, np.random.default_rng(9))
    second = kmeans_plusplus(points, 6, np.random.default_rng(9))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("n_clusters", [0, 11])
def test_invalid_cluster_count_raises(n_clusters):
    with pytest.raises(ValueError, match=r"n_clusters=.* should be in \[1, n_points=10\]"):
        kmeans_plusplus(np.zeros((10, 2)), n_clusters, np.random.default_rng(0))


def test_identical_points_still_return_requested_count():
    chosen = kmeans_plusplus(np.zeros((5, 2)), 3, np.random.default_rng(0))
    assert len(chosen) == 3
