"""Text embedders that turn queries into the vectors the engine learns from.

``hashed`` needs no model file. ``wordllama`` and ``minilm`` run pretrained
models in numpy and load their weights from a directory built by
``build_scripts/build_models.py`` or from bytes (see their modules).
"""

from __future__ import annotations

from .hashed import HashedEmbedder

__all__ = ["HashedEmbedder", "available_embedders", "get_embedder"]

_NAMES = ("hashed", "minilm", "wordllama")


def available_embedders() -> tuple[str, ...]:
    """Return the names that :func:`get_embedder` accepts."""
    return _NAMES


def get_embedder(name: str, **kwargs):
    """Create the embedder called ``name`` with keyword arguments ``kwargs``.

    ``"hashed"`` takes :class:`HashedEmbedder`'s arguments. ``"wordllama"``
    and ``"minilm"`` take ``model_dir`` (a path) plus their own options.
    Raises ``KeyError`` for an unknown name and ``TypeError`` for a non-str.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name == "hashed":
        return HashedEmbedder(**kwargs)
    if name == "wordllama":
        from .wordllama import WordLlamaEmbedder

        return WordLlamaEmbedder.from_dir(**kwargs)
    if name == "minilm":
        from .minilm import MiniLMEmbedder

        return MiniLMEmbedder.from_dir(**kwargs)
    raise KeyError(f"unknown embedder name {name!r}; expected one of {_NAMES}")
