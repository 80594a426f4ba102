"""Baseline routers: each one learns a contextual bandit where the best model depends on the cluster."""

import importlib.util

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sona_web.eval import baselines
from sona_web.eval.registry import RouterContext, make_router, missing_dependency
from sona_web.eval.routing import replay

DIM = 16
N_MODELS = 3
# Cluster c is best served by model BEST[c] (correct with probability 0.9,
# the other models 0.2). The best single model (0) earns 0.55 on average.
BEST = (0, 1, 2, 0)
BEST_SINGLE_MODEL_REWARD = 0.55


def contextual_bandit(steps: int, seed: int = 0):
    """Return embeddings (steps, DIM) float32 and outcomes (steps, N_MODELS) of a 4-cluster bandit."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.standard_normal((DIM, len(BEST))))[0].T
    clusters = rng.integers(len(BEST), size=steps)
    vectors = centres[clusters] + 0.15 * rng.standard_normal((steps, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chances = np.full((steps, N_MODELS), 0.2)
    chances[np.arange(steps), np.array(BEST)[clusters]] = 0.9
    outcomes = (rng.random((steps, N_MODELS)) < chances).astype(np.float64)
    return vectors.astype(np.float32), outcomes


LEARNERS = ["egreedy", "linucb", "knn", "thompson_kmeans", "sona", "vw_cb_adf", "river_linucb"]


@pytest.mark.parametrize("name", LEARNERS)
def test_router_beats_best_single_model(name):
    reason = missing_dependency(name)
    if reason is not None:
        pytest.skip(reason)
    # river's LinUCB takes milliseconds per update, so it gets a shorter stream.
    steps = 600 if name == "river_linucb" else 1500
    vectors, outcomes = contextual_bandit(steps)
    costs = np.zeros(N_MODELS)
    context = RouterContext(("a", "b", "c"), DIM, costs, 0.0, seed=0)

    trace = replay(make_router(name, context), vectors, outcomes, costs, 0.0)

    late_reward = trace.rewards[steps // 2 :].mean()
    assert late_reward > BEST_SINGLE_MODEL_REWARD + 0.1, f"{name} earned {late_reward:.3f} in the second half"


@pytest.mark.parametrize("name", ["egreedy", "linucb", "knn", "thompson_kmeans", "sona", "vw_cb_adf"])
def test_router_same_seed_same_choices(name):
    reason = missing_dependency(name)
    if reason is not None:
        pytest.skip(reason)
    vectors, outcomes = contextual_bandit(300, seed=1)
    costs = np.array([0.0, 0.5, 1.0])
    runs = []
    for _ in range(2):
        context = RouterContext(("a", "b", "c"), DIM, costs, 0.1, seed=7)
        runs.append(replay(make_router(name, context), vectors, outcomes, costs, 0.1).choices)
    assert np.array_equal(runs[0], runs[1])


def test_random_router_follows_probabilities():
    router = baselines.RandomRouter([0.2, 0.0, 0.8], seed=3)
    picks = np.array([router.route(None)[0] for _ in range(4000)])
    shares = np.bincount(picks, minlength=3) / picks.shape[0]
    # 4000 draws: the standard error of a share near 0.2 is about 0.006.
    assert_allclose(shares, [0.2, 0.0, 0.8], atol=0.03)
    assert router.route(None)[1] in (0.2, 0.8)


def test_random_router_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        baselines.RandomRouter([0.5, 0.6])


def test_fixed_router_always_same_model():
    router = baselines.FixedRouter(2)
    assert router.route(np.zeros(4)) == (2, 1.0)


def test_fixed_router_rejects_negative_index():
    with pytest.raises(ValueError, match="model_index must be an int >= 0"):
        baselines.FixedRouter(-1)


def test_epsilon_greedy_probability_of_greedy_choice():
    router = baselines.EpsilonGreedyRouter(2, 3, epsilon=0.2, seed=0)
    x = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    for _ in range(20):
        router.update(x, 1, 1.0)
    decisions = {(index, round(probability, 12)) for index, probability in (router.route(x) for _ in range(200))}
    assert decisions == {(1, 0.9), (0, 0.1)}


def test_linucb_prefers_untried_model_at_start():
    router = baselines.LinUCBRouter(2, 3, seed=0)
    x = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    for _ in range(5):
        router.update(x, 0, 0.5)
    # Model 1 has the full prior width, model 0 a narrow one around 0.5.
    assert router.route(x)[0] == 1


def test_knn_memory_is_a_ring_buffer():
    router = baselines.KNNRouter(2, 2, k=1, memory=2, seed=0)
    x = np.array([1.0, 0.0], dtype=np.float32)
    router.update(x, 0, 0.0)
    router.update(x, 0, 0.0)
    router.update(x, 1, 1.0)
    assert router._size == 2
    assert sorted(router._arms.tolist()) == [0, 1]


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: baselines.EpsilonGreedyRouter(1, 4), "n_models must be an int >= 2"),
        (lambda: baselines.EpsilonGreedyRouter(2, 4, epsilon=1.5), r"epsilon must be in \[0, 1\]"),
        (lambda: baselines.EpsilonGreedyRouter(2, 4, ridge=0.0), "ridge must be a finite number > 0"),
        (lambda: baselines.LinUCBRouter(2, 4, alpha=-1.0), "alpha must be >= 0"),
        (lambda: baselines.KNNRouter(2, 4, k=0), "k must be an int >= 1"),
        (lambda: baselines.KNNRouter(2, 4, k=5, memory=3), "memory must be an int >= k=5"),
        (lambda: baselines.KMeansThompsonRouter(2, 4, n_clusters=0), "n_clusters must be an int >= 1"),
        (lambda: baselines.KMeansThompsonRouter(2, 4, noise_sd=0.0), "noise_sd must be > 0"),
    ],
)
def test_router_rejects_bad_hyper_parameters(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_replay_rejects_out_of_range_model():
    class Broken(baselines.Router):
        name = "broken"

        def route(self, x):
            return 5, 1.0

    vectors, outcomes = contextual_bandit(3)
    with pytest.raises(ValueError, match="returned model index 5, expected 0..2"):
        replay(Broken(), vectors, outcomes, np.zeros(3), 0.0)


def test_make_router_rejects_unknown_name():
    context = RouterContext(("a", "b"), 4, np.array([0.0, 1.0]), 0.0, 0)
    with pytest.raises(KeyError, match="unknown router 'nope'"):
        make_router("nope", context)
    with pytest.raises(KeyError, match="unknown router 'nope'"):
        missing_dependency("nope")


def test_missing_extra_names_the_package(monkeypatch):
    from sona_web.eval import extras

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        extras.importlib.util, "find_spec", lambda name: None if name == "vowpalwabbit" else real_find_spec(name)
    )
    assert "pip install vowpalwabbit" in extras.missing_extra("vw_cb_adf")
