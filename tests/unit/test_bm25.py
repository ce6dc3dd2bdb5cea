"""Our vectorised BM25: rank_bm25's Okapi weights with a non-negative idf, sane at any size."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _okapi_with_our_idf(docs: list[list[str]], **params: float) -> object:
    """rank_bm25's Okapi scorer with its idf replaced by ours (its tf and length terms kept)."""
    oracle = rank_bm25.BM25Okapi(docs, **params)
    n = len(docs)
    frequencies = _document_frequencies(docs).items()
    oracle.idf = {t: math.log1p((n - df + 0.5) / (df + 0.5)) for t, df in frequencies}
    return oracle


def _document_frequencies(docs: list[list[str]]) -> dict[str, int]:
    frequencies: dict[str, int] = {}
    for doc in docs:
        for term in set(doc):
            frequencies[term] = frequencies.get(term, 0) + 1
    return frequencies


def test_scores_equal_rank_bm25_where_its_idf_is_positive() -> None:
    # Terms in fewer than half the documents: Okapi's idf is positive, and the whole Okapi
    # definition applies; ours differs only by log(1 + x) against log(x) in the idf.
    docs = [[f"w{d}", f"w{d}", f"s{d % 3}", f"t{d}"][: 2 + d % 3] for d in range(12)]
    oracle = rank_bm25.BM25Okapi(docs)
    assert min(oracle.idf.values()) > 0
    ours = BM25Index(docs)
    for query in (["w1"], ["s0", "t4"], ["w3", "w3", "zz"]):
        expected = np.zeros(len(docs))
        for term in query:
            if term in oracle.idf:
                okapi_idf = oracle.idf[term]
                df = _document_frequencies(docs)[term]
                ratio = math.log1p((len(docs) - df + 0.5) / (df + 0.5)) / okapi_idf
                expected += ratio * np.asarray(oracle.get_scores([term]))
        np.testing.assert_allclose(ours.score(query), expected, rtol=1e-9, atol=1e-12)


def test_scores_match_rank_bm25_on_a_small_corpus() -> None:
    docs = [tokenize(d) for d in CORPUS]
    ours, oracle = BM25Index(docs), _okapi_with_our_idf(docs)
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
    ours = BM25Index(docs, k1=1.2, b=0.6)
    oracle = _okapi_with_our_idf(docs, k1=1.2, b=0.6)
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


TINY_CORPORA = {
    "one route": [["refund"]],
    "two routes sharing every word": [["weather", "today"], ["today", "weather"]],
    "duplicate examples": [["reset", "password", "reset", "password"], ["reset", "password"]],
    "all words shared by three": [["a1", "b1"], ["a1", "b1"], ["b1", "a1", "a1"]],
    "function words only": [["what", "is", "the"], ["how", "are", "you"]],
}


@pytest.mark.parametrize("name", sorted(TINY_CORPORA))
def test_tiny_route_sets_give_finite_scores_in_unit_interval(name: str) -> None:
    docs = TINY_CORPORA[name]
    index = BM25Index(docs)
    assert np.all(index.idf > 0)
    queries = [*docs, ["refund"], ["zebra"], ["my"], ["what", "is", "the", "weather"], []]
    batch = index.normalized_many(queries)
    assert np.all(np.isfinite(batch)) and batch.min() >= 0.0 and batch.max() < 1.0
    for row, query in enumerate(queries):
        np.testing.assert_allclose(index.normalized(query), batch[row], rtol=1e-5, atol=1e-7)


def test_one_route_matches_its_own_example() -> None:
    index = BM25Index([["refund"]])
    assert index.normalized(["refund"])[0] > 0.2


def test_common_words_cannot_make_a_query_look_explained() -> None:
    docs = [tokenize(d) for d in CORPUS]
    index = BM25Index(docs)
    # "my" is in half the documents: it explains far less than a word found in one.
    assert index.normalized(tokenize("my")).max() < 0.5 * index.normalized(["refund"]).max()
    # A word in every document scores little, and less than a distinctive one.
    shared = BM25Index([["card", "lost"], ["card", "limit"], ["card", "pin"]])
    assert shared.normalized(["card"]).max() < 0.3
    assert shared.normalized(["pin"])[2] > 2 * shared.normalized(["card"])[2]
    # Two routes: a word of both still gets a positive, small weight (Okapi's is negative).
    pair = BM25Index([["weather", "today"], ["today", "news"]])
    assert 0.0 < pair.normalized(["today"]).max() < pair.normalized(["weather"])[0]


@given(
    st.lists(
        st.lists(st.sampled_from(["a", "b", "c", "the", "d"]), min_size=0, max_size=6),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.sampled_from(["a", "b", "c", "the", "zz"]), min_size=0, max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_any_small_corpus_gives_bounded_scores(docs: list[list[str]], query: list[str]) -> None:
    index = BM25Index(docs)
    scores = index.normalized_many([query])
    assert np.all(np.isfinite(scores)) and scores.min() >= 0.0 and scores.max() < 1.0
    assert np.all(index.score(query) >= 0.0)
