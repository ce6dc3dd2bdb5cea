"""Prompt token counts with the local encoder's WordPiece tokenizer: the word-by-word counter
(`costs._WordCounts`) gives exactly the tokenizer's counts, on tricky text and on the data."""

from __future__ import annotations

import json
import random

import pytest

from stratarouter_core.model_routing.costs import _WordCounts, make_token_counter

TRICKY = [
    "",
    "   ",
    "hello world",
    "Hello, WORLD!!",
    "don't_stop-now!! 3.14 e=mc^2 C++ @home #tag ~x|y{z}",
    "abc123def 4th 1,000,000 $5.99",
    "tab\there\r\nnew line\n\n",
    "x" * 150,  # over WordPiece's 100 characters per word: one [UNK]
    "a" * 101 + " b",
    "Ünïcode café naïve",  # not plain ASCII: the tokenizer, whole
    "ctrl\x01char and \x0bvertical tab and \x7f",
    "中文 text 日本語",
    "emoji 🙂 here",
    "unaffable unbelievably antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def tokenizer(local_encoder):
    tokenizers = pytest.importorskip("tokenizers", reason="needs stratarouter[local]")
    loaded = tokenizers.Tokenizer.from_file(str(local_encoder.model_dir / "tokenizer.json"))
    loaded.no_truncation()
    loaded.no_padding()
    return loaded


def _reference(tokenizer, texts):
    return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_word_by_word_counts_are_the_tokenizers(tokenizer) -> None:
    rng = random.Random(0)
    printable = [chr(i) for i in range(128)]
    noise = ["".join(rng.choice(printable) for _ in range(rng.randint(0, 200))) for _ in range(500)]
    texts = TRICKY + noise
    counter = _WordCounts(tokenizer)
    assert [counter([t])[0] for t in texts] == _reference(tokenizer, texts)  # words learned
    assert counter(texts) == _reference(tokenizer, texts)  # again, from what it kept


def test_a_full_word_table_starts_again_and_stays_exact(tokenizer) -> None:
    counter = _WordCounts(tokenizer, max_words=5)
    texts = [f"alpha beta gamma delta epsilon word{i} more{i}" for i in range(20)]
    assert counter(texts) == _reference(tokenizer, texts)
    assert len(counter._pieces) <= 5 + 7  # cleared when full, never far past the bound


def test_the_routers_counter_matches_the_tokenizer_on_the_shared_data(
    tokenizer, local_encoder, datasets_dir
) -> None:
    graded = json.loads((datasets_dir / "model_routing.json").read_text())
    clinc = json.loads((datasets_dir / "clinc150.json").read_text())
    texts = [row[0] for split in ("train", "test") for row in graded[split]]
    texts += [row[0] for rows in clinc.values() if isinstance(rows, list) for row in rows
              if isinstance(row, list) and row and isinstance(row[0], str)]  # fmt: skip
    counter = make_token_counter(local_encoder, 4.0)
    expected = [max(n, 1) for n in _reference(tokenizer, texts)]
    assert counter(texts).astype(int).tolist() == expected
