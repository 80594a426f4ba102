"""Input validation shared by the embedders."""

from __future__ import annotations

from typing import Iterable

__all__ = ["as_text_list"]


def as_text_list(texts) -> list[str]:
    """Return ``texts`` as a list of str; a single str becomes a list of one.

    Raises ``TypeError`` for bytes, a non-iterable, or an item that is not a str.
    """
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(
            f"texts must be a str or an iterable of str, got {type(texts).__name__}"
        )
    batch = list(texts)
    for index, text in enumerate(batch):
        if not isinstance(text, str):
            raise TypeError(
                f"texts[{index}] must be a str, got {type(text).__name__} {text!r:.40}"
            )
    return batch
