"""WordLlama embedder: reference agreement, int8 accuracy, shapes and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sona_web.embedders import HashedEmbedder, get_embedder
from sona_web.embedders.wordllama import WordLlamaEmbedder

from .helpers import centroid_accuracy, few_shot, sample


@pytest.fixture(scope="module")
def int8_model(model_dirs) -> WordLlamaEmbedder:
    return WordLlamaEmbedder.from_dir(model_dirs["wordllama"])


@pytest.fixture(scope="module")
def float_model(source_files) -> WordLlamaEmbedder:
    files = source_files["wordllama"]
    return WordLlamaEmbedder.from_files(files["weights"], files["tokenizer"])


def _normalized(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def test_float_model_matches_wordllama_package(float_model, reference_embeddings):
    vectors = float_model.embed(reference_embeddings["texts"])
    expected = _normalized(reference_embeddings["wordllama_256_unnormalized"])
    # The reference values are rounded to 7 decimals before normalisation.
    assert_allclose(vectors, expected, atol=1e-6)


@pytest.mark.parametrize("dim", [64, 128])
def test_truncated_dims_match_package(source_files, reference_embeddings, dim):
    files = source_files["wordllama"]
    embedder = WordLlamaEmbedder.from_files(files["weights"], files["tokenizer"], dim=dim)
    prefix = np.asarray(reference_embeddings["wordllama_256_unnormalized"])[:, :dim]
    assert_allclose(embedder.embed(reference_embeddings["texts"]), _normalized(prefix), atol=1e-6)


def test_int8_close_to_float(int8_model, float_model, reference_embeddings):
    texts = [text for text in reference_embeddings["texts"] if text]
    cosines = (int8_model.embed(texts) * float_model.embed(texts)).sum(axis=1)
    assert cosines.min() > 0.99


@pytest.mark.parametrize("dim", [64, 128, 256])
def test_embed_shape_dtype_norm(model_dirs, dim):
    embedder = get_embedder("wordllama", model_dir=model_dirs["wordllama"], dim=dim)
    vectors = embedder.embed(["set an alarm", "", "what's the weather"])
    assert vectors.shape == (3, dim)
    assert vectors.dtype == np.float32
    assert_allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1.0, rtol=1e-5)
    # The empty string has no tokens, so its row is zero, not NaN.
    assert_array_equal(vectors[1], 0.0)
    assert embedder.embed_one("set an alarm").shape == (dim,)
    assert_allclose(embedder.embed_one("set an alarm"), vectors[0], atol=1e-7)


def test_batch_across_chunks(int8_model):
    texts = [f"order number {i} for pizza" for i in range(600)]
    vectors = int8_model.embed(texts)
    # Rows on both sides of the 512-text chunk boundary.
    for row in (0, 511, 512, 599):
        assert_allclose(vectors[row], int8_model.embed_one(texts[row]), atol=1e-6)


def test_empty_batch(int8_model):
    assert int8_model.embed([]).shape == (0, 256)


@pytest.mark.data
def test_beats_hashed_on_clinc150(int8_model, clinc150):
    train = few_shot(clinc150["train"], 5)
    test = sample(clinc150["test"], 1500)
    learned = centroid_accuracy(int8_model, train, test)
    hashed = centroid_accuracy(HashedEmbedder(), train, test)
    # Measured 0.745 against 0.643 for the hashed embedder.
    assert learned > hashed + 0.03


def test_from_files_checks_manifest(model_dirs):
    directory = model_dirs["wordllama"]
    weights = (directory / "weights.safetensors").read_bytes()
    tokenizer = (directory / "tokenizer.json").read_bytes()
    manifest = json.loads((directory / "manifest.json").read_text())
    embedder = WordLlamaEmbedder.from_files(weights, tokenizer, manifest, dim=64)
    assert embedder.dim == 64

    corrupt = bytearray(weights)
    corrupt[-1] ^= 0xFF
    with pytest.raises(ValueError, match="weights file sha256 .* does not match the manifest"):
        WordLlamaEmbedder.from_files(bytes(corrupt), tokenizer, manifest)
    with pytest.raises(ValueError, match="tokenizer file has 2 bytes"):
        WordLlamaEmbedder.from_files(weights, b"{}", manifest)


def test_weights_without_table_raise(model_dirs):
    from sona_web.embedders._safetensors import save_safetensors

    tokenizer = (model_dirs["wordllama"] / "tokenizer.json").read_bytes()
    weights = save_safetensors({"other": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="weights file has no 'embedding.weight' tensor"):
        WordLlamaEmbedder.from_files(weights, tokenizer)


@pytest.mark.parametrize(
    ("dim", "error", "pattern"),
    [
        (100, ValueError, r"dim must be one of \(64, 128, 256\) and at most 256, got 100"),
        (512, ValueError, r"dim must be one of \(64, 128, 256\) and at most 256, got 512"),
        ("64", TypeError, "dim must be an int, got str"),
    ],
)
def test_bad_dim_raises(model_dirs, dim, error, pattern):
    with pytest.raises(error, match=pattern):
        WordLlamaEmbedder.from_dir(model_dirs["wordllama"], dim=dim)


def test_non_str_raises(int8_model):
    with pytest.raises(TypeError, match=r"texts\[0\] must be a str, got int"):
        int8_model.embed([1])
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        int8_model.embed_one(b"x")


def test_missing_model_dir_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json in"):
        get_embedder("wordllama", model_dir=tmp_path)
