"""A BERT encoder forward pass in numpy (float32), for inference only.

Follows the BERT architecture of Devlin et al. (2019) as the Hugging Face
``BertModel`` implements it: token, position and segment embeddings summed
and layer-normalised, then post-norm encoder layers (self-attention and a
GELU feed-forward block, each followed by a residual sum and LayerNorm).
Dropout is absent because it is the identity at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._quantize import INT8_SUFFIX, SCALE_SUFFIX, get_matrix

__all__ = ["BertEncoder", "erf", "gelu"]

# Abramowitz and Stegun (1964), formula 7.1.26: |error| <= 1.5e-7 for all x.
# tests/embedders/test_minilm.py checks the bound against math.erf.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: np.ndarray) -> np.ndarray:
    """Return the error function of ``x`` elementwise (absolute error <= 1.5e-7)."""
    x = np.asarray(x)
    magnitude = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * magnitude)
    a1, a2, a3, a4, a5 = _ERF_A
    polynomial = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
    return np.copysign(1.0 - polynomial * np.exp(-magnitude * magnitude), x)


def gelu(x: np.ndarray) -> np.ndarray:
    """Return the exact (erf) form of GELU, ``x * (1 + erf(x / sqrt(2))) / 2``."""
    return 0.5 * x * (1.0 + erf(x * np.float32(1.0 / np.sqrt(2.0))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + eps) * weight + bias


@dataclass
class _Layer:
    qkv_weight: np.ndarray  # (hidden, 3 * hidden), transposed for x @ W
    qkv_bias: np.ndarray
    out_weight: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up_weight: np.ndarray
    up_bias: np.ndarray
    down_weight: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


class BertEncoder:
    """BERT encoder built from Hugging Face ``BertModel`` tensor names.

    ``tensors`` maps names such as ``encoder.layer.0.attention.self.query.weight``
    to arrays. Any matrix may instead be stored as int8 rows (see
    ``_quantize``). ``num_heads`` and ``layer_norm_eps`` come from the
    model's ``config.json``.
    """

    def __init__(self, tensors: dict[str, np.ndarray], num_heads: int, layer_norm_eps: float) -> None:
        self.num_heads = num_heads
        self.eps = layer_norm_eps
        self._word_q, self._word_scale, self._word = _token_table(tensors)
        self.position = get_matrix(tensors, "embeddings.position_embeddings.weight")
        self.segment = get_matrix(tensors, "embeddings.token_type_embeddings.weight")
        self.embedding_norm = (
            get_matrix(tensors, "embeddings.LayerNorm.weight"),
            get_matrix(tensors, "embeddings.LayerNorm.bias"),
        )
        self.hidden = self.position.shape[1]
        if self.hidden % num_heads:
            raise ValueError(f"hidden size {self.hidden} is not divisible by num_heads={num_heads}")

        count = 0
        while f"encoder.layer.{count}.output.dense.bias" in tensors:
            count += 1
        if count == 0:
            raise ValueError("weights contain no encoder layers ('encoder.layer.0.*')")
        self.layers = [_load_layer(tensors, f"encoder.layer.{i}.") for i in range(count)]

    @property
    def max_positions(self) -> int:
        return self.position.shape[0]

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Return the last hidden states, float32 ``(batch, length, hidden)``.

        ``ids`` is an int array ``(batch, length)``; ``mask`` is 1 for real
        tokens and 0 for padding, of the same shape.
        """
        batch, length = ids.shape
        x = self._embed_tokens(ids) + self.position[:length] + self.segment[0]
        x = _layer_norm(x, *self.embedding_norm, self.eps)

        # Padding keys get the lowest float32 so softmax gives them weight 0,
        # as the reference does with torch.finfo(float32).min.
        key_bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min)
        key_bias = key_bias.astype(np.float32)
        for layer in self.layers:
            x = self._layer(layer, x, key_bias)
        return x

    def _embed_tokens(self, ids: np.ndarray) -> np.ndarray:
        if self._word is not None:
            return self._word[ids]
        rows = self._word_q[ids].astype(np.float32)
        rows *= self._word_scale[ids][..., None]
        return rows

    def _layer(self, layer: _Layer, x: np.ndarray, key_bias: np.ndarray) -> np.ndarray:
        batch, length, hidden = x.shape
        head_dim = hidden // self.num_heads

        qkv = x @ layer.qkv_weight + layer.qkv_bias
        qkv = qkv.reshape(batch, length, 3, self.num_heads, head_dim).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]

        scores = query @ key.transpose(0, 1, 3, 2)
        scores *= np.float32(1.0 / np.sqrt(head_dim))
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)

        context = (weights @ value).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = _layer_norm(x + context @ layer.out_weight + layer.out_bias, *layer.norm1, self.eps)

        inner = gelu(x @ layer.up_weight + layer.up_bias)
        return _layer_norm(x + inner @ layer.down_weight + layer.down_bias, *layer.norm2, self.eps)


def _token_table(tensors):
    name = "embeddings.word_embeddings.weight"
    if name in tensors:
        return None, None, np.asarray(tensors[name], dtype=np.float32)
    if name + INT8_SUFFIX in tensors:
        # Kept as int8 and dequantised per looked-up row: 4x less memory.
        q = np.asarray(tensors[name + INT8_SUFFIX])
        return q, np.asarray(tensors[name + SCALE_SUFFIX], dtype=np.float32), None
    raise ValueError(f"weights contain no {name!r} tensor")


def _load_layer(tensors, prefix: str) -> _Layer:
    def matrix(name: str) -> np.ndarray:
        return get_matrix(tensors, prefix + name)

    attention = "attention.self."
    qkv_weight = np.concatenate(
        [matrix(attention + part + ".weight") for part in ("query", "key", "value")]
    )
    qkv_bias = np.concatenate([matrix(attention + part + ".bias") for part in ("query", "key", "value")])
    return _Layer(
        qkv_weight=np.ascontiguousarray(qkv_weight.T),
        qkv_bias=qkv_bias,
        out_weight=np.ascontiguousarray(matrix("attention.output.dense.weight").T),
        out_bias=matrix("attention.output.dense.bias"),
        norm1=(matrix("attention.output.LayerNorm.weight"), matrix("attention.output.LayerNorm.bias")),
        up_weight=np.ascontiguousarray(matrix("intermediate.dense.weight").T),
        up_bias=matrix("intermediate.dense.bias"),
        down_weight=np.ascontiguousarray(matrix("output.dense.weight").T),
        down_bias=matrix("output.dense.bias"),
        norm2=(matrix("output.LayerNorm.weight"), matrix("output.LayerNorm.bias")),
    )
