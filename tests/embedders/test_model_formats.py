"""safetensors reading and writing, int8 row quantisation and model manifests."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sona_web.embedders._model_files import check_file, parse_manifest, read_model_dir
from sona_web.embedders._quantize import dequantize_rows, get_matrix, quantize_rows
from sona_web.embedders._safetensors import load_safetensors, save_safetensors


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "a.weight": rng.standard_normal((5, 3)).astype(np.float32),
        "b.half": rng.standard_normal(7).astype(np.float16),
        "c.ids": np.arange(6, dtype=np.int64).reshape(2, 3),
        "d.q": np.array([[-127, 0, 127]], dtype=np.int8),
    }


def test_safetensors_round_trip():
    tensors = _tensors()
    loaded, metadata = load_safetensors(save_safetensors(tensors, {"format": "test"}))
    assert metadata == {"format": "test"}
    assert sorted(loaded) == sorted(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype
        assert_array_equal(loaded[name], array)


def test_safetensors_hand_built_file():
    # Header written by hand, as the format specifies it: u64 length, JSON, data.
    header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    data = len(header).to_bytes(8, "little") + header + np.array([1.5, -2.0], "<f4").tobytes()
    tensors, metadata = load_safetensors(data)
    assert metadata == {}
    assert_array_equal(tensors["x"], [1.5, -2.0])


def test_safetensors_data_is_8_byte_aligned():
    data = save_safetensors({"x": np.ones(3, np.int8), "y": np.ones(2, np.float64)})
    header_bytes = int.from_bytes(data[:8], "little")
    assert header_bytes % 8 == 0
    tensors, _ = load_safetensors(memoryview(data))
    assert_array_equal(tensors["y"], [1.0, 1.0])


def _file_with_header(header: bytes, data: bytes = b"") -> bytes:
    return len(header).to_bytes(8, "little") + header + data


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"\x01\x02", "safetensors data too short: 2 bytes"),
        ((1000).to_bytes(8, "little") + b"{}", "invalid safetensors header length 1000"),
        (_file_with_header(b"{not json"), "invalid safetensors header JSON"),
        (_file_with_header(b"[1, 2]"), "expected a JSON object"),
        (
            _file_with_header(b'{"x": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}', b"\0\0"),
            "invalid or unsupported safetensors entry for tensor 'x'",
        ),
        (
            _file_with_header(b'{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', b"\0" * 8),
            r"tensor 'x': data_offsets \[0, 4\] do not fit shape \[2\]",
        ),
        (
            _file_with_header(b'{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', b"\0" * 8),
            r"tensor 'x': data_offsets \[0, 16\] do not fit shape \[4\] of F32 in 8 bytes",
        ),
    ],
)
def test_safetensors_malformed_raises(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_safetensors(data)


def test_save_unsupported_dtype_raises():
    with pytest.raises(ValueError, match="tensor 'flags': unsupported dtype bool"):
        save_safetensors({"flags": np.array([True, False])})


def test_quantize_error_within_half_step():
    matrix = np.random.default_rng(1).standard_normal((50, 40)).astype(np.float32)
    q, scale = quantize_rows(matrix)
    assert q.dtype == np.int8
    assert scale.dtype == np.float32
    assert scale.shape == (50,)
    error = np.abs(dequantize_rows(q, scale) - matrix)
    assert np.all(error <= scale[:, None] / 2 * (1 + 1e-5))
    # Each row's largest magnitude maps to +-127 exactly.
    assert_array_equal(np.abs(q).max(axis=1), 127)


def test_quantize_zero_row_stays_zero():
    q, scale = quantize_rows(np.zeros((2, 4)))
    assert_array_equal(q, 0)
    assert_array_equal(scale, 1.0)
    assert_array_equal(dequantize_rows(q, scale), 0.0)


def test_quantize_rejects_non_matrix():
    with pytest.raises(ValueError, match=r"matrix must be 2-D, got shape \(3,\)"):
        quantize_rows(np.ones(3))


def test_get_matrix_dequantizes_pairs():
    q, scale = quantize_rows(np.array([[0.5, -1.0]]))
    tensors = {"w.int8": q, "w.scale": scale, "b": np.array([1.0, 2.0])}
    assert_allclose(get_matrix(tensors, "w"), [[0.5, -1.0]], atol=1 / 254)
    assert get_matrix(tensors, "b").dtype == np.float32
    with pytest.raises(KeyError, match="tensor 'missing' not found in the weights file"):
        get_matrix(tensors, "missing")


def _manifest(weights: bytes = b"w", tokenizer: bytes = b"t", **changes) -> dict:
    manifest = {
        "format_version": 1,
        "kind": "wordllama",
        "files": {
            "weights": {"path": "weights.safetensors", "bytes": len(weights),
                        "sha256": hashlib.sha256(weights).hexdigest()},
            "tokenizer": {"path": "tokenizer.json", "bytes": len(tokenizer),
                          "sha256": hashlib.sha256(tokenizer).hexdigest()},
        },
    }
    manifest.update(changes)
    return manifest


def test_parse_manifest_accepts_dict_str_and_bytes():
    manifest = _manifest()
    assert parse_manifest(manifest, "wordllama") == manifest
    assert parse_manifest(json.dumps(manifest), "wordllama") == manifest
    assert parse_manifest(json.dumps(manifest).encode(), "wordllama") == manifest


@pytest.mark.parametrize(
    ("manifest", "error", "pattern"),
    [
        (b"{oops", ValueError, "invalid manifest JSON"),
        (42, TypeError, "manifest must be a dict or JSON bytes, got int"),
        (_manifest(format_version=2), ValueError, "unsupported manifest format_version 2, expected 1"),
        (_manifest(kind="minilm"), ValueError, "manifest kind is 'minilm', expected 'wordllama'"),
        (_manifest(files={"weights": {}}), ValueError, "must contain 'weights' and 'tokenizer'"),
    ],
)
def test_parse_manifest_invalid_raises(manifest, error, pattern):
    with pytest.raises(error, match=pattern):
        parse_manifest(manifest, "wordllama")


def test_check_file_size_and_hash():
    entry = _manifest(weights=b"abc")["files"]["weights"]
    check_file(b"abc", entry, "weights")
    with pytest.raises(ValueError, match="weights file has 2 bytes, manifest expects 3"):
        check_file(b"ab", entry, "weights")
    with pytest.raises(ValueError, match="weights file sha256 .* does not match the manifest"):
        check_file(b"abd", entry, "weights")


def test_read_model_dir(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"w")
    (tmp_path / "tokenizer.json").write_bytes(b"t")
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest()))
    weights, tokenizer, manifest = read_model_dir(tmp_path, "wordllama")
    assert (weights, tokenizer) == (b"w", b"t")
    assert manifest["kind"] == "wordllama"


def test_read_model_dir_without_manifest_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json in .*build_models.py"):
        read_model_dir(tmp_path, "wordllama")
