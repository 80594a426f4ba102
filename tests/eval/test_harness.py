"""The evaluation end to end: command line, sweep, references, drift, determinism."""

import importlib.util
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sona_web.eval.cli import main
from sona_web.eval.data import load_routing_dataset
from sona_web.eval.drift import _recovery, run_drift
from sona_web.eval.references import offline_ridge, online_knn_predictions, subject_oracle
from sona_web.eval.registry import missing_dependency
from sona_web.eval.routing import run_sweep, summarise

from .conftest import SYNTHETIC_MODELS

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run_cli(args):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(args, stdout=stdout, stderr=stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def available(names):
    return [name for name in names if missing_dependency(name) is None]


def test_cli_three_model_dataset(synthetic_dir, tmp_path):
    routers = available(["always_weak", "always_strong", "egreedy", "linucb", "knn", "thompson_kmeans", "random", "sona"])
    out = tmp_path / "out"
    code, stdout, stderr = run_cli([
        "routing", str(synthetic_dir), "--quick", "--lambdas", "0,0.3", "--out", str(out),
        "--costs", "small-model=0.1,medium-model=0.5,large-model=2.0",
        "--routers", ",".join(routers), "--match", "egreedy", "--drift-pattern", "algebra",
    ])
    assert code == 0, stderr

    results = json.loads((out / "results.json").read_text())
    assert results["model_names"] == list(SYNTHETIC_MODELS)
    assert_allclose(results["costs"], [0.0, 0.4 / 1.9, 1.0])
    names = [summary["router"] for summary in results["summaries"]]
    assert names[-3:] == ["offline_ridge", "online_knn_full_info", "subject_oracle"]
    assert set(routers) <= set(names)
    assert all(len(record["model_shares"]) == 3 for record in results["records"])
    assert results["drift"]["subjects"] == ["algebra"]
    for name in routers:
        assert f"| {name} |" in stdout
    if HAS_MATPLOTLIB:
        for plot in ("quality_cost.png", "learning_curve.png", "drift.png"):
            assert (out / plot).stat().st_size > 1000


def test_cli_quick_on_real_data(mmlu_dir, tmp_path):
    routers = available(["always_weak", "always_strong", "linucb", "random", "sona"])
    match = "sona" if "sona" in routers else "linucb"
    out = tmp_path / "out"
    code, stdout, stderr = run_cli([
        "routing", str(mmlu_dir), "--quick", "--limit", "400", "--lambdas", "0,0.3", "--out", str(out),
        "--routers", ",".join(routers), "--match", match, "--no-plots",
    ])
    assert code == 0, stderr
    assert "400 prompts, 2 models" in stderr

    results = json.loads((out / "results.json").read_text())
    summaries = {summary["router"]: summary for summary in results["summaries"]}
    assert_allclose(summaries["always_weak"]["apgr"][0], 0.5)
    assert_allclose(summaries["always_strong"]["apgr"][0], 0.5)
    assert summaries["offline_ridge"]["apgr"][0] > 0.5
    assert summaries["subject_oracle"]["apgr"][0] > 0.6

    # The random router calls the strong model as often as the matched router, up to sampling noise.
    for weight in results["settings"]["cost_weights"]:
        share = {
            name: np.mean([r["cost_share"] for r in results["records"] if r["router"] == name and r["cost_weight"] == weight])
            for name in ("random", match)
        }
        # 400 draws per seed: the standard error of a share is at most 0.025.
        assert abs(share["random"] - share[match]) < 0.1


def test_cli_missing_data_folder(tmp_path):
    missing = tmp_path / "no-such-data"
    code, _, stderr = run_cli(["routing", str(missing), "--out", str(tmp_path / "out")])
    assert code == 2
    assert f"routing data folder not found: {missing}" in stderr


def test_cli_invalid_costs(synthetic_dir, tmp_path):
    code, _, stderr = run_cli(["routing", str(synthetic_dir), "--costs", "1,2", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--costs lists 2 values but the data has 3 models" in stderr


def test_cli_drift_pattern_without_match(synthetic_dir, tmp_path):
    code, _, stderr = run_cli([
        "routing", str(synthetic_dir), "--quick", "--routers", "always_weak,always_strong",
        "--drift-pattern", "chemistry", "--out", str(tmp_path / "out"), "--no-plots",
    ])
    assert code == 2
    assert "drift pattern 'chemistry' matches no subject" in stderr


def test_cli_rejects_bad_lambdas(synthetic_dir):
    with pytest.raises(SystemExit) as error:
        run_cli(["routing", str(synthetic_dir), "--lambdas", "0,x"])
    assert error.value.code == 2


def synthetic_arrays(synthetic_dir):
    dataset = load_routing_dataset(synthetic_dir)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((dataset.n_prompts, 8)).astype(np.float32)
    return dataset, vectors, np.array([0.0, 0.5, 1.0])


def test_sweep_same_seed_same_records(synthetic_dir):
    dataset, vectors, costs = synthetic_arrays(synthetic_dir)
    routers = available(["egreedy", "knn", "thompson_kmeans", "sona", "random"])
    runs = [
        run_sweep(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs, routers,
                  (0.0, 0.2), (0, 1), match="egreedy")
        for _ in range(2)
    ]
    untimed = [[replace(r, route_us=0.0, update_us=0.0) for r in run.records] for run in runs]
    assert untimed[0] == untimed[1]
    other_seed = run_sweep(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs, ["egreedy"],
                           (0.0,), (5,))
    assert other_seed.records[0].accuracy != untimed[0][0].accuracy or other_seed.records[0].regret != untimed[0][0].regret


def test_summary_intervals_over_seeds(synthetic_dir):
    dataset, vectors, costs = synthetic_arrays(synthetic_dir)
    result = run_sweep(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs,
                       ["always_weak", "egreedy"], (0.0, 0.3), (0, 1, 2))
    summaries = {s.router: s for s in summarise(result)}
    mean, low, high = summaries["egreedy"].apgr
    assert low <= mean <= high
    assert summaries["egreedy"].seeds == 3
    assert summaries["subject_oracle"].seeds == 1

    # Regret per prompt: each run's cumulative regret over its prompts, averaged over cost weights and seeds.
    weak_runs = [r.regret / r.steps for r in result.records if r.router == "always_weak"]
    assert summaries["always_weak"].regret[0] == pytest.approx(np.mean(weak_runs))
    assert summaries["always_weak"].regret[0] > 0

    # CPT is a share of calls, so its interval stays inside [0, 1] even when three seeds disagree.
    for summary in summaries.values():
        for low, high in (summary.cpt50[1:], summary.cpt80[1:]):
            assert 0.0 <= low
            assert high <= 1.0


def test_subject_oracle_hand_computed():
    outcomes = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    subjects = ["a", "a", "b", "b"]
    curve = subject_oracle(subjects, outcomes, np.array([0.0, 1.0]), (0.0, 0.6))
    # Subject a: means (1, 0.5) -> weak. Subject b: (0, 1) -> strong at lambda 0,
    # and at 0.6 the strong reward 0.4 still beats 0. Every row is served
    # by the cheapest model that is correct on it, so no regret.
    assert_allclose(curve.accuracies, [1.0, 1.0])
    assert_allclose(curve.cost_shares, [0.5, 0.5])
    assert_allclose(curve.regrets, [0.0, 0.0])
    assert (curve.weak_accuracy, curve.strong_accuracy) == (0.5, 0.75)


def test_subject_oracle_ties_go_to_cheaper_model():
    outcomes = np.array([[1.0, 1.0], [0.0, 0.0]])
    curve = subject_oracle(["a", "a"], outcomes, np.array([0.0, 1.0]), (0.0,))
    assert_allclose(curve.cost_shares, [0.0])


def test_offline_ridge_learns_linear_signal():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 4)).astype(np.float32)
    outcomes = np.stack([(vectors[:, 0] > 0), np.ones(2000, dtype=bool)], axis=1).astype(np.float64)
    curve = offline_ridge(vectors, outcomes, np.array([0.0, 1.0]), (0.3,))
    # The weak model is right exactly when x0 > 0. The least-squares line is
    # 0.5 + 0.4 * x0 (0.4 = E[x0; x0 > 0]), below the strong reward 0.7 for
    # x0 < 0.5, so the strong model takes about Phi(0.5) = 69% of the calls,
    # and the weak model serves only rows it gets right.
    assert curve.accuracies[0] > 0.99
    assert 0.62 < curve.cost_shares[0] < 0.76


def test_online_knn_reference_uses_only_earlier_rows():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((4, 6))
    kinds = rng.integers(4, size=600)
    vectors = centres[kinds] + 0.1 * rng.standard_normal((600, 6))
    outcomes = np.stack([kinds % 2 == 0, np.ones(600, dtype=bool)], axis=1).astype(np.float64)
    predicted = online_knn_predictions(vectors, outcomes, k=20)

    # Changing the second half's outcomes changes no prediction of the first half.
    altered = outcomes.copy()
    altered[300:] = 1.0 - altered[300:]
    assert_allclose(online_knn_predictions(vectors, altered, k=20)[:301], predicted[:301])
    assert_allclose(predicted[0], [0.5, 0.5])
    # Once each kind has 20 earlier rows, the weak model's prediction is that
    # kind's outcome, apart from the two pseudo-observations of the running mean.
    late = slice(200, None)
    assert np.all(np.abs(predicted[late, 0] - outcomes[late, 0]) < 0.1)


def test_drift_recovery_rule():
    gaps = np.concatenate([np.full(30, 0.5), np.full(30, 0.0)])
    # Level 0.1 gives threshold 0.12: the first window of 10 with a mean at
    # most 0.12 contains two 0.5s and eight zeros, and ends after gap 38.
    assert _recovery(gaps, 0.1, 10) == 38
    assert _recovery(np.full(30, 0.5), 0.1, 10) is None
    assert _recovery(np.zeros(5), 0.1, 10) is None


def test_drift_flips_weak_model_on_group(synthetic_dir):
    dataset, vectors, costs = synthetic_arrays(synthetic_dir)
    result = run_drift(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs,
                       ["always_weak", "always_strong"], 0.0, (0,), pattern="poetry", window=10)
    runs = {run.router: run for run in result.runs}
    # Poetry: the weak model is right 90% of the time, so after the flip it is the worst choice.
    assert runs["always_weak"].pre_level < 0.05
    assert runs["always_weak"].post_regret > 0.5
    assert runs["always_weak"].recovery is None
    assert runs["always_strong"].post_regret < 0.05
    assert result.subjects == ("poetry",)
    assert result.curves["always_weak"].shape[0] > 40


@pytest.mark.parametrize("pattern, window, message", [("zzz", 10, "matches no subject"), ("poetry", 0, "window must be >= 1")])
def test_drift_rejects_bad_arguments(synthetic_dir, pattern, window, message):
    dataset, vectors, costs = synthetic_arrays(synthetic_dir)
    with pytest.raises(ValueError, match=message):
        run_drift(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs, ["always_weak"],
                  0.0, (0,), pattern=pattern, window=window)


def test_parallel_cells_match_sequential(synthetic_dir):
    dataset, vectors, costs = synthetic_arrays(synthetic_dir)
    results = [
        run_sweep(vectors, dataset.outcomes, dataset.subjects, dataset.model_names, costs,
                  ["egreedy", "random"], (0.0, 0.3), (0, 1), match="egreedy", jobs=jobs)
        for jobs in (1, 2)
    ]
    untimed = [[replace(r, route_us=0.0, update_us=0.0) for r in result.records] for result in results]
    assert untimed[0] == untimed[1]


def test_map_cells_rejects_zero_jobs():
    from sona_web.eval.parallel import map_cells

    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        map_cells(lambda shared, cell, tick: cell, [1], {}, jobs=0)


def test_sona_adapter_rejects_unknown_variant():
    if missing_dependency("sona") is not None:
        pytest.skip(missing_dependency("sona"))
    from sona_web.eval.sona_adapter import SonaRouter

    with pytest.raises(KeyError, match="unknown sona variant 'sona_fast'"):
        SonaRouter(("a", "b"), [0.0, 1.0], 0.1, 8, 0, variant="sona_fast")


def test_cli_rejects_zero_seeds(synthetic_dir):
    with pytest.raises(SystemExit) as error:
        run_cli(["routing", str(synthetic_dir), "--seeds", "0"])
    assert error.value.code == 2


def test_cli_model_embedder_needs_model_dir(synthetic_dir, tmp_path):
    code, _, stderr = run_cli(["routing", str(synthetic_dir), "--embedder", "minilm", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--embedder minilm needs --model-dir" in stderr


def test_cli_no_router_can_run(synthetic_dir, tmp_path, monkeypatch):
    from sona_web.eval import cli

    monkeypatch.setattr(cli, "missing_dependency", lambda name: f"{name} skipped: test")
    code, _, stderr = run_cli(["routing", str(synthetic_dir), "--routers", "egreedy", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "egreedy skipped: test" in stderr
    assert "no router can run" in stderr
