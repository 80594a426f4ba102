"""Pure-Python Llama-2-style BPE tokenizer with byte fallback.

Reads a Hugging Face ``tokenizer.json`` of the kind WordLlama ships and
reproduces the token ids of the ``tokenizers`` library (checked against
version 0.23.3 by the fixture tests) for ``add_special_tokens=False``:

1. The special tokens of ``added_tokens`` (``<unk>``, ``<s>``, ``</s>``) are
   matched in the raw text, leftmost and longest first, and become their ids.
2. Every other non-empty piece of text gets ``"▁"`` prepended and each space
   replaced by ``"▁"``. There is no pre-tokenizer, so the whole piece is one
   BPE word and a merge may span what were spaces.
3. The piece starts as one symbol per character. A character missing from
   the vocabulary becomes one ``<0xXX>`` symbol per UTF-8 byte.
4. Merges apply lowest rank first, and among equal ranks leftmost first,
   until no adjacent pair has a merge.
"""

from __future__ import annotations

import heapq
import json
import re

__all__ = ["LlamaBpeTokenizer"]

_SPACE_MARK = "\u2581"
_CACHE_SIZE = 1 << 14


class LlamaBpeTokenizer:
    """BPE over characters with byte fallback, as in the Llama 2 tokenizer.

    ``vocab`` maps token strings to ids, ``merges`` lists the merge pairs by
    rank (first is applied first) and ``special_tokens`` maps the strings
    matched in raw text to their ids.
    """

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        special_tokens: dict[str, int],
    ) -> None:
        self.vocab = vocab
        self.special_tokens = special_tokens
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        missing = [f"<0x{b:02X}>" for b in range(256) if f"<0x{b:02X}>" not in vocab]
        if missing:
            raise ValueError(f"vocab lacks byte-fallback tokens, first missing: {missing[0]!r}")
        ordered = sorted(special_tokens, key=len, reverse=True)
        self._special_re = (
            re.compile("|".join(re.escape(token) for token in ordered)) if ordered else None
        )
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_json(cls, data: bytes | str) -> "LlamaBpeTokenizer":
        """Build the tokenizer from ``tokenizer.json`` bytes or text.

        Raises ``ValueError`` if the file is not a BPE model with byte
        fallback and the Llama-2 normaliser described in the module docstring.
        """
        config = json.loads(data)
        model = config.get("model") or {}
        _check(model.get("type") == "BPE", "model.type must be 'BPE'", model.get("type"))
        _check(model.get("byte_fallback") is True, "model.byte_fallback must be true", model.get("byte_fallback"))
        for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
            _check(model.get(key) is None, f"model.{key} must be null", model.get(key))
        _check(config.get("pre_tokenizer") is None, "pre_tokenizer must be null", config.get("pre_tokenizer"))
        _check(
            config.get("normalizer") == _EXPECTED_NORMALIZER,
            "normalizer must prepend '\u2581' and replace ' ' by '\u2581'",
            config.get("normalizer"),
        )

        merges = [
            tuple(merge.split(" ", 1)) if isinstance(merge, str) else tuple(merge)
            for merge in model["merges"]
        ]
        special = {
            token["content"]: token["id"]
            for token in config.get("added_tokens", [])
            if not token.get("normalized", True)
        }
        return cls(model["vocab"], merges, special)

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text`` (no BOS or EOS is added)."""
        ids: list[int] = []
        position = 0
        if self._special_re is not None:
            for match in self._special_re.finditer(text):
                ids += self._encode_piece(text[position : match.start()])
                ids.append(self.special_tokens[match.group()])
                position = match.end()
        ids += self._encode_piece(text[position:])
        return ids

    def _encode_piece(self, piece: str) -> list[int]:
        if not piece:
            return []
        cached = self._cache.get(piece)
        if cached is not None:
            return cached

        normalized = _SPACE_MARK + piece.replace(" ", _SPACE_MARK)
        ids = self._merge(normalized)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[piece] = ids
        return ids

    def _initial_symbols(self, text: str) -> list[str]:
        symbols = []
        for char in text:
            if char in self.vocab:
                symbols.append(char)
            else:
                symbols.extend(f"<0x{byte:02X}>" for byte in char.encode("utf-8"))
        return symbols

    def _merge(self, text: str) -> list[int]:
        symbols: list[str | None] = self._initial_symbols(text)
        count = len(symbols)
        following = list(range(1, count + 1))
        preceding = list(range(-1, count - 1))
        ranks = self._ranks

        # Heap entries are (rank, left position). An entry goes stale when a
        # neighbour merges first, and is then skipped: a pair's rank
        # identifies the pair, so a live entry with a matching rank is valid.
        heap = [
            (ranks[pair], i)
            for i, pair in enumerate(zip(symbols, symbols[1:]))
            if pair in ranks
        ]
        heapq.heapify(heap)
        while heap:
            rank, left = heapq.heappop(heap)
            right = following[left]
            if symbols[left] is None or right >= count:
                continue
            if ranks.get((symbols[left], symbols[right])) != rank:
                continue

            symbols[left] = symbols[left] + symbols[right]
            symbols[right] = None
            following[left] = following[right]
            if following[left] < count:
                preceding[following[left]] = left

            before = preceding[left]
            if before >= 0:
                pair_rank = ranks.get((symbols[before], symbols[left]))
                if pair_rank is not None:
                    heapq.heappush(heap, (pair_rank, before))
            after = following[left]
            if after < count:
                pair_rank = ranks.get((symbols[left], symbols[after]))
                if pair_rank is not None:
                    heapq.heappush(heap, (pair_rank, left))

        return [self.vocab[symbol] for symbol in symbols if symbol is not None]


_EXPECTED_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": _SPACE_MARK},
        {"type": "Replace", "pattern": {"String": " "}, "content": _SPACE_MARK},
    ],
}


def _check(condition: bool, rule: str, value) -> None:
    if not condition:
        raise ValueError(f"unsupported tokenizer.json: {rule}, got {value!r:.200}")
