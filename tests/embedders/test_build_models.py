"""build_scripts/build_models.py: conversion, up-to-date check and source checks."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from sona_web.embedders._safetensors import load_safetensors

from .conftest import _build_models_module


@pytest.fixture(scope="module")
def build_models():
    return _build_models_module()


def test_build_writes_then_skips(build_models, source_files, tmp_path):
    # source_files skips this test when the downloads are not cached.
    built = build_models.build_models(tmp_path, names=["wordllama"])
    model_dir = built["wordllama"]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["kind"] == "wordllama"
    assert (model_dir / "NOTICE.md").read_text().startswith("# Third-party notices")

    tensors, metadata = load_safetensors((model_dir / "weights.safetensors").read_bytes())
    assert metadata == {"quantization": "int8-rows"}
    assert tensors["embedding.weight.int8"].dtype == np.int8
    assert tensors["embedding.weight.int8"].shape == (32000, 256)
    assert tensors["embedding.weight.scale"].shape == (32000,)

    modified = (model_dir / "weights.safetensors").stat().st_mtime_ns
    build_models.build_models(tmp_path, names=["wordllama"])
    assert (model_dir / "weights.safetensors").stat().st_mtime_ns == modified


def test_changed_output_is_rebuilt(build_models, source_files, tmp_path):
    model_dir = build_models.build_model("wordllama", tmp_path)
    weights = model_dir / "weights.safetensors"
    weights.write_bytes(b"truncated")
    build_models.build_model("wordllama", tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert weights.stat().st_size == manifest["files"]["weights"]["bytes"]


def test_source_with_wrong_hash_raises(build_models, tmp_path):
    source = build_models.MODELS["wordllama"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / (source.wheel_prefix + "py3-none-any.whl"), "w") as archive:
        archive.writestr(source.weights[0], b"not the weights")
        archive.writestr(source.tokenizer[0], b"{}")
    with pytest.raises(ValueError, match="l2_supercat_256.safetensors in .* has sha256 .*, expected 64b47a"):
        build_models.read_source("wordllama", tmp_path)


def test_unknown_model_name_raises(build_models, tmp_path):
    with pytest.raises(KeyError, match=r"unknown model names \['bert'\]"):
        build_models.build_models(tmp_path, names=["bert"])
