"""Pure-Python tokenizers against token ids from the reference ``tokenizers`` library."""

from __future__ import annotations

import json

import pytest

from sona_web.embedders._llama_bpe import LlamaBpeTokenizer
from sona_web.embedders._wordpiece import WordPieceTokenizer

from .conftest import FIXTURE_DIR


def _fixture(name: str) -> dict:
    return json.loads((FIXTURE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _mismatches(encode, cases) -> list:
    return [
        (case["text"], case["ids"], encode(case["text"]))
        for case in cases
        if encode(case["text"]) != case["ids"]
    ]


@pytest.fixture(scope="module")
def bpe_json(model_dirs) -> bytes:
    return (model_dirs["wordllama"] / "tokenizer.json").read_bytes()


@pytest.fixture(scope="module")
def wordpiece_json(model_dirs) -> bytes:
    return (model_dirs["minilm"] / "tokenizer.json").read_bytes()


def test_fixtures_cover_hard_cases():
    for name in ("wordllama", "minilm"):
        texts = [case["text"] for case in _fixture(name)["cases"]]
        assert len(texts) >= 300
        assert "" in texts
        assert any(len(text) > 1000 for text in texts)
        assert any("\u6771" in text for text in texts)


def test_llama_bpe_matches_reference_ids(bpe_json):
    tokenizer = LlamaBpeTokenizer.from_json(bpe_json)
    fixture = _fixture("wordllama")
    assert _mismatches(tokenizer.encode, fixture["cases"]) == []


def test_llama_bpe_cached_result_is_stable(bpe_json):
    tokenizer = LlamaBpeTokenizer.from_json(bpe_json)
    first = tokenizer.encode("a<s>b")
    assert tokenizer.encode("a<s>b") == first
    # "▁a", "<s>", "▁b": each piece around a special token gets its own "▁".
    assert first == [263, 1, 289]


def test_wordpiece_matches_reference_ids(wordpiece_json):
    tokenizer = WordPieceTokenizer.from_json(wordpiece_json)
    fixture = _fixture("minilm")
    max_tokens = fixture["max_tokens"]
    assert _mismatches(lambda text: tokenizer.encode(text, max_tokens), fixture["cases"]) == []


def test_wordpiece_truncates_to_max_length(wordpiece_json):
    tokenizer = WordPieceTokenizer.from_json(wordpiece_json)
    ids = tokenizer.encode("word " * 50, max_length=10)
    assert len(ids) == 10
    assert ids[0] == tokenizer.cls_id
    assert ids[-1] == tokenizer.sep_id
    assert len(tokenizer.encode("word " * 50)) == 52


def test_wordpiece_max_length_below_two_raises(wordpiece_json):
    tokenizer = WordPieceTokenizer.from_json(wordpiece_json)
    with pytest.raises(ValueError, match=r"max_length must be >= 2 to hold \[CLS\] and \[SEP\], got 1"):
        tokenizer.encode("hi", max_length=1)


def _edited(raw: bytes, edit) -> str:
    config = json.loads(raw)
    edit(config)
    return json.dumps(config)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda c: c["model"].update(type="WordPiece"), "model.type must be 'BPE'"),
        (lambda c: c["model"].update(byte_fallback=False), "model.byte_fallback must be true"),
        (lambda c: c["model"].update(dropout=0.1), "model.dropout must be null"),
        (lambda c: c.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer must be null"),
        (lambda c: c.update(normalizer=None), "normalizer must prepend"),
        (lambda c: c["model"]["vocab"].pop("<0x41>"), "vocab lacks byte-fallback tokens, first missing: '<0x41>'"),
    ],
)
def test_llama_bpe_rejects_other_configs(bpe_json, edit, pattern):
    with pytest.raises(ValueError, match=pattern):
        LlamaBpeTokenizer.from_json(_edited(bpe_json, edit))


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda c: c["model"].update(type="BPE"), "model.type must be 'WordPiece'"),
        (lambda c: c["model"].update(continuing_subword_prefix="@@"), "continuing_subword_prefix must be '##'"),
        (lambda c: c["normalizer"].update(type="NFC"), "normalizer must be BertNormalizer"),
        (lambda c: c["normalizer"].update(lowercase=False), "normalizer.lowercase must be true"),
        (lambda c: c["normalizer"].update(strip_accents=False), "strip_accents must be null or true"),
        (lambda c: c.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer must be BertPreTokenizer"),
        (lambda c: c["model"]["vocab"].pop("[CLS]"), r"vocab lacks the special token '\[CLS\]'"),
    ],
)
def test_wordpiece_rejects_other_configs(wordpiece_json, edit, pattern):
    with pytest.raises(ValueError, match=pattern):
        WordPieceTokenizer.from_json(_edited(wordpiece_json, edit))
