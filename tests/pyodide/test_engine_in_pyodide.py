"""The engine inside Pyodide 0.27.7 (Python 3.12, numpy 2.0.2), loaded from the built wheel.

Each ``@run_in_pyodide`` body is shipped to Pyodide on its own, so it imports
what it needs and repeats the few lines that record trajectories. Queries
are unit vectors, as sentence embeddings are. Pytest is
not part of the distribution, so the bodies use plain ``assert`` with a
message and ``try``/``except`` in place of ``pytest.raises``.
"""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose
from pytest_pyodide import run_in_pyodide

from sona_web import SonaConfig, SonaEngine

# Host numpy (with BLAS) and Pyodide's numpy 2.0.2 (without BLAS) may sum
# float32 products in a different order, so outputs agree to rounding only.
CROSS_RUNTIME_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@run_in_pyodide(packages=["sona-web"])
def test_import_from_wheel(selenium):
    import importlib.metadata
    import sys

    import numpy as np

    import sona_web
    from sona_web import AdaptiveRouter, RouteDecision, SonaConfig, SonaEngine

    assert sys.platform == "emscripten", sys.platform
    assert np.__version__ == "2.0.2", np.__version__
    # Metadata exists only for an installed distribution, so this proves the
    # package came from the wheel and not from copied sources.
    assert importlib.metadata.version("sona-web") == "0.1.0"
    assert "site-packages" in sona_web.__file__, sona_web.__file__
    for name in (AdaptiveRouter, RouteDecision, SonaConfig, SonaEngine):
        assert callable(name), name


@run_in_pyodide(packages=["sona-web"])
def test_config_rejects_rank(selenium):
    from sona_web import SonaConfig

    try:
        SonaConfig.default(micro_lora_rank=3).validate()
    except ValueError as error:
        message = str(error)
    else:
        raise AssertionError("micro_lora_rank=3 was accepted")

    assert "micro_lora_rank" in message, message
    assert "3" in message, message


@run_in_pyodide(packages=["sona-web"])
def test_learning_changes_micro_lora(selenium):
    import numpy as np

    from sona_web import SonaConfig, SonaEngine

    dim = 32
    engine = SonaEngine.with_config(SonaConfig.default(hidden_dim=dim, embedding_dim=dim, seed=7))
    rng = np.random.default_rng(0)

    def unit(v):
        return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)

    def alignment(h):
        return float(np.mean(unit(h) @ rewarded))

    rewarded = unit(rng.standard_normal(dim))
    probe = unit(rng.standard_normal((8, dim)))
    untrained = engine.apply_micro_lora(probe)
    # lora_B starts at zero, so a fresh adapter returns its input unchanged.
    np.testing.assert_array_equal(untrained, probe)

    # Steps whose activations lean toward `rewarded` earn high quality and
    # steps leaning away earn low quality, so MicroLoRA should turn the
    # representation toward `rewarded`.
    for i in range(120):
        query = unit(rng.standard_normal(dim))
        succeeded = i % 2 == 0
        activations = unit(query + (1.0 if succeeded else -1.0) * rewarded)
        tid = engine.begin_trajectory(query)
        engine.add_trajectory_step(tid, activations, np.ones(4) / 4, 1.0 if succeeded else 0.0)
        engine.end_trajectory(tid, 0.9 if succeeded else 0.1)
    adapted = engine.apply_micro_lora(probe)

    assert adapted.dtype == np.float32, adapted.dtype
    assert adapted.shape == probe.shape, adapted.shape
    assert np.isfinite(adapted).all()
    change = float(np.abs(adapted - probe).max())
    assert change > 1e-3, f"MicroLoRA output moved by only {change} after 120 trajectories"
    # Measured on CPython with these seeds: alignment 0.003 before, 0.016 after.
    before, after = alignment(probe), alignment(adapted)
    assert after > before + 0.008, f"alignment with the rewarded direction went from {before} to {after}"

    engine.force_learn()
    consolidated = alignment(engine.apply_base_lora(0, probe))
    assert consolidated > before + 0.008, f"BaseLoRA lost the learned shift: alignment {consolidated}"


@run_in_pyodide(packages=["sona-web"])
def test_patterns_after_force_learn(selenium):
    import numpy as np

    from sona_web import SonaConfig, SonaEngine

    dim = 32
    engine = SonaEngine.with_config(SonaConfig.default(hidden_dim=dim, embedding_dim=dim, seed=1))
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((2, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    for i in range(60):
        cluster = i % 2
        query = centres[cluster] + 0.05 * rng.standard_normal(dim)
        query = (query / np.linalg.norm(query)).astype(np.float32)
        tid = engine.begin_trajectory(query)
        engine.add_trajectory_step(tid, query, np.ones(4) / 4, 1.0)
        engine.set_trajectory_route(tid, ["weather", "billing"][cluster])
        engine.end_trajectory(tid, 0.9)
    engine.force_learn()

    patterns = engine.find_patterns(centres[0].astype(np.float32), k=3)
    assert patterns, "no patterns after 60 trajectories and force_learn()"
    best = patterns[0]
    for key in ("id", "centroid", "cluster_size", "avg_quality", "route_stats", "similarity"):
        assert key in best, f"pattern lacks {key}: {sorted(best)}"
    assert best["centroid"].shape == (dim,), best["centroid"].shape
    similarities = [p["similarity"] for p in patterns]
    assert similarities == sorted(similarities, reverse=True), similarities
    # The nearest pattern to the first cluster's centre must be the pattern
    # of the queries routed to "weather".
    weather = best["route_stats"].get("weather", {"count": 0})
    billing = best["route_stats"].get("billing", {"count": 0})
    assert weather["count"] > billing["count"], best["route_stats"]


@run_in_pyodide(packages=["sona-web"])
def test_state_round_trip(selenium):
    import numpy as np

    from sona_web import SonaConfig, SonaEngine

    dim = 32
    engine = SonaEngine.with_config(SonaConfig.default(hidden_dim=dim, embedding_dim=dim, seed=3))
    rng = np.random.default_rng(3)
    for i in range(30):
        query = rng.standard_normal(dim)
        query = (query / np.linalg.norm(query)).astype(np.float32)
        tid = engine.begin_trajectory(query)
        engine.add_trajectory_step(tid, query, np.ones(4) / 4, 0.5)
        engine.set_trajectory_route(tid, f"route-{i % 3}")
        engine.end_trajectory(tid, float(i % 5) / 4)
    engine.force_learn()

    data = engine.save_state()
    restored = SonaEngine.load_state(data)
    probe = rng.standard_normal((5, dim)).astype(np.float32)

    assert isinstance(data, bytes), type(data)
    np.testing.assert_array_equal(restored.apply_micro_lora(probe), engine.apply_micro_lora(probe))
    np.testing.assert_array_equal(restored.apply_base_lora(0, probe), engine.apply_base_lora(0, probe))
    before = engine.find_patterns(probe[0], k=5)
    after = restored.find_patterns(probe[0], k=5)
    assert [p["id"] for p in after] == [p["id"] for p in before]
    assert [p["similarity"] for p in after] == [p["similarity"] for p in before]


@run_in_pyodide(packages=["sona-web"])
def test_router_beats_single_model(selenium):
    import numpy as np

    from sona_web import AdaptiveRouter, SonaConfig

    dim = 32
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((2, dim))
    # Model "a" serves cluster 0 well and cluster 1 badly; "b" the reverse.
    quality = {("a", 0): 0.9, ("a", 1): 0.1, ("b", 0): 0.1, ("b", 1): 0.9}

    def sample():
        cluster = int(rng.integers(2))
        query = centres[cluster] + 0.3 * rng.standard_normal(dim)
        return cluster, (query / np.linalg.norm(query)).astype(np.float32)

    config = SonaConfig.default(hidden_dim=dim, embedding_dim=dim, seed=5)
    router = AdaptiveRouter([("a", 0.5), ("b", 0.5)], config=config, seed=5)
    for _ in range(300):
        cluster, query = sample()
        decision = router.route(query)
        router.record_outcome(query, decision.model, quality[(decision.model, cluster)])

    served = []
    for _ in range(200):
        cluster, query = sample()
        served.append(quality[(router.route(query).model, cluster)])
    mean_quality = float(np.mean(served))

    # Always "a" or always "b" averages 0.5 on this balanced stream.
    assert mean_quality > 0.75, f"router mean quality {mean_quality:.3f}, single model 0.5"


@run_in_pyodide(packages=["sona-web"])
def train_and_save_in_pyodide(selenium, dim):
    import numpy as np

    from sona_web import SonaConfig, SonaEngine

    engine = SonaEngine.with_config(SonaConfig.default(hidden_dim=dim, embedding_dim=dim, seed=9))
    rng = np.random.default_rng(9)
    for i in range(40):
        query = rng.standard_normal(dim)
        query = (query / np.linalg.norm(query)).astype(np.float32)
        tid = engine.begin_trajectory(query)
        engine.add_trajectory_step(tid, query, np.ones(4) / 4, 1.0)
        engine.set_trajectory_route(tid, "short" if query[0] > 0 else "long")
        engine.end_trajectory(tid, 0.9 if query[1] > 0 else 0.3)
    engine.force_learn()
    engine.flush()

    probe = rng.standard_normal((3, dim)).astype(np.float32)
    outputs = [engine.apply_micro_lora(probe).tolist(), engine.apply_base_lora(0, probe).tolist()]
    return engine.save_state(), probe.tolist(), outputs


@run_in_pyodide(packages=["sona-web"])
def load_and_apply_in_pyodide(selenium, data, probe):
    import numpy as np

    from sona_web import SonaEngine

    engine = SonaEngine.load_state(data)
    probe = np.array(probe, dtype=np.float32)
    return [engine.apply_micro_lora(probe).tolist(), engine.apply_base_lora(0, probe).tolist()]


def apply_on_host(engine: SonaEngine, probe) -> list[np.ndarray]:
    probe = np.array(probe, dtype=np.float32)
    return [engine.apply_micro_lora(probe), engine.apply_base_lora(0, probe)]


def test_state_from_pyodide_loads_on_host(selenium):
    data, probe, pyodide_outputs = train_and_save_in_pyodide(selenium, 32)

    engine = SonaEngine.load_state(data)

    for host_output, pyodide_output in zip(apply_on_host(engine, probe), pyodide_outputs):
        assert_allclose(host_output, np.array(pyodide_output, dtype=np.float32), **CROSS_RUNTIME_TOLERANCE)
    assert not np.allclose(pyodide_outputs[1], probe), "the saved engine had not learned anything"


def test_state_from_host_loads_in_pyodide(selenium):
    dim = 32
    engine = SonaEngine.with_config(SonaConfig.default(hidden_dim=dim, embedding_dim=dim, seed=4))
    rng = np.random.default_rng(4)
    for i in range(40):
        query = rng.standard_normal(dim)
        query = (query / np.linalg.norm(query)).astype(np.float32)
        tid = engine.begin_trajectory(query)
        engine.add_trajectory_step(tid, query, np.ones(4) / 4, 1.0)
        engine.set_trajectory_route(tid, "short" if query[0] > 0 else "long")
        engine.end_trajectory(tid, 0.9 if query[1] > 0 else 0.3)
    engine.force_learn()
    probe = rng.standard_normal((3, dim)).astype(np.float32)

    pyodide_outputs = load_and_apply_in_pyodide(selenium, engine.save_state(), probe.tolist())

    for host_output, pyodide_output in zip(apply_on_host(engine, probe), pyodide_outputs):
        assert_allclose(np.array(pyodide_output, dtype=np.float32), host_output, **CROSS_RUNTIME_TOLERANCE)
