"""Our vectorised BM25 reproduces rank_bm25.BM25Okapi exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest

from stratarouter_core.scoring import BM25Index
from stratarouter_core.text import tokenize

rank_bm25 = pytest.importorskip("rank_bm25", reason="rank-bm25 is the test oracle (dev extra)")

CORPUS = [
    "refund my invoice please",
    "I was charged twice for my invoice",
    "reset my password",
    "the app crashes when I open it",
    "will it rain today in paris",
    "weather forecast rain",
    "book a flight from paris to rome",
    "cancel my flight booking",
    "what is my account balance",
    "transfer money to my savings account account account",
]


def test_scores_match_rank_bm25_on_a_small_corpus() -> None:
    docs = [tokenize(d) for d in CORPUS]
    ours, oracle = BM25Index(docs), rank_bm25.BM25Okapi(docs)
    for query in [
        "refund invoice",
        "paris rain",
        "account account balance",
        "unknown words",
        "my my",
    ]:
        tokens = tokenize(query)
        np.testing.assert_allclose(
            ours.score(tokens), oracle.get_scores(tokens), rtol=1e-9, atol=1e-12
        )


def test_scores_match_rank_bm25_on_random_corpora_in_batch() -> None:
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(60)]
    docs = [[rng.choice(vocabulary) for _ in range(rng.randint(1, 30))] for _ in range(40)]
    ours, oracle = BM25Index(docs, k1=1.2, b=0.6), rank_bm25.BM25Okapi(docs, k1=1.2, b=0.6)
    queries = [
        [rng.choice([*vocabulary, "oov"]) for _ in range(rng.randint(1, 8))] for _ in range(50)
    ]
    batch = ours.score_many(queries)
    for row, query in enumerate(queries):
        np.testing.assert_allclose(batch[row], oracle.get_scores(query), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.score(query), batch[row], rtol=1e-9, atol=1e-12)


def test_normalized_is_a_fraction_of_the_attainable_maximum() -> None:
    index = BM25Index([tokenize(d) for d in CORPUS])
    scores = index.normalized(tokenize("refund my invoice"))
    assert scores.max() < 1.0 and scores.min() >= 0.0
    assert int(scores.argmax()) == 0
    assert index.normalized(tokenize("zebra quantum")).max() == 0.0
    # unknown words dilute the match instead of being ignored
    assert (
        index.normalized(tokenize("refund invoice zebra"))[0]
        < index.normalized(tokenize("refund invoice"))[0]
    )


@pytest.mark.parametrize(
    ("cells", "table", "common_rows"),
    [(None, True, False), (0, False, False), (1000, False, True)],
    ids=["float32 table", "postings only", "postings + dense rows of common words"],
)
def test_normalized_batch_equals_single_and_exact_scores(
    cells: int | None, table: bool, common_rows: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratarouter_core.scoring import sparse

    if cells is not None:  # the memory budget decides which layouts the index keeps
        monkeypatch.setattr(sparse, "_DENSE_MAX_CELLS", cells)
    rng = random.Random(11)
    vocabulary = [f"w{i}" for i in range(50)]
    docs = [[rng.choice(vocabulary) for _ in range(rng.randint(1, 25))] for _ in range(30)]
    index = BM25Index(docs)
    assert (index._table is not None) is table
    assert (len(index._common_rows) > 0) is common_rows
    queries = [
        [rng.choice([*vocabulary, "oov"]) for _ in range(rng.randint(1, 7))] for _ in range(40)
    ]
    queries += [["oov"], ["w1", "w1", "w1"]]  # only unknown words; a repeated term
    batch = index.normalized_many(queries)
    for row, query in enumerate(queries):
        exact = index.score(query) / index.upper_bound(query)
        np.testing.assert_allclose(batch[row], exact, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(index.normalized(query), batch[row], rtol=1e-5, atol=1e-7)
    assert batch[-2].max() == 0.0
    candidates = np.array([rng.sample(range(len(docs)), 5) for _ in queries])
    picked = index.normalized_many(queries, candidates)
    expected = batch[np.arange(len(queries))[:, None], candidates]
    np.testing.assert_allclose(picked, expected, rtol=1e-5, atol=1e-7)
