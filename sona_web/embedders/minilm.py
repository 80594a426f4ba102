"""all-MiniLM-L6-v2 sentence embeddings with a numpy forward pass.

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) is a 6-layer BERT with
384 hidden units and 12 heads. This module reproduces its
sentence-transformers pipeline. Uncased WordPiece tokens, enclosed in
``[CLS]`` and ``[SEP]``, are cut to 256 tokens (``max_seq_length`` in the
model's ``sentence_bert_config.json``). The encoder's last hidden states
are averaged over the real tokens, and the mean is L2-normalised.

Texts are sorted by token count and run in batches of ``batch_size``, each
padded only to its longest text, so padding costs little; the output keeps
the input order.

Loading::

    emb = MiniLMEmbedder.from_dir("dist/site/models/minilm")
    emb = MiniLMEmbedder.from_files(weights_bytes, tokenizer_bytes, manifest)

``from_files`` takes the contents of the three files of a model directory
(``manifest`` as a dict or JSON bytes), which is how a browser worker that
fetched and cached them passes them in. With ``manifest=None`` it accepts
the original float32 ``model.safetensors`` and ``tokenizer.json``.
"""

from __future__ import annotations

import logging

import numpy as np

from ._bert import BertEncoder
from ._model_files import check_file, parse_manifest, read_model_dir
from ._safetensors import load_safetensors
from ._text import as_text_list
from ._wordpiece import WordPieceTokenizer

__all__ = ["MiniLMEmbedder"]

logger = logging.getLogger("sona_web")

# all-MiniLM-L6-v2's config.json and sentence_bert_config.json; a manifest's
# "config" entry overrides them.
_DEFAULT_CONFIG = {"num_heads": 12, "layer_norm_eps": 1e-12, "max_tokens": 256}


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised BERT sentence embeddings, float32 ``(n, 384)``.

    Use :meth:`from_dir` or :meth:`from_files` rather than this constructor.
    ``max_tokens`` counts ``[CLS]`` and ``[SEP]``; longer texts are cut.
    """

    name = "minilm"

    def __init__(
        self,
        encoder: BertEncoder,
        tokenizer: WordPieceTokenizer,
        max_tokens: int = 256,
        batch_size: int = 32,
    ) -> None:
        for label, value in (("max_tokens", max_tokens), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{label} must be an int, got {type(value).__name__} {value!r}")
        if not 2 <= max_tokens <= encoder.max_positions:
            raise ValueError(
                f"max_tokens must be in [2, {encoder.max_positions}], got {max_tokens}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.dim = encoder.hidden

    @classmethod
    def from_dir(cls, model_dir, **kwargs) -> "MiniLMEmbedder":
        """Load from a model directory built by ``build_scripts/build_models.py``."""
        weights, tokenizer, manifest = read_model_dir(model_dir, cls.name)
        return cls.from_files(weights, tokenizer, manifest, **kwargs)

    @classmethod
    def from_files(cls, weights, tokenizer, manifest=None, **kwargs) -> "MiniLMEmbedder":
        """Load from the bytes of the weights and tokenizer files.

        When ``manifest`` is given, the files' sizes and sha256 must match it
        (``ValueError`` otherwise). ``kwargs`` go to the constructor.
        """
        config = dict(_DEFAULT_CONFIG)
        if manifest is not None:
            manifest = parse_manifest(manifest, cls.name)
            check_file(weights, manifest["files"]["weights"], "weights")
            check_file(tokenizer, manifest["files"]["tokenizer"], "tokenizer")
            config.update(manifest.get("config", {}))

        tensors, _ = load_safetensors(weights)
        encoder = BertEncoder(tensors, config["num_heads"], config["layer_norm_eps"])
        kwargs.setdefault("max_tokens", config["max_tokens"])
        logger.debug("loaded MiniLM weights: %d bytes, %d layers", len(weights), len(encoder.layers))
        return cls(encoder, WordPieceTokenizer.from_json(tokenizer), **kwargs)

    def embed(self, texts) -> np.ndarray:
        """Embed a str or a sequence of str; returns float32 ``(n, 384)`` unit rows.

        Raises ``TypeError`` for a non-str item.
        """
        batch = as_text_list(texts)
        token_ids = [self.tokenizer.encode(text, self.max_tokens) for text in batch]
        out = np.zeros((len(batch), self.dim), dtype=np.float32)

        order = np.argsort([len(ids) for ids in token_ids], kind="stable")
        for start in range(0, len(batch), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._embed_ids([token_ids[row] for row in rows])
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text; returns float32 ``(384,)``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self.embed([text])[0]

    def _embed_ids(self, token_ids: list[list[int]]) -> np.ndarray:
        length = max(len(ids) for ids in token_ids)
        ids = np.zeros((len(token_ids), length), dtype=np.intp)
        mask = np.zeros((len(token_ids), length), dtype=np.float32)
        for row, row_ids in enumerate(token_ids):
            ids[row, : len(row_ids)] = row_ids
            mask[row, : len(row_ids)] = 1.0

        hidden = self.encoder(ids, mask)
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        # Every text has at least [CLS] and [SEP], so no norm is 0 in practice;
        # the floor matches torch.nn.functional.normalize's eps.
        return pooled / np.maximum(norms, 1e-12)
