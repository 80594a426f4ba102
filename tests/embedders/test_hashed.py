"""Tests of the hashed n-gram embedder."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sona_web.embedders import HashedEmbedder, available_embedders, get_embedder

from .conftest import REPO_ROOT
from .helpers import centroid_accuracy, few_shot


def _reference_vector(text_words: list[str], dim: int, seed: int) -> np.ndarray:
    """Recompute the embedding with plain Python, independent of the vectorised code."""
    salt = seed.to_bytes(8, "little")

    def feature_hash(feature: bytes) -> int:
        digest = hashlib.blake2b(feature, digest_size=8, salt=salt).digest()
        return int.from_bytes(digest, "little")

    counts: dict[bytes, int] = {}
    for word in text_words:
        features = [b"w\x00" + word.encode()]
        padded = f"<{word}>"
        for n in range(3, 6):
            features += [b"c\x00" + padded[i : i + n].encode() for i in range(len(padded) - n + 1)]
        for feature in features:
            counts[feature] = counts.get(feature, 0) + 1
    for first, second in zip(text_words, text_words[1:]):
        feature = b"w\x00" + f"{first} {second}".encode()
        counts[feature] = counts.get(feature, 0) + 1

    vector = np.zeros(dim)
    for feature, count in counts.items():
        h = feature_hash(feature)
        sign = 1.0 if h & 1 else -1.0
        vector[(h >> 1) % dim] += sign * (1.0 + math.log(count))
    return vector / np.linalg.norm(vector)


def test_embed_matches_reference_computation():
    embedder = HashedEmbedder(dim=64, seed=7)
    text = "Ｃancel the the CANCEL order!"
    # NFKC maps the full-width C to "C", and lower-casing runs after it.
    words = ["cancel", "the", "the", "cancel", "order"]
    assert_allclose(embedder.embed_one(text), _reference_vector(words, 64, 7), atol=1e-6)


def test_embed_pinned_output():
    # Pins the hash scheme: any change to it changes every stored embedding.
    vector = HashedEmbedder(dim=16).embed_one("Hello world")
    assert np.flatnonzero(vector).tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15]
    assert_allclose(vector[6], -0.6547, atol=1e-4)
    assert_allclose(vector[0], -0.2182, atol=1e-4)


def test_embed_shape_dtype_and_norm():
    embedder = HashedEmbedder(dim=128)
    vectors = embedder.embed(["book a flight to paris", "what is my balance", "x"])
    assert vectors.shape == (3, 128)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_single_string_gives_one_row():
    embedder = HashedEmbedder(dim=32)
    assert embedder.embed("hello").shape == (1, 32)
    assert embedder.embed_one("hello").shape == (32,)
    assert_array_equal(embedder.embed("hello")[0], embedder.embed_one("hello"))


def test_empty_and_punctuation_give_zero_rows():
    embedder = HashedEmbedder(dim=32)
    vectors = embedder.embed(["", "   ", "?!...", "ok"])
    assert not np.isnan(vectors).any()
    assert_array_equal(vectors[:3], 0.0)
    assert_allclose(np.linalg.norm(vectors[3]), 1.0, rtol=1e-6)
    assert embedder.embed([]).shape == (0, 32)


def test_batch_equals_one_at_a_time():
    embedder = HashedEmbedder()
    texts = ["play some jazz", "", "play some jazz", "résumé tips 東京"]
    batch = embedder.embed(texts)
    for row, text in zip(batch, texts):
        assert_array_equal(row, HashedEmbedder().embed_one(text))


def test_seed_changes_projection():
    first = HashedEmbedder(seed=0).embed_one("transfer money to savings")
    second = HashedEmbedder(seed=1).embed_one("transfer money to savings")
    assert abs(float(first @ second)) < 0.5


def test_char_ngrams_none_uses_words_only():
    embedder = HashedEmbedder(dim=1024, ngram_range=(1, 1), char_ngrams=None)
    vector = embedder.embed_one("alpha beta")
    assert np.count_nonzero(vector) == 2


def test_same_output_in_another_process():
    code = (
        "from sona_web.embedders import HashedEmbedder;"
        "import sys;"
        "sys.stdout.write(HashedEmbedder(dim=64).embed_one('set an alarm for 7am').tobytes().hex())"
    )
    env = {"PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO_ROOT)}
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    expected = HashedEmbedder(dim=64).embed_one("set an alarm for 7am")
    assert output == expected.tobytes().hex()


def test_similar_queries_are_closer():
    embedder = HashedEmbedder()
    anchor, near, far = embedder.embed(
        ["what is my bank balance", "tell me my account balance", "play a song by queen"]
    )
    assert anchor @ near > anchor @ far + 0.2


@pytest.mark.data
def test_clinc150_ten_shot_accuracy(clinc150):
    # Measured 0.712 on the 4,500 test queries, where chance is 1/150. The
    # margin allows for changes to the sampling of the 10 examples.
    accuracy = centroid_accuracy(HashedEmbedder(), few_shot(clinc150["train"], 10), clinc150["test"])
    assert accuracy > 0.65


def test_non_str_text_raises():
    embedder = HashedEmbedder()
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got int"):
        embedder.embed(["ok", 3])
    with pytest.raises(TypeError, match="texts must be a str or an iterable of str, got bytes"):
        embedder.embed(b"bytes")
    with pytest.raises(TypeError, match="texts must be a str or an iterable of str, got float"):
        embedder.embed(1.5)
    with pytest.raises(TypeError, match="text must be a str, got NoneType"):
        embedder.embed_one(None)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"dim": 0}, ValueError, r"dim must be in \[1, 1048576\], got 0"),
        ({"dim": 2**21}, ValueError, r"dim must be in \[1, 1048576\], got 2097152"),
        ({"dim": 12.0}, TypeError, "dim must be an int, got float"),
        ({"dim": True}, TypeError, "dim must be an int, got bool"),
        ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
        ({"seed": "a"}, TypeError, "seed must be an int, got str"),
        ({"ngram_range": (2, 1)}, ValueError, r"ngram_range must satisfy 1 <= min_n <= max_n"),
        ({"ngram_range": (0, 1)}, ValueError, r"ngram_range must satisfy 1 <= min_n"),
        ({"ngram_range": 2}, TypeError, r"ngram_range must be a pair of ints"),
        ({"char_ngrams": (3, 17)}, ValueError, r"char_ngrams must satisfy 1 <= min_n <= max_n <= 16"),
        ({"char_ngrams": ("3", 5)}, TypeError, r"char_ngrams must be a pair of ints"),
    ],
)
def test_bad_arguments_raise(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        HashedEmbedder(**kwargs)


def test_get_embedder_hashed():
    assert "hashed" in available_embedders()
    embedder = get_embedder("hashed", dim=48)
    assert isinstance(embedder, HashedEmbedder)
    assert embedder.dim == 48


def test_get_embedder_bad_name_raises():
    with pytest.raises(KeyError, match="unknown embedder name 'bert'"):
        get_embedder("bert")
    with pytest.raises(TypeError, match="name must be a str, got int"):
        get_embedder(3)
