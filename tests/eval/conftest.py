"""Fixtures for the routing evaluation tests: the real MMLU outcomes and a synthetic 3-model data set."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MMLU_DIR = REPO_ROOT.parent / "shared" / "data" / "routellm_mmlu"

SYNTHETIC_MODELS = ("small-model", "medium-model", "large-model")

# Per subject: the vocabulary of its prompts and each model's chance of a
# correct answer. The best model differs by subject, so a router that reads
# the prompt can beat every single model.
SYNTHETIC_SUBJECTS = {
    "algebra": (("equation", "solve", "variable", "polynomial", "root", "factor"), (0.1, 0.3, 0.9)),
    "poetry": (("rhyme", "verse", "sonnet", "metaphor", "stanza", "meter"), (0.9, 0.5, 0.9)),
    "geography": (("river", "capital", "mountain", "border", "continent", "ocean"), (0.3, 0.9, 0.9)),
}


def write_synthetic_dataset(root: Path, per_subject: int = 80, seed: int = 0) -> Path:
    """Write ``root/responses/synth_<subject>.csv`` for three models and return ``root``."""
    rng = np.random.default_rng(seed)
    responses = root / "responses"
    responses.mkdir(parents=True)
    for subject, (words, chances) in SYNTHETIC_SUBJECTS.items():
        with (responses / f"synth_{subject}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["prompt", *SYNTHETIC_MODELS])
            for i in range(per_subject):
                chosen = rng.choice(words, size=5)
                prompt = f"Question {i} about {subject}: " + " ".join(chosen) + "?\nA. yes\nB. no\nAnswer:"
                outcomes = ["True" if rng.random() < p else "False" for p in chances]
                writer.writerow([prompt, *outcomes])
    return root


@pytest.fixture
def synthetic_dir(tmp_path) -> Path:
    return write_synthetic_dataset(tmp_path / "synthetic")


@pytest.fixture
def mmlu_dir() -> Path:
    if not (MMLU_DIR / "responses").is_dir():
        pytest.skip(f"RouteLLM MMLU outcomes not found at {MMLU_DIR} (../shared/data beside the checkout)")
    return MMLU_DIR


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Keep embedding caches written by tests out of the user's cache folder."""
    monkeypatch.setenv("SONA_WEB_CACHE", str(tmp_path / "cache"))
