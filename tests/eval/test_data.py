"""Loading outcome data, costs, and the embedding cache."""

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

from sona_web.eval import costs as cost_module
from sona_web.eval.data import load_routing_dataset
from sona_web.eval.embed import cache_path, embed_dataset

from .conftest import SYNTHETIC_MODELS, SYNTHETIC_SUBJECTS


def test_load_synthetic_three_models(synthetic_dir):
    dataset = load_routing_dataset(synthetic_dir)
    assert dataset.model_names == SYNTHETIC_MODELS
    assert dataset.outcomes.shape == (3 * 80, 3)
    assert set(dataset.subjects) == set(SYNTHETIC_SUBJECTS)
    assert set(np.unique(dataset.outcomes)) <= {0.0, 1.0}


def test_load_real_mmlu(mmlu_dir):
    dataset = load_routing_dataset(mmlu_dir)
    assert dataset.model_names == ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")
    assert dataset.dropped_contaminated == 5
    assert dataset.n_prompts == 14_042 - 5
    assert len(set(dataset.subjects)) == 57
    assert "abstract_algebra" in dataset.subjects
    # Before decontamination, GPT-4 alone is right on 2,497 prompts and Mixtral alone on 742.
    full = load_routing_dataset(mmlu_dir, drop_contaminated=False)
    only_strong = int(np.sum((full.outcomes[:, 1] == 1) & (full.outcomes[:, 0] == 0)))
    only_weak = int(np.sum((full.outcomes[:, 0] == 1) & (full.outcomes[:, 1] == 0)))
    assert full.n_prompts == 14_042
    assert only_strong == 2_497
    assert only_weak == 742


def test_contaminated_prompts_dropped(synthetic_dir):
    first = load_routing_dataset(synthetic_dir).prompts[0]
    with (synthetic_dir / "contaminated_prompts.jsonl").open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"train_prompt": "x", "eval_prompt": first}) + "\n")
    dataset = load_routing_dataset(synthetic_dir)
    assert dataset.dropped_contaminated == 1
    assert first not in dataset.prompts
    assert load_routing_dataset(synthetic_dir, drop_contaminated=False).prompts[0] == first


def test_numeric_outcomes_accepted(tmp_path):
    (tmp_path / "responses").mkdir()
    (tmp_path / "responses" / "only.csv").write_text("prompt,a,b\nhello,0.25,1\n", encoding="utf-8")
    dataset = load_routing_dataset(tmp_path)
    assert_allclose(dataset.outcomes, [[0.25, 1.0]])
    assert dataset.subjects == ("only",)


def test_subset_keeps_rows_in_order(synthetic_dir):
    dataset = load_routing_dataset(synthetic_dir)
    part = dataset.subset([5, 2])
    assert part.prompts == (dataset.prompts[5], dataset.prompts[2])
    assert_allclose(part.outcomes, dataset.outcomes[[5, 2]])


def test_missing_folder_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"routing data folder not found: {missing}"):
        load_routing_dataset(missing)


def test_missing_responses_folder_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no responses/ subfolder"):
        load_routing_dataset(tmp_path)


def test_empty_responses_folder(tmp_path):
    (tmp_path / "responses").mkdir()
    with pytest.raises(FileNotFoundError, match="no CSV files in"):
        load_routing_dataset(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("question,a,b\nq,True,False\n", "header must be 'prompt' followed by at least two model columns"),
        ("prompt,a\nq,True\n", "header must be 'prompt' followed by at least two model columns"),
        ("prompt,a,a\nq,True,False\n", "duplicate model columns"),
        ("prompt,a,b\nq,True\n", r"only.csv:2: expected 3 fields, got 2"),
        ("prompt,a,b\nq,True,maybe\n", r"outcome must be True, False or a number in \[0, 1\], got 'maybe'"),
        ("prompt,a,b\nq,True,1.5\n", r"got '1.5'"),
    ],
)
def test_malformed_csv_rejected(tmp_path, text, message):
    (tmp_path / "responses").mkdir()
    (tmp_path / "responses" / "only.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_routing_dataset(tmp_path)


def test_files_with_different_models_rejected(tmp_path):
    (tmp_path / "responses").mkdir()
    (tmp_path / "responses" / "a.csv").write_text("prompt,x,y\nq,True,False\n", encoding="utf-8")
    (tmp_path / "responses" / "b.csv").write_text("prompt,x,z\nq,True,False\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"model columns \['x', 'z'\] differ"):
        load_routing_dataset(tmp_path)


@pytest.mark.parametrize(
    "line, message",
    [("{not json\n", "invalid JSON"), ('{"prompt": "q"}\n', "expected an object with a string 'eval_prompt'")],
)
def test_bad_contaminated_file_rejected(synthetic_dir, line, message):
    (synthetic_dir / "contaminated_prompts.jsonl").write_text(line, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_routing_dataset(synthetic_dir)


def test_all_rows_contaminated_rejected(tmp_path):
    (tmp_path / "responses").mkdir()
    (tmp_path / "responses" / "a.csv").write_text("prompt,x,y\nq,True,False\n", encoding="utf-8")
    (tmp_path / "contaminated_prompts.jsonl").write_text('{"eval_prompt": "q"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="no rows left"):
        load_routing_dataset(tmp_path)


def test_default_costs_rank_by_accuracy():
    outcomes = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    # Means 2/3, 1/3, 2/3: model 1 cheapest, ties keep column order.
    assert_allclose(cost_module.default_costs(outcomes), [0.5, 0.0, 1.0])


def test_parse_costs_positional_and_named():
    names = ("a", "b=x", "c")
    assert_allclose(cost_module.parse_costs("1, 2, 3", names), [1, 2, 3])
    assert_allclose(cost_module.parse_costs("c=3,a=1,b=x=2", names), [1, 2, 3])
    assert_allclose(cost_module.normalise_costs([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,2", "lists 2 values but the data has 3 models"),
        ("a=1,b=x=2,d=3", "unknown model 'd'"),
        ("a=1,a=2,c=3", "names model 'a' twice"),
        ("a=1,c=3", r"gives no cost for \['b=x'\]"),
        ("1,two,3", "item 'two' is not a number"),
        ("1,inf,3", "item 'inf' is not finite"),
    ],
)
def test_parse_costs_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        cost_module.parse_costs(text, ("a", "b=x", "c"))


@pytest.mark.parametrize(
    "costs, message",
    [([1.0], "at least two models"), ([1.0, -1.0], "finite and >= 0"), ([2.0, 2.0], "must not all be equal")],
)
def test_normalise_costs_rejects(costs, message):
    with pytest.raises(ValueError, match=message):
        cost_module.normalise_costs(costs)


class CountingEmbedder:
    name = "counting"
    dim = 4

    def __init__(self):
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        return np.array([[len(t), 1.0, 0.0, 0.0] for t in texts], dtype=np.float32)


def test_embedding_cache_written_and_reused(synthetic_dir, tmp_path):
    dataset = load_routing_dataset(synthetic_dir)
    embedder = CountingEmbedder()
    first = embed_dataset(dataset, embedder)
    path = cache_path(dataset, "counting", 4)
    assert path.is_file()
    assert path.parent == tmp_path / "cache" / "eval"

    second = embed_dataset(dataset, embedder)
    assert embedder.calls == 1
    assert np.array_equal(first, second)

    other = dataset.subset(range(10))
    assert cache_path(other, "counting", 4) != path


def test_embedding_cache_bypassed(synthetic_dir):
    dataset = load_routing_dataset(synthetic_dir)
    embedder = CountingEmbedder()
    embed_dataset(dataset, embedder, use_cache=False)
    embed_dataset(dataset, embedder, use_cache=False)
    assert embedder.calls == 2
    assert not cache_path(dataset, "counting", 4).exists()
