"""Fixtures for the embedder tests: CLINC150 data and the built model directories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
CLINC_PATH = DATA_DIR / "clinc150" / "data_full.json"
MODELS_DIR = REPO_ROOT / "dist" / "site" / "models"
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "tokenizers"
REFERENCE_PATH = Path(__file__).with_name("reference_embeddings.json")


def _build_models_module():
    sys.path.insert(0, str(REPO_ROOT / "build_scripts"))
    try:
        import build_models
    finally:
        sys.path.pop(0)
    return build_models


def _wheels_cached(module) -> bool:
    downloads = module.default_cache_dir() / "downloads"
    return all(
        any(downloads.glob(source.wheel_prefix + "*.whl")) for source in module.MODELS.values()
    )


@pytest.fixture(scope="module", autouse=True)
def single_blas_thread():
    """Run the model tests with one BLAS thread.

    On a busy 2-core machine, OpenBLAS threads that wait for each other made
    the MiniLM forward pass over 10 times slower in CPU time. Pyodide runs
    on one thread anyway.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def clinc150() -> dict:
    if not CLINC_PATH.is_file():
        pytest.skip(f"CLINC150 not found at {CLINC_PATH} (../shared/data beside the checkout)")
    with CLINC_PATH.open(encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="session")
def model_dirs() -> dict[str, Path]:
    """Return ``{name: model_dir}``, building from the download cache if needed."""
    module = _build_models_module()
    dirs = {name: MODELS_DIR / name for name in module.MODELS}
    if all((path / "manifest.json").is_file() for path in dirs.values()):
        return dirs
    if not _wheels_cached(module):
        pytest.skip(
            f"models not built in {MODELS_DIR} and their packages are not in "
            f"{module.default_cache_dir() / 'downloads'}; run build_scripts/build_models.py"
        )
    return module.build_models(MODELS_DIR)


@pytest.fixture(scope="session")
def source_files() -> dict[str, dict[str, bytes]]:
    """Return the original (float) model files from the download cache."""
    module = _build_models_module()
    if not _wheels_cached(module):
        pytest.skip(f"model packages not in {module.default_cache_dir() / 'downloads'}")
    return {name: module.read_source(name) for name in module.MODELS}


@pytest.fixture(scope="session")
def reference_embeddings() -> dict:
    return json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))
