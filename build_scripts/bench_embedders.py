"""Benchmark the text embedders on CLINC150: speed, size, accuracy, OOS AUROC.

Usage: python build_scripts/bench_embedders.py DATA_DIR [--models DIR] [--cache DIR]

``DATA_DIR`` contains ``clinc150/data_full.json``. The int8 models come from
``--models`` (default ``dist/site/models``, built first if missing); the
float32 baselines load the original weights from the download cache.

For each embedder it prints:

- CPU milliseconds per text, one text per call (``embed_one``, 300
  validation queries) and in one batch of all 4,500 test queries. BLAS runs
  on one thread (as in Pyodide), and CPU time rather than wall time keeps
  the figures comparable on a shared machine;
- the download size of the web model files;
- nearest-centroid intent accuracy on the 4,500 in-scope test queries, with
  centroids (normalised means) of 1, 3 or 10 random training examples per
  intent (mean over 5 draws) or of the full training set;
- out-of-scope AUROC: the in-scope score of a query is its maximum cosine to
  the full-training-set centroids, and the 4,500 in-scope test queries are
  ranked against the 1,000 out-of-scope test queries;
- for each int8 model, the mean and minimum cosine between its embeddings
  and the float32 model's on the test queries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "build_scripts"))

from build_models import build_models, read_source  # noqa: E402

from sona_web.embedders import HashedEmbedder  # noqa: E402
from sona_web.embedders.minilm import MiniLMEmbedder  # noqa: E402
from sona_web.embedders.wordllama import WordLlamaEmbedder  # noqa: E402

SHOTS = (1, 3, 10)
DRAWS = 5
TIMED_SINGLE = 300


def centroids_of(vectors: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    centroids = np.zeros((classes, vectors.shape[1]))
    np.add.at(centroids, labels, vectors)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Return P(positive score > negative score), ties counted as one half."""
    scores = np.concatenate([positive, negative])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average rank of each distinct score, so tied scores share a rank.
    upper = np.cumsum(counts)
    average_rank = upper - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    positive_rank_sum = ranks[: len(positive)].sum()
    pairs_won = positive_rank_sum - len(positive) * (len(positive) + 1) / 2.0
    return float(pairs_won / (len(positive) * len(negative)))


def few_shot_indices(labels: np.ndarray, shots: int, rng) -> np.ndarray:
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.choice(members, size=min(shots, len(members)), replace=False))
    return np.concatenate(chosen)


def evaluate(embedder, data: dict) -> dict:
    intents = sorted({intent for _, intent in data["train"]})
    index = {intent: i for i, intent in enumerate(intents)}
    train_labels = np.array([index[intent] for _, intent in data["train"]])
    test_labels = np.array([index[intent] for _, intent in data["test"]])
    test_texts = [query for query, _ in data["test"]]

    start = time.process_time()
    test_vectors = embedder.embed(test_texts)
    batch_ms = (time.process_time() - start) * 1000 / len(test_texts)

    # Validation queries are not in any tokenizer or feature cache yet, so
    # both timings are for new texts.
    start = time.process_time()
    for query, _ in data["val"][:TIMED_SINGLE]:
        embedder.embed_one(query)
    single_ms = (time.process_time() - start) * 1000 / TIMED_SINGLE

    train_vectors = embedder.embed([query for query, _ in data["train"]]).astype(np.float64)
    oos_vectors = embedder.embed([query for query, _ in data["oos_test"]])

    result = {"single_ms": single_ms, "batch_ms": batch_ms, "test_vectors": test_vectors}
    rng = np.random.default_rng(0)
    for shots in SHOTS:
        accuracies = []
        for _ in range(DRAWS):
            chosen = few_shot_indices(train_labels, shots, rng)
            centroids = centroids_of(train_vectors[chosen], train_labels[chosen], len(intents))
            accuracies.append(((test_vectors @ centroids.T).argmax(axis=1) == test_labels).mean())
        result[f"acc_{shots}"] = float(np.mean(accuracies))

    centroids = centroids_of(train_vectors, train_labels, len(intents))
    result["acc_full"] = float(((test_vectors @ centroids.T).argmax(axis=1) == test_labels).mean())
    result["oos_auroc"] = auroc(
        (test_vectors @ centroids.T).max(axis=1), (oos_vectors @ centroids.T).max(axis=1)
    )
    return result


def model_bytes(model_dir: Path) -> int:
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    return sum(entry["bytes"] for entry in manifest["files"].values())


def build_embedders(models_dir: Path, cache_dir):
    """Yield ``(label, embedder, download bytes, float32 baseline label)``."""
    dirs = build_models(models_dir, cache_dir)
    wordllama_source = read_source("wordllama", cache_dir)
    minilm_source = read_source("minilm", cache_dir)

    yield "hashed 256", HashedEmbedder(dim=256), 0, None
    for dim in (64, 128, 256):
        yield (
            f"wordllama {dim} float32",
            WordLlamaEmbedder.from_files(wordllama_source["weights"], wordllama_source["tokenizer"], dim=dim),
            None,
            None,
        )
        yield (
            f"wordllama {dim} int8",
            WordLlamaEmbedder.from_dir(dirs["wordllama"], dim=dim),
            model_bytes(dirs["wordllama"]),
            f"wordllama {dim} float32",
        )
    yield (
        "minilm float32",
        MiniLMEmbedder.from_files(minilm_source["weights"], minilm_source["tokenizer"]),
        None,
        None,
    )
    yield "minilm int8", MiniLMEmbedder.from_dir(dirs["minilm"]), model_bytes(dirs["minilm"]), "minilm float32"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="directory containing clinc150/data_full.json")
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "dist" / "site" / "models",
                        help="model directory written by build_models.py (built if missing)")
    parser.add_argument("--cache", type=Path, default=None, help="cache directory holding downloads/")
    args = parser.parse_args(argv)

    data = json.loads((args.data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    blas = [f"{p['internal_api']} {p['version']} {p.get('architecture', '')}" for p in threadpool_info()]
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, BLAS {', '.join(blas)} on 1 thread")
    header = ("embedder", "ms/text one", "ms/text batch", "download MB",
              "acc 1-shot", "acc 3-shot", "acc 10-shot", "acc full", "OOS AUROC", "cos vs f32 mean/min")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))

    with threadpool_limits(limits=1, user_api="blas"):
        run(args, data)
    return 0


def run(args, data) -> None:
    vectors_by_label = {}
    for label, embedder, size, baseline in build_embedders(args.models, args.cache):
        result = evaluate(embedder, data)
        vectors_by_label[label] = result["test_vectors"]
        agreement = ""
        if baseline is not None:
            cosines = (result["test_vectors"] * vectors_by_label[baseline]).sum(axis=1)
            agreement = f"{cosines.mean():.4f} / {cosines.min():.4f}"
        row = (
            label,
            f"{result['single_ms']:.3f}",
            f"{result['batch_ms']:.3f}",
            "-" if size is None else f"{size / 1e6:.1f}",
            *(f"{result[f'acc_{shots}']:.3f}" for shots in SHOTS),
            f"{result['acc_full']:.3f}",
            f"{result['oos_auroc']:.3f}",
            agreement,
        )
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
