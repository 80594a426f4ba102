"""Pure-Python BERT WordPiece tokenizer (uncased), as used by all-MiniLM-L6-v2.

Reads a Hugging Face ``tokenizer.json`` with a ``BertNormalizer``, the
``BertPreTokenizer`` and a ``WordPiece`` model, and reproduces the token ids
of the ``tokenizers`` library (checked against version 0.23.3 by the fixture
tests):

1. Special tokens (``[CLS]``, ``[SEP]``, ``[MASK]``, ...) are matched in the
   raw text, leftmost and longest first, and become their ids.
2. Normalisation of the other pieces: drop NUL, U+FFFD and characters of
   Unicode category Cc, Cf, Co or Cs except tab, LF and CR. Map White_Space characters to
   a space. Surround CJK ideographs with spaces. Strip accents (NFD, then
   drop category Mn). Lower-case character by character, so a final capital
   sigma becomes "σ", not "ς" as ``str.lower()`` would make it.
3. Words are split on whitespace, and each punctuation character (ASCII
   punctuation or Unicode category P*) becomes a word of its own.
4. WordPiece: greedy longest match from the left, continuation pieces
   prefixed ``##``. A word that cannot be covered, or has more than
   ``max_input_chars_per_word`` characters, becomes ``[UNK]``.
5. ``[CLS]`` and ``[SEP]`` enclose the ids, after truncation to
   ``max_length`` tokens including the two.
"""

from __future__ import annotations

import json
import re
import unicodedata

__all__ = ["WordPieceTokenizer"]

# Rust's char::is_whitespace (the Unicode White_Space property), which the
# reference uses; Python's str.isspace() also accepts U+001C..U+001F.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_CONTROL_KEPT = frozenset("\t\n\r")
# Control, format, private-use and surrogate characters are removed, but
# unassigned ones (Cn) are kept, as the reference does; they become [UNK].
_CONTROL_CATEGORIES = frozenset(("Cc", "Cf", "Co", "Cs"))
# NOTE: categories come from the running Python's unicodedata tables, while
# the reference uses its Rust crates' own. Characters assigned after Unicode
# 14 (CPython 3.11) may be classified differently, and no fixture covers them.

# Code point ranges that BERT treats as CJK ideographs.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

_CACHE_SIZE = 1 << 14


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


class WordPieceTokenizer:
    """Uncased BERT tokenizer: ``vocab`` maps pieces to ids."""

    def __init__(
        self,
        vocab: dict[str, int],
        special_tokens: dict[str, int],
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        max_input_chars_per_word: int = 100,
    ) -> None:
        for token in (unk_token, cls_token, sep_token):
            if token not in vocab:
                raise ValueError(f"vocab lacks the special token {token!r}")
        self.vocab = vocab
        self.special_tokens = special_tokens
        self.unk_id = vocab[unk_token]
        self.cls_id = vocab[cls_token]
        self.sep_id = vocab[sep_token]
        self.max_input_chars_per_word = max_input_chars_per_word
        ordered = sorted(special_tokens, key=len, reverse=True)
        self._special_re = (
            re.compile("|".join(re.escape(token) for token in ordered)) if ordered else None
        )
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_json(cls, data: bytes | str) -> "WordPieceTokenizer":
        """Build the tokenizer from ``tokenizer.json`` bytes or text.

        Raises ``ValueError`` if the file is not an uncased BERT WordPiece
        tokenizer as described in the module docstring.
        """
        config = json.loads(data)
        model = config.get("model") or {}
        normalizer = config.get("normalizer") or {}
        _check(model.get("type") == "WordPiece", "model.type must be 'WordPiece'", model.get("type"))
        _check(
            model.get("continuing_subword_prefix") == "##",
            "model.continuing_subword_prefix must be '##'",
            model.get("continuing_subword_prefix"),
        )
        _check(normalizer.get("type") == "BertNormalizer", "normalizer must be BertNormalizer", normalizer)
        for key in ("clean_text", "handle_chinese_chars", "lowercase"):
            _check(normalizer.get(key) is True, f"normalizer.{key} must be true", normalizer.get(key))
        _check(
            normalizer.get("strip_accents") in (None, True),
            "normalizer.strip_accents must be null or true",
            normalizer.get("strip_accents"),
        )
        pre_tokenizer = config.get("pre_tokenizer") or {}
        _check(
            pre_tokenizer.get("type") == "BertPreTokenizer",
            "pre_tokenizer must be BertPreTokenizer",
            pre_tokenizer,
        )

        special = {
            token["content"]: token["id"]
            for token in config.get("added_tokens", [])
            if not token.get("normalized", True)
        }
        return cls(
            model["vocab"],
            special,
            unk_token=model.get("unk_token", "[UNK]"),
            max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
        )

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """Return ``[CLS] + ids + [SEP]``, cut to at most ``max_length`` ids in all.

        Raises ``ValueError`` if ``max_length`` is below 2.
        """
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be >= 2 to hold [CLS] and [SEP], got {max_length}")

        ids: list[int] = []
        position = 0
        if self._special_re is not None:
            for match in self._special_re.finditer(text):
                ids += self._encode_piece(text[position : match.start()])
                ids.append(self.special_tokens[match.group()])
                position = match.end()
        ids += self._encode_piece(text[position:])

        if max_length is not None:
            ids = ids[: max_length - 2]
        return [self.cls_id, *ids, self.sep_id]

    def _encode_piece(self, piece: str) -> list[int]:
        if not piece:
            return []
        ids: list[int] = []
        for word in _split_words(_normalize(piece)):
            cached = self._cache.get(word)
            if cached is None:
                cached = self._word_ids(word)
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[word] = cached
            ids += cached
        return ids

    def _word_ids(self, word: str) -> list[int]:
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_id]

        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            piece_id = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                piece_id = self.vocab.get(piece)
                if piece_id is not None:
                    break
                end -= 1
            if piece_id is None:
                return [self.unk_id]
            ids.append(piece_id)
            start = end
        return ids


def _normalize(text: str) -> str:
    chars = []
    for char in text:
        if char == "\0" or char == "\ufffd":
            continue
        if unicodedata.category(char) in _CONTROL_CATEGORIES and char not in _CONTROL_KEPT:
            continue
        if char in _WHITESPACE:
            chars.append(" ")
        elif _is_cjk(char):
            chars.append(f" {char} ")
        else:
            chars.append(char)

    decomposed = unicodedata.normalize("NFD", "".join(chars))
    stripped = (char for char in decomposed if unicodedata.category(char) != "Mn")
    return "".join(char.lower() for char in stripped)


def _split_words(text: str) -> list[str]:
    words = []
    current: list[str] = []
    for char in text:
        if char in _WHITESPACE or _is_punctuation(char):
            if current:
                words.append("".join(current))
                current = []
            if char not in _WHITESPACE:
                words.append(char)
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def _check(condition: bool, rule: str, value) -> None:
    if not condition:
        raise ValueError(f"unsupported tokenizer.json: {rule}, got {value!r:.200}")
