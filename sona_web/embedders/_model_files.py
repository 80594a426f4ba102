"""Model directories and manifests of the pretrained embedders.

A model directory, as written by ``build_scripts/build_models.py``, contains
``manifest.json`` and the two files it lists::

    {
      "format_version": 1,
      "kind": "wordllama" | "minilm",
      "quantization": "int8-rows" | "none",
      "files": {
        "weights":   {"path": "weights.safetensors", "bytes": 8320512, "sha256": "..."},
        "tokenizer": {"path": "tokenizer.json", "bytes": 1234567, "sha256": "..."}
      },
      "config": {...model options, e.g. "max_tokens": 256...},
      "source": {...where the weights came from...}
    }

A browser worker fetches the same three files and passes their bytes to the
embedder's ``from_files``. The sha256 check there catches a truncated or
stale cached copy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["MANIFEST_NAME", "check_file", "parse_manifest", "read_model_dir"]

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def parse_manifest(manifest, kind: str) -> dict:
    """Return ``manifest`` (a dict, JSON str or JSON bytes) as a dict after checking it.

    Raises ``ValueError`` if it is not JSON, has another ``format_version``
    or ``kind``, or lacks the ``weights`` and ``tokenizer`` file entries.
    Raises ``TypeError`` for any other type.
    """
    if isinstance(manifest, (bytes, bytearray, memoryview, str)):
        try:
            manifest = json.loads(bytes(manifest) if not isinstance(manifest, str) else manifest)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"invalid manifest JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise TypeError(f"manifest must be a dict or JSON bytes, got {type(manifest).__name__}")

    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"unsupported manifest format_version {manifest.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}; rebuild with build_scripts/build_models.py"
        )
    if manifest.get("kind") != kind:
        raise ValueError(f"manifest kind is {manifest.get('kind')!r}, expected {kind!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not {"weights", "tokenizer"} <= files.keys():
        raise ValueError("manifest 'files' must contain 'weights' and 'tokenizer' entries")
    return manifest


def check_file(data, entry: dict, role: str) -> None:
    """Raise ``ValueError`` unless ``data`` has the size and sha256 that ``entry`` records."""
    size = len(memoryview(data).cast("B"))
    if "bytes" in entry and size != entry["bytes"]:
        raise ValueError(f"{role} file has {size} bytes, manifest expects {entry['bytes']}")
    if "sha256" in entry:
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise ValueError(
                f"{role} file sha256 {digest} does not match the manifest ({entry['sha256']}); "
                "the file is corrupt or from another build"
            )


def read_model_dir(model_dir, kind: str) -> tuple[bytes, bytes, dict]:
    """Read ``(weights, tokenizer, manifest)`` from a model directory.

    Raises ``FileNotFoundError`` if the directory or a listed file is missing.
    """
    directory = Path(model_dir)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST_NAME} in {directory}; build the models with build_scripts/build_models.py"
        )
    manifest = parse_manifest(manifest_path.read_bytes(), kind)
    weights = (directory / manifest["files"]["weights"]["path"]).read_bytes()
    tokenizer = (directory / manifest["files"]["tokenizer"]["path"]).read_bytes()
    return weights, tokenizer, manifest
