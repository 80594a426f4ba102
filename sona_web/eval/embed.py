"""Embedding of every prompt once, cached on disk as ``.npy``.

The cache lives in ``$SONA_WEB_CACHE/eval`` (default ``~/.cache/sona-web/eval``)
and a file is keyed by the SHA-256 of the prompts, the embedder's name and
its output dimension. Files are written to a temporary name and renamed, so
an interrupted run never leaves a truncated cache entry behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .data import RoutingDataset

__all__ = ["cache_path", "default_cache_dir", "embed_dataset"]

logger = logging.getLogger("sona_web")

_BATCH = 1024


def default_cache_dir() -> Path:
    """Return ``$SONA_WEB_CACHE/eval``, or ``~/.cache/sona-web/eval`` when the variable is unset."""
    root = os.environ.get("SONA_WEB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sona-web")
    return Path(root) / "eval"


def cache_path(dataset: RoutingDataset, embedder_name: str, dim: int, cache_dir: Path | None = None) -> Path:
    """Return the cache file of ``dataset`` embedded by ``embedder_name`` at ``dim`` dimensions."""
    directory = default_cache_dir() if cache_dir is None else Path(cache_dir)
    return directory / f"{dataset.content_hash()[:32]}-{embedder_name}-{dim}.npy"


def embed_dataset(
    dataset: RoutingDataset,
    embedder,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress=None,
) -> np.ndarray:
    """Embed every prompt of ``dataset`` with ``embedder`` (an object with ``name``, ``dim``, ``embed``).

    Returns a float32 array of shape ``(n_prompts, embedder.dim)``. ``progress``,
    if given, is called as ``progress(done, total)`` after each batch.
    NOTE: the key holds the embedder's name and dimension only, so a cache
    made with other embedder options (a different hash seed, say) is reused;
    clear the cache folder after changing them.
    """
    path = cache_path(dataset, embedder.name, embedder.dim, cache_dir)
    if use_cache and path.is_file():
        cached = np.load(path, allow_pickle=False)
        if cached.shape == (dataset.n_prompts, embedder.dim):
            logger.info("loaded cached embeddings %s", path)
            return cached.astype(np.float32, copy=False)
        logger.warning("ignoring cached embeddings %s with shape %s", path, cached.shape)

    vectors = _embed_all(dataset.prompts, embedder, progress)
    if use_cache:
        _save_atomically(path, vectors)
        logger.info("saved embeddings to %s", path)
    return vectors


def _embed_all(prompts: tuple[str, ...], embedder, progress) -> np.ndarray:
    vectors = np.empty((len(prompts), embedder.dim), dtype=np.float32)
    for start in range(0, len(prompts), _BATCH):
        stop = min(start + _BATCH, len(prompts))
        vectors[start:stop] = embedder.embed(list(prompts[start:stop]))
        if progress is not None:
            progress(stop, len(prompts))
    return vectors


def _save_atomically(path: Path, vectors: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as handle:
        np.save(handle, vectors, allow_pickle=False)
    os.replace(temporary, path)
