"""The routing evaluation inside Pyodide makes the same decisions as on the host.

A subset of the real MMLU outcomes is embedded on both sides with the hashed
embedder and replayed to every router with the same seed; Pyodide must
return the same embeddings (to float32 rounding) and the same choices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from pytest_pyodide import run_in_pyodide

from sona_web.embedders import get_embedder
from sona_web.eval.data import load_routing_dataset
from sona_web.eval.registry import RouterContext, make_router
from sona_web.eval.routing import replay

MMLU_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routellm_mmlu"
ROUTERS = ["egreedy", "linucb", "knn", "thompson_kmeans", "random", "sona"]
STEPS = 150
COST_WEIGHT = 0.2


def host_choices(vectors: np.ndarray, outcomes: np.ndarray, names) -> dict[str, list[int]]:
    costs = np.array([0.0, 1.0])
    choices = {}
    for name in ROUTERS:
        context = RouterContext(tuple(names), vectors.shape[1], costs, COST_WEIGHT, 0, np.array([0.3, 0.7]))
        choices[name] = replay(make_router(name, context), vectors, outcomes, costs, COST_WEIGHT).choices.tolist()
    return choices


@run_in_pyodide(packages=["sona-web"])
def pyodide_choices(selenium, prompts, vectors, outcomes, names, routers, cost_weight):
    import numpy as np

    from sona_web.embedders import get_embedder
    from sona_web.eval.registry import RouterContext, make_router
    from sona_web.eval.routing import replay

    embedded = get_embedder("hashed", dim=256).embed(prompts)
    vectors = np.array(vectors, dtype=np.float32)
    outcomes = np.array(outcomes, dtype=np.float64)
    costs = np.array([0.0, 1.0])
    choices = {}
    for name in routers:
        context = RouterContext(tuple(names), vectors.shape[1], costs, cost_weight, 0, np.array([0.3, 0.7]))
        choices[name] = replay(make_router(name, context), vectors, outcomes, costs, cost_weight).choices.tolist()
    return embedded.tolist(), choices


def test_same_decisions_as_host(selenium):
    if not (MMLU_DIR / "responses").is_dir():
        pytest.skip(f"RouteLLM MMLU outcomes not found at {MMLU_DIR} (../shared/data beside the checkout)")
    dataset = load_routing_dataset(MMLU_DIR)
    rows = np.random.default_rng(0).permutation(dataset.n_prompts)[:STEPS]
    subset = dataset.subset(rows)
    vectors = get_embedder("hashed", dim=256).embed(list(subset.prompts))
    expected = host_choices(vectors, subset.outcomes, subset.model_names)

    embedded, choices = pyodide_choices(
        selenium, list(subset.prompts), vectors.tolist(), subset.outcomes.tolist(),
        list(subset.model_names), ROUTERS, COST_WEIGHT,
    )

    # Pyodide's numpy has no BLAS, so float32 sums may round differently.
    assert_allclose(np.array(embedded, dtype=np.float32), vectors, rtol=1e-5, atol=1e-6)
    for name in ROUTERS:
        assert choices[name] == expected[name], f"{name} chose differently in Pyodide"
