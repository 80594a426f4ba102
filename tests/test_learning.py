"""Each component measurably improves an outcome, and the test fails when it is switched off.

Synthetic tasks use unit-norm queries around a few cluster centres, so the
expected effects are large and the margins below are far from noise.
"""

import numpy as np
import pytest

from sona_web import SonaConfig, SonaEngine

DIM = 32


def unit_rows(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class ClusterTask:
    """Queries near K centres; each centre has a target activation that earns high quality."""

    def __init__(self, seed, clusters=2, spread=0.3):
        self.rng = np.random.default_rng(seed)
        self.centres = unit_rows(self.rng.standard_normal((clusters, DIM)))
        self.targets = unit_rows(self.rng.standard_normal((clusters, DIM)))
        self.spread = spread

    def queries(self, count):
        labels = self.rng.integers(len(self.centres), size=count)
        noise = self.spread * self.rng.standard_normal((count, DIM)) / np.sqrt(DIM)
        return labels, unit_rows(self.centres[labels] + noise)

    def feed(self, engine, count):
        """Half the trajectories show the cluster's target and earn 0.9; the rest show noise and earn 0.1."""
        labels, queries = self.queries(count)
        for label, query in zip(labels, queries):
            good = self.rng.random() < 0.5
            activation = self.targets[label] if good else self.rng.standard_normal(DIM) / np.sqrt(DIM)
            trajectory = engine.begin_trajectory(query)
            engine.add_trajectory_step(trajectory, activation, [0.5, 0.5], 1.0)
            engine.end_trajectory(trajectory, 0.9 if good else 0.1)

    def alignment(self, outputs, labels):
        """Mean cosine between outputs and the targets of their clusters."""
        return float(np.mean(np.sum(unit_rows(outputs) * self.targets[labels], axis=1)))


def make_engine(**fields):
    config = SonaConfig.default(hidden_dim=DIM, embedding_dim=DIM, seed=1, **fields)
    return SonaEngine.with_config(config, clock=lambda: 0.0)


# MicroLoRA -----------------------------------------------------------------


@pytest.mark.parametrize("micro_lora_lr, should_learn", [(0.1, True), (0.0, False)])
def test_micro_lora_moves_queries_toward_rewarded_activations(micro_lora_lr, should_learn):
    task = ClusterTask(seed=0)
    engine = make_engine(micro_lora_lr=micro_lora_lr)
    labels, probe = task.queries(200)
    before = task.alignment(engine.apply_micro_lora(probe), labels)

    task.feed(engine, 400)

    after = task.alignment(engine.apply_micro_lora(probe), labels)
    if should_learn:
        # Measured: -0.17 before, 0.95 after with seed 0.
        assert after > before + 0.5
    else:
        assert after == pytest.approx(before, abs=1e-6)


def test_micro_lora_needs_advantage():
    # The same steps with a constant quality carry no advantage signal after the
    # baseline catches up, so alignment must stay far below the rewarded case.
    task = ClusterTask(seed=2)
    engine = make_engine()
    labels, probe = task.queries(200)
    queries_labels, queries = task.queries(400)
    for label, query in zip(queries_labels, queries):
        trajectory = engine.begin_trajectory(query)
        engine.add_trajectory_step(trajectory, task.targets[label], [1.0], 1.0)
        engine.end_trajectory(trajectory, 0.5)
    constant = task.alignment(engine.apply_micro_lora(probe), labels)

    rewarded = make_engine()
    task.feed(rewarded, 400)
    assert task.alignment(rewarded.apply_micro_lora(probe), labels) > constant + 0.3


# BaseLoRA ------------------------------------------------------------------


def run_cycles(engine, task, cycles=6, per_cycle=200):
    for _ in range(cycles):
        task.feed(engine, per_cycle)
        engine.force_learn()


def test_base_lora_holds_what_micro_lora_learned():
    task = ClusterTask(seed=3)
    engine = make_engine()
    labels, probe = task.queries(200)
    before = task.alignment(engine.transform(probe), labels)

    run_cycles(engine, task)

    assert np.abs(engine.apply_base_lora(0, probe) - probe).max() > 0.1
    assert not engine._model.micro.lora_B.any()
    # The only difference left is the float32 rounding of the output.
    np.testing.assert_allclose(engine.apply_micro_lora(probe), probe, atol=1e-6)
    # Measured: -0.17 before, 0.97 after six cycles, carried by BaseLoRA alone.
    assert task.alignment(engine.transform(probe), labels) > before + 0.8


def test_without_base_lora_reset_loses_what_was_learned():
    task_full, task_ablated = ClusterTask(seed=4), ClusterTask(seed=4)
    full, ablated = make_engine(), make_engine(base_lora_lr=0.0)
    labels, probe = ClusterTask(seed=4).queries(200)
    before = task_full.alignment(full.transform(probe), labels)

    run_cycles(full, task_full)
    run_cycles(ablated, task_ablated)
    for engine in (full, ablated):
        engine._model.micro.reset()

    full_alignment = task_full.alignment(full.transform(probe), labels)
    ablated_alignment = task_ablated.alignment(ablated.transform(probe), labels)
    assert full_alignment > before + 0.8
    assert ablated_alignment == pytest.approx(before, abs=1e-6)
    assert not np.any(ablated._model.base[0].lora_B)


def test_base_lora_learns_from_replay_without_micro_lora():
    task = ClusterTask(seed=5)
    engine = make_engine(micro_lora_lr=0.0, base_lora_lr=0.2, base_lora_layers=2)
    labels, probe = task.queries(200)
    before = task.alignment(engine.transform(probe), labels)

    run_cycles(engine, task, cycles=4)

    for layer in range(2):
        assert np.abs(engine.apply_base_lora(layer, probe) - probe).max() > 1e-3
    assert task.alignment(engine.transform(probe), labels) > before + 0.01


# EWC++ ---------------------------------------------------------------------


class TwoTasks:
    """Task A and task B live in different regions and want opposite slopes along one direction."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.centre_a, self.centre_b, self.slope = unit_rows(self.rng.standard_normal((3, DIM)))

    def sample(self, task, count):
        centre, sign = (self.centre_a, 1.0) if task == "a" else (self.centre_b, -1.0)
        queries = unit_rows(centre + 0.8 * self.rng.standard_normal((count, DIM)) / np.sqrt(DIM))
        quality = np.clip(0.5 + sign * 2.0 * (queries @ self.slope), 0.0, 1.0)
        return queries, quality


def train(engine, queries, quality, cycle_every=200):
    for index, (query, target) in enumerate(zip(queries, quality)):
        trajectory = engine.begin_trajectory(query)
        engine.set_trajectory_route(trajectory, "model")
        engine.end_trajectory(trajectory, float(target))
        if index % cycle_every == cycle_every - 1:
            engine.force_learn()


def squared_error(engine, queries, quality):
    predicted = np.array([engine.predict_quality(query)["model"] for query in queries])
    return float(np.mean((predicted - quality) ** 2))


def forgetting_run(ewc_lambda, seed):
    tasks = TwoTasks(seed)
    engine = make_engine(ewc_lambda=ewc_lambda)
    probe_queries, probe_quality = tasks.sample("a", 300)
    train(engine, *tasks.sample("a", 1500))
    error_after_a = squared_error(engine, probe_queries, probe_quality)
    tasks_after_a = engine.stats()["ewc_tasks"]
    train(engine, *tasks.sample("b", 1500))
    return error_after_a, squared_error(engine, probe_queries, probe_quality), tasks_after_a, engine.stats()["ewc_tasks"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ewc_reduces_forgetting_of_task_a(seed):
    _, forgotten_without, _, _ = forgetting_run(0.0, seed)
    learned, forgotten_with, boundaries_in_a, boundaries_total = forgetting_run(2.0, seed)

    assert learned < 0.01
    # Measured with seeds 0-2: 0.12-0.57 without EWC++, 0.003-0.096 with it.
    assert forgotten_with < 0.7 * forgotten_without
    assert boundaries_in_a == 0
    assert boundaries_total == 1


def test_engine_detector_quiet_on_stationary_stream():
    tasks = TwoTasks(7)
    engine = make_engine()
    queries_a, quality_a = tasks.sample("a", 2000)
    queries_b, quality_b = tasks.sample("b", 2000)
    order = np.random.default_rng(0).permutation(4000)
    train(engine, np.concatenate([queries_a, queries_b])[order], np.concatenate([quality_a, quality_b])[order])
    assert engine.stats()["ewc_tasks"] == 0


@pytest.mark.parametrize("micro_batch_size", [1, 512])
def test_large_micro_batches_stay_stable(micro_batch_size):
    # Head gradients are averaged per route, so one flush of 512 trajectories
    # takes a step of the same size as one trajectory does.
    tasks = TwoTasks(8)
    engine = make_engine(micro_batch_size=micro_batch_size)
    queries, quality = tasks.sample("a", 1024)
    train(engine, queries, quality, cycle_every=512)
    engine.flush()
    assert np.isfinite(engine._model.heads_W).all()
    assert squared_error(engine, *tasks.sample("a", 200)) < 0.05
