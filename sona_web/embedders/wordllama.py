"""WordLlama (l2_supercat) sentence embeddings in numpy.

WordLlama is a table of 32,000 token vectors, one per token of the Llama 2
vocabulary, trained so that their mean embeds a sentence. They come from the
package ``wordllama`` 0.4.0.post1 (MIT licence) and derive from Llama 2 (see
THIRD_PARTY_NOTICES.md). The embedding of a text is computed as the
``wordllama`` package does it:

1. Tokenise with the Llama 2 BPE tokenizer, without BOS or EOS tokens.
2. Average the token vectors. Special tokens written in the text (``<s>``)
   count as tokens, and a text with no tokens (the empty string) gets a zero
   vector.
3. Keep the first ``dim`` components (64, 128 or 256: the vectors were
   trained so that their prefixes work as smaller embeddings).

Then, unlike ``wordllama``'s default, the row is L2-normalised; a zero
vector stays zero.

Loading::

    emb = WordLlamaEmbedder.from_dir("dist/site/models/wordllama", dim=128)
    emb = WordLlamaEmbedder.from_files(weights_bytes, tokenizer_bytes, manifest, dim=128)

``from_files`` takes the contents of the three files of a model directory
(``manifest`` as a dict or JSON bytes), which is how a browser worker that
fetched and cached them passes them in. With ``manifest=None`` it accepts
the original float16 ``l2_supercat_256.safetensors`` and
``l2_supercat_tokenizer_config.json`` from the ``wordllama`` package.
"""

from __future__ import annotations

import logging

import numpy as np

from ._llama_bpe import LlamaBpeTokenizer
from ._model_files import check_file, parse_manifest, read_model_dir
from ._quantize import INT8_SUFFIX, SCALE_SUFFIX
from ._safetensors import load_safetensors
from ._text import as_text_list

__all__ = ["WordLlamaEmbedder"]

logger = logging.getLogger("sona_web")

_TENSOR = "embedding.weight"
DIMS = (64, 128, 256)
_CHUNK_TEXTS = 512


class WordLlamaEmbedder:
    """Mean of WordLlama token vectors, truncated to ``dim`` and L2-normalised.

    ``token_vectors`` is a float array ``(vocab, 256)``, or a pair
    ``(q, scale)`` of int8 ``(vocab, 256)`` and float32 ``(vocab,)`` rows
    (dequantised per token as it is looked up). Use :meth:`from_dir` or
    :meth:`from_files` rather than this constructor.
    """

    name = "wordllama"

    def __init__(self, token_vectors, tokenizer: LlamaBpeTokenizer, dim: int = 256) -> None:
        if isinstance(token_vectors, tuple):
            q, scale = token_vectors
            self._q = np.asarray(q, dtype=np.int8)
            self._scale = np.asarray(scale, dtype=np.float32)
            self._table = None
            width = self._q.shape[1]
        else:
            self._table = np.ascontiguousarray(token_vectors, dtype=np.float32)
            width = self._table.shape[1]

        if not isinstance(dim, int) or isinstance(dim, bool):
            raise TypeError(f"dim must be an int, got {type(dim).__name__} {dim!r}")
        if dim not in DIMS or dim > width:
            raise ValueError(f"dim must be one of {DIMS} and at most {width}, got {dim}")
        self.dim = dim
        self.tokenizer = tokenizer

    @classmethod
    def from_dir(cls, model_dir, dim: int = 256) -> "WordLlamaEmbedder":
        """Load from a model directory built by ``build_scripts/build_models.py``."""
        weights, tokenizer, manifest = read_model_dir(model_dir, cls.name)
        return cls.from_files(weights, tokenizer, manifest, dim=dim)

    @classmethod
    def from_files(cls, weights, tokenizer, manifest=None, dim: int = 256) -> "WordLlamaEmbedder":
        """Load from the bytes of the weights and tokenizer files.

        When ``manifest`` is given, the files' sizes and sha256 must match it
        (``ValueError`` otherwise).
        """
        if manifest is not None:
            manifest = parse_manifest(manifest, cls.name)
            check_file(weights, manifest["files"]["weights"], "weights")
            check_file(tokenizer, manifest["files"]["tokenizer"], "tokenizer")

        tensors, _ = load_safetensors(weights)
        if _TENSOR in tensors:
            token_vectors = tensors[_TENSOR]
        elif _TENSOR + INT8_SUFFIX in tensors:
            token_vectors = (tensors[_TENSOR + INT8_SUFFIX], tensors[_TENSOR + SCALE_SUFFIX])
        else:
            raise ValueError(f"weights file has no {_TENSOR!r} tensor; found {sorted(tensors)[:5]}")
        logger.debug("loaded WordLlama weights: %d bytes, dim=%d", len(weights), dim)
        return cls(token_vectors, LlamaBpeTokenizer.from_json(tokenizer), dim=dim)

    def embed(self, texts) -> np.ndarray:
        """Embed a str or a sequence of str; returns float32 ``(n, dim)`` unit rows.

        A text without tokens gives an all-zero row. Raises ``TypeError``
        for a non-str item.
        """
        batch = as_text_list(texts)
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        # Chunks bound the memory of the looked-up token vectors, which
        # matters in a browser tab.
        for start in range(0, len(batch), _CHUNK_TEXTS):
            out[start : start + _CHUNK_TEXTS] = self._embed_chunk(batch[start : start + _CHUNK_TEXTS])
        return out

    def _embed_chunk(self, batch: list[str]) -> np.ndarray:
        token_ids = [self.tokenizer.encode(text) for text in batch]
        lengths = np.array([len(ids) for ids in token_ids], dtype=np.intp)
        flat_ids = np.fromiter(
            (i for ids in token_ids for i in ids), dtype=np.intp, count=int(lengths.sum())
        )

        vectors = self._lookup(flat_ids)
        sums = np.zeros((len(batch), self.dim), dtype=np.float32)
        nonempty = lengths > 0
        if nonempty.any():
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[nonempty]
            sums[nonempty] = np.add.reduceat(vectors, starts, axis=0)

        # The mean's divisor does not change the direction, but it keeps the
        # pre-normalisation values equal to wordllama's for comparison.
        means = sums / np.maximum(lengths, 1)[:, None].astype(np.float32)
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        np.divide(means, norms, out=means, where=norms > 0.0)
        return means

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text; returns float32 ``(dim,)``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self.embed([text])[0]

    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        if self._table is not None:
            return self._table[ids, : self.dim]
        rows = self._q[ids, : self.dim].astype(np.float32)
        rows *= self._scale[ids][:, None]
        return rows
