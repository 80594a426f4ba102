"""Regenerate the token-id fixtures of the pure-Python tokenizers.

Needs the reference ``tokenizers`` library (a development tool, not a
runtime dependency): ``pip install tokenizers`` in any venv with numpy, then

    python build_scripts/make_tokenizer_fixtures.py [--cache DIR] [--embeddings]

It writes ``tests/fixtures/tokenizers/{wordllama,minilm}.json``: the test
strings below (written for this project) and the ids the reference returns.
If ``../shared/data/clinc150`` exists, it also compares our tokenizers with
the reference on every CLINC150 query and exits with status 1 on any
difference. Those queries are not written to the fixtures.

``--embeddings`` also writes ``tests/embedders/reference_embeddings.json``:
embeddings of a few strings from the reference implementations
(``sentence-transformers`` for MiniLM, the ``wordllama`` package for
WordLlama), which must then be installed too.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "build_scripts"))

from build_models import read_source  # noqa: E402

from sona_web.embedders._llama_bpe import LlamaBpeTokenizer  # noqa: E402
from sona_web.embedders._wordpiece import WordPieceTokenizer  # noqa: E402

FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "tokenizers"
EMBEDDINGS_PATH = REPO_ROOT / "tests" / "embedders" / "reference_embeddings.json"
CLINC_PATH = REPO_ROOT.parent / "shared" / "data" / "clinc150" / "data_full.json"
MAX_TOKENS = 256

# Hand-written edge cases: whitespace, Unicode normal forms, casing rules,
# control and format characters, scripts without spaces, emoji sequences,
# special-token strings, numbers, punctuation and over-long words.
EDGE_CASES = [
    "", " ", "  ", "   leading", "trailing   ", "\t", "\n", "\r\n\r\n", "a  b   c",
    "hello world", "Hello World!", "HELLO", "hello\tworld\n", "tab\there",
    "naïve café", "résumé", "Ångström", "e\u0301 combining acute", "cafe\u0301",
    "ΟΔΟΣ Σίσυφος", "İstanbul ıi", "straße STRASSE", "ﬁnance ﬀ ﬃ", "Ǆemal ǅ ǆ",
    "１２３ full-width ＡＢＣ", "½ ² ㎏ ℃", "x\u00a0y", "\u3000ideographic space",
    "\u2028line\u2029para", "a\u200bb zero width", "a\u00adb soft hyphen",
    "x\u0000y nul", "\x0bvt\x0cff\x85nel", "\x1c\x1d\x1e\x1f unit separators",
    "\ufffd replacement", "\u0378 unassigned", "\ue000 private use \U0010fffd",
    "東京は日本の首都です", "我想订一张去北京的机票", "日本語とEnglish混在", "안녕하세요 세계",
    "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "😀", "🤖🤖🤖", "👍🏽 thumbs", "👨‍👩‍👧 family", "🇫🇷 flag", "❤️ heart", "text😀text",
    "<s>", "</s>", "<unk>", "a<s>b", "<s><s>", "<<s>>", "</s></s>x", "<unk></s>x",
    "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls] lower", "hello[MASK]world",
    "[CLS] hi [SEP] there", "[[MASK]]",
    "0", "42", "3.14159", "1,000,000", "-17", "+1 (555) 010-9999", "2024-06-01",
    "$100.50 + 20% = ?", "12:30pm", "7am", "1st 2nd 3rd 4th", "0x1F", "1e-9",
    "don't won't can't I'm", "rock 'n' roll", "\"quoted\"", "«guillemets»", "“curly”",
    "...", "?!", "!!!???", "…—–", "a-b_c.d", "e-mail: a@b.co", "http://x.y/z?q=1&r=2",
    "C++ and C#", "~tilde `backtick` ^caret |pipe| <angle>", "#hashtag @mention",
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 99, "a" * 100, "a" * 101, "ab" * 80, "x" * 300,
    "antidisestablishmentarianism " * 3, "word " * 300, "the the the the",
]

# Pieces for generated strings: everyday words, numbers, punctuation,
# accented and non-Latin words, emoji and whitespace runs.
PIECES = [
    "book", "a", "flight", "to", "Paris", "please", "what's", "my", "balance",
    "transfer", "$500", "from", "checking", "savings", "set", "an", "alarm",
    "for", "6:30", "tomorrow", "how", "do", "you", "say", "thank", "in",
    "Spanish", "play", "some", "jazz", "music", "cancel", "order", "#4521",
    "café", "naïve", "über", "Zürich", "São", "Paulo", "北京", "東京", "ソウル",
    "Москва", "😀", "🚗", "!", "?", ",", ".", "'", "\"", "(", ")", "-", "/",
    "  ", "   ", "\t", "\n", "100%", "3.5", "1,234", "O'Brien", "e-mail",
    "COVID-19", "iPhone", "PIN", "APR", "<s>", "[SEP]",
]


def generated_strings(count: int, seed: int = 0) -> list[str]:
    """Return ``count`` random joins of PIECES, the same for a given seed."""
    rng = random.Random(seed)
    strings = []
    for _ in range(count):
        words = [rng.choice(PIECES) for _ in range(rng.randint(1, 14))]
        separators = [rng.choice([" ", " ", " ", "", "  "]) for _ in words]
        strings.append("".join(w + s for w, s in zip(words, separators)).rstrip(" "))
    return strings


def fixture_strings() -> list[str]:
    return EDGE_CASES + generated_strings(250)


def _reference_tokenizers(files_by_model):
    from tokenizers import Tokenizer

    wordllama = Tokenizer.from_str(files_by_model["wordllama"]["tokenizer"].decode("utf-8"))
    minilm = Tokenizer.from_str(files_by_model["minilm"]["tokenizer"].decode("utf-8"))
    minilm.no_padding()
    minilm.enable_truncation(MAX_TOKENS)
    return {
        "wordllama": lambda text: wordllama.encode(text, add_special_tokens=False).ids,
        "minilm": lambda text: minilm.encode(text).ids,
    }


def _our_tokenizers(files_by_model):
    wordllama = LlamaBpeTokenizer.from_json(files_by_model["wordllama"]["tokenizer"])
    minilm = WordPieceTokenizer.from_json(files_by_model["minilm"]["tokenizer"])
    return {
        "wordllama": wordllama.encode,
        "minilm": lambda text: minilm.encode(text, MAX_TOKENS),
    }


def write_fixtures(files_by_model, reference) -> None:
    import tokenizers

    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    strings = fixture_strings()
    for name, encode in reference.items():
        header = {
            "tokenizer": name,
            "reference": f"tokenizers {tokenizers.__version__}",
            "max_tokens": MAX_TOKENS if name == "minilm" else None,
        }
        # One case per line keeps the fixture readable and its diffs small.
        cases = ",\n".join(
            json.dumps({"text": text, "ids": encode(text)}, ensure_ascii=False) for text in strings
        )
        path = FIXTURE_DIR / f"{name}.json"
        path.write_text(json.dumps(header)[:-1] + ', "cases": [\n' + cases + "\n]}\n", encoding="utf-8")
        print(f"wrote {len(strings)} cases to {path.relative_to(REPO_ROOT)}")


def compare_on_clinc150(reference, ours) -> int:
    """Return the number of CLINC150 queries on which the tokenizers differ."""
    if not CLINC_PATH.is_file():
        print(f"skipped the CLINC150 comparison: {CLINC_PATH} not found")
        return 0
    data = json.loads(CLINC_PATH.read_text(encoding="utf-8"))
    queries = [query for split in data.values() for query, _ in split]
    differences = 0
    for name in reference:
        bad = [q for q in queries if reference[name](q) != ours[name](q)]
        print(f"{name}: {len(bad)} of {len(queries)} CLINC150 queries differ from the reference")
        differences += len(bad)
    return differences


REFERENCE_TEXTS = [
    "what is my bank balance",
    "book a table for two at 7pm",
    "how do you say thank you in french",
    "Naïve café visit in 東京 😀",
    "",
    "supercalifragilisticexpialidocious " * 80,
]


def write_reference_embeddings(files_by_model) -> None:
    import os
    import tempfile

    import numpy as np
    from safetensors.numpy import load as load_tensors
    from tokenizers import Tokenizer
    from wordllama.inference import WordLlamaInference

    table = load_tensors(files_by_model["wordllama"]["weights"])["embedding.weight"]
    tokenizer = Tokenizer.from_str(files_by_model["wordllama"]["tokenizer"].decode("utf-8"))
    wordllama = WordLlamaInference(table, tokenizer).embed(REFERENCE_TEXTS)

    # sentence-transformers reads a model directory, so the checked source
    # files are laid out in a temporary one. Offline mode keeps the Hugging
    # Face client from contacting its hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        for role, name in (("weights", "model.safetensors"), ("tokenizer", "tokenizer.json"),
                           ("config", "config.json"), ("sentence_bert_config", "sentence_bert_config.json")):
            (root / name).write_bytes(files_by_model["minilm"][role])
        model = SentenceTransformer(str(root), device="cpu")
        # Without modules.json the library ignores sentence_bert_config.json
        # and would cut texts at 512 tokens instead of the model's 256.
        model.max_seq_length = json.loads(files_by_model["minilm"]["sentence_bert_config"])["max_seq_length"]
        minilm = model.encode(REFERENCE_TEXTS, normalize_embeddings=True)

    reference = {
        "texts": REFERENCE_TEXTS,
        # Seven decimals (error <= 5e-8) keep the file small and far below
        # the tests' tolerances.
        "wordllama_256_unnormalized": np.round(np.asarray(wordllama, dtype=np.float64), 7).tolist(),
        "minilm": np.round(np.asarray(minilm, dtype=np.float64), 7).tolist(),
    }
    EMBEDDINGS_PATH.write_text(json.dumps(reference) + "\n", encoding="utf-8")
    print(f"wrote reference embeddings to {EMBEDDINGS_PATH.relative_to(REPO_ROOT)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help="cache directory holding downloads/")
    parser.add_argument("--embeddings", action="store_true", help="also write reference embeddings")
    args = parser.parse_args(argv)

    files_by_model = {name: read_source(name, args.cache) for name in ("wordllama", "minilm")}
    reference = _reference_tokenizers(files_by_model)
    write_fixtures(files_by_model, reference)
    if args.embeddings:
        write_reference_embeddings(files_by_model)
    return 1 if compare_on_clinc150(reference, _our_tokenizers(files_by_model)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
