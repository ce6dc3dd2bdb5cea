"""Routing decisions: hybrid scores, rules, thresholds, fallback, batch, async, threads, explain."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from stratarouter_core import Route, Router, RouterConfig, RouteResult
from stratarouter_core.config import IndexConfig
from stratarouter_core.testing import HashingEncoder

ROUTES = [
    Route(
        name="billing",
        description="payments invoices refunds",
        examples=["refund my invoice", "I was charged twice", "update my credit card"],
        keywords=["invoice"],
        patterns=[r"\binv-\d{4}\b"],
    ),
    Route(
        name="tech",
        examples=["the app crashes on start", "error when I log in", "page does not load"],
        patterns=[r"\berror\s*\d{3}\b"],
    ),
    Route(
        name="weather",
        examples=["will it rain today", "weather forecast for tomorrow", "is it sunny"],
    ),
    Route(
        name="sports",
        examples=["who won the match", "football scores tonight", "tennis results"],
        threshold=1.0,
    ),
]
QUERIES = [
    "refund the invoice please",
    "the app crashes again",
    "rain forecast tomorrow",
    "football match scores",
    "purple elephant symphony",
    "charged twice on my card",
    "error 503 now",
    "see inv-1234",
    "is it going to be sunny",
    "login error",
]


def same(a: RouteResult, b: RouteResult) -> bool:
    """Same decision and ranking; scores equal up to float32 rounding (GEMM vs GEMV)."""
    return (
        a.route_id == b.route_id
        and [c.route_id for c in a.candidates] == [c.route_id for c in b.candidates]
        and np.allclose([c.score for c in a.candidates], [c.score for c in b.candidates], atol=1e-5)
        and np.allclose(
            [c.confidence for c in a.candidates], [c.confidence for c in b.candidates], atol=1e-5
        )
    )


def make_router(**config: object) -> Router:
    r = Router(encoder=HashingEncoder(dimension=128), config=RouterConfig(**config))  # type: ignore[arg-type]
    r.add_routes(ROUTES)
    r.build_index()
    return r


@pytest.fixture
def router() -> Router:
    return make_router(threshold=0.15, fallback_route="human")


def test_routes_to_the_matching_route(router: Router) -> None:
    assert router.route("refund the invoice please").route_id == "billing"
    assert router.route("will it rain tomorrow").route_id == "weather"


def test_result_carries_ranked_candidates_with_score_parts(router: Router) -> None:
    result = router.route("refund the invoice please")
    assert result.candidates[0].route_id == "billing"
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)
    top = result.candidates[0]
    assert top.dense > 0 and 0 < top.sparse < 1 and top.rule == 1.0
    assert top.confidence == result.confidence
    assert result.latency_us > 0


def test_out_of_scope_is_a_normal_result(router: Router) -> None:
    result = router.route("purple elephant symphony")
    assert result.route_id == "human" and result.is_fallback
    no_fallback = make_router(threshold=0.15)
    assert no_fallback.route("purple elephant symphony").route_id is None


def test_per_route_threshold_overrides_global(router: Router) -> None:
    assert router.threshold == 0.15
    assert router.route_threshold("sports") == 1.0 and router.route_threshold("billing") == 0.15
    result = router.route("football match scores")
    assert result.top is not None and result.top.route_id == "sports"
    assert result.route_id == "human"  # sports demands certainty, which confidence never is


def test_regex_rule_adds_evidence_and_changes_the_decision() -> None:
    plain = make_router(threshold=0.0, weights={"dense": 1.0, "sparse": 0.0, "rule": 0.0})
    ruled = make_router(threshold=0.0, weights={"dense": 1.0, "sparse": 0.0, "rule": 5.0})
    query = "see inv-1234"  # only the billing pattern knows this shape
    assert ruled.route(query).route_id == "billing"
    assert ruled.route(query).candidates[0].rule == 1.0
    assert plain.route(query).candidates[0].rule in (0.0, 1.0)
    assert plain.route(query).candidates[0].score < ruled.route(query).candidates[0].score


def test_rule_brings_in_a_route_outside_the_candidates() -> None:
    r = make_router(
        threshold=0.0,
        max_candidates=1,
        index=IndexConfig(exact_max_routes=1),  # HNSW: the only index that preselects
        weights={"dense": 1, "sparse": 0, "rule": 10},
    )
    assert r.route("weather forecast, error 404").route_id == "tech"


def test_route_batch_equals_route(router: Router) -> None:
    batch = router.route_batch(QUERIES)
    for query, batched in zip(QUERIES, batch):
        assert same(router.route(query), batched)


def test_embedding_given_equals_encoded(router: Router) -> None:
    vectors = router.encoder.encode(QUERIES)
    for query, vector in zip(QUERIES, vectors):
        assert same(router.route(query, embedding=vector), router.route(query))


def test_async_matches_sync(router: Router) -> None:
    async def go() -> None:
        one = await router.aroute(QUERIES[0])
        many = await router.aroute_batch(QUERIES)
        assert same(one, router.route(QUERIES[0]))
        assert [r.route_id for r in many] == [r.route_id for r in router.route_batch(QUERIES)]

    asyncio.run(go())


def test_concurrent_routing_matches_serial(router: Router) -> None:
    queries = QUERIES * 40
    serial = [router.route(q).candidates for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda q: router.route(q).candidates, queries))
    assert parallel == serial


def test_exact_index_scores_every_route_instead_of_pruning() -> None:
    from stratarouter_core.pipeline import score_parts

    r = make_router(max_candidates=2)  # 4 routes, exact index: a full pass costs no more
    parts = score_parts(r.state, QUERIES[:1], r.encode(QUERIES[:1]))
    assert parts.candidates is None and parts.dense is None
    assert parts.sparse.shape == (1, len(ROUTES))


def test_pruned_candidates_agree_with_all_routes() -> None:
    pruned = make_router(threshold=0.0, max_candidates=3, index=IndexConfig(exact_max_routes=1))
    full = make_router(threshold=0.0, max_candidates=100)
    agree = [pruned.route(q).route_id == full.route(q).route_id for q in QUERIES]
    assert sum(agree) >= len(QUERIES) - 1


def test_top_k_limits_candidates() -> None:
    assert len(make_router(top_k=2).route("refund").candidates) == 2


def test_explain_is_readable(router: Router) -> None:
    text = router.explain("purple elephant symphony")
    assert "decision: human" in text and "< threshold" in text
    assert "billing" in text and "dense" in text and "latency" in text


def test_build_reuses_cached_encodings() -> None:
    encoder = HashingEncoder(dimension=32)
    calls: list[int] = []
    original = encoder.encode
    encoder.encode = lambda texts: calls.append(len(texts)) or original(texts)  # type: ignore[method-assign]
    r = Router(encoder=encoder, routes=ROUTES)
    r.build_index()
    r.add_route(Route(name="news", examples=["headlines"]))
    r.build_index()
    assert calls[-1] == 1  # only the new utterance was encoded
    r.route("headlines")  # an utterance: already cached
    assert len(calls) == 2
    r.route("fresh query")
    r.route("fresh query")
    assert calls == [13, 1, 1]


def test_scores_are_vectorised_not_looped_over_routes(
    router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is fused in one call over a (queries, routes) matrix, and BM25 in one call."""
    from stratarouter_core.scoring.model import FusedScorer
    from stratarouter_core.scoring.sparse import BM25Index

    shapes: list[tuple[int, ...]] = []
    bm25_calls: list[int] = []
    fuse, normalized_many = FusedScorer.fuse, BM25Index.normalized_many

    def spy_fuse(self: FusedScorer, vectors: np.ndarray, *args: object) -> np.ndarray:
        out = fuse(self, vectors, *args)  # type: ignore[arg-type]
        shapes.append(out.shape)
        return out

    def spy_bm25(self: BM25Index, queries: list[list[str]], *args: object) -> np.ndarray:
        bm25_calls.append(len(queries))
        return normalized_many(self, queries, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FusedScorer, "fuse", spy_fuse)
    monkeypatch.setattr(BM25Index, "normalized_many", spy_bm25)
    vectors = router.encoder.encode(QUERIES)
    results = router.route_batch(QUERIES, embeddings=np.asarray(vectors))
    assert len(results) == len(QUERIES)
    assert shapes == [(len(QUERIES), len(ROUTES))]
    assert bm25_calls == [len(QUERIES)]


def test_fused_scorer_equals_the_model_fusion_of_its_features() -> None:
    """The hot path's folded matrix gives the same scores as the pipeline's stages one by one."""
    from stratarouter_core.pipeline import features, score_parts
    from stratarouter_core.scoring.model import FusedScorer, LinearHead

    rng = np.random.default_rng(3)
    # every route scored; then HNSW preselecting 2 candidates per query
    for config in ({}, {"max_candidates": 2, "index": IndexConfig(exact_max_routes=1)}):
        r = make_router(**config)
        built = r.state
        n_routes, dimension = built.prototypes.shape
        head = LinearHead(
            rng.normal(size=(n_routes, dimension)).astype(np.float32),
            rng.normal(size=n_routes).astype(np.float32),
        )
        model = replace(built.model, weights=np.array([0.7, 0.3, 0.2, 0.5, 0.4]), head=head)
        built = replace(built, model=model)
        vectors = r.encode(QUERIES)
        parts = score_parts(built, QUERIES, vectors)
        candidates, dense, sparse, rule = parts.candidates, parts.dense, parts.sparse, parts.rule
        assert (candidates is None) == (not config)
        assert rule is not None  # the queries fire keywords and patterns
        expected = model.fuse(features(built, vectors, parts, head))
        scorer = FusedScorer.compile(model, built.prototypes)
        fused = scorer.fuse(vectors, candidates, dense, sparse, rule)
        np.testing.assert_allclose(fused, expected, rtol=1e-5, atol=1e-5)
        for row in range(len(QUERIES)):  # a single query takes the scalar branches
            one = scorer.fuse(
                vectors[row : row + 1],
                None if candidates is None else candidates[row : row + 1],
                None if dense is None else dense[row : row + 1],
                sparse[row : row + 1],
                rule[row : row + 1],
            )
            np.testing.assert_allclose(one[0], expected[row], rtol=1e-5, atol=1e-5)


def test_best_first_breaks_ties_by_route_order_in_both_paths() -> None:
    from stratarouter_core.router import _best_first

    scores = np.zeros((3, 2000))
    scores[:, [5, 1500, 7]] = [2.0, 1.0, 1.0]
    one = _best_first(scores[:1, :1000], 3)  # a short single row: full sort
    many = _best_first(scores, 3)  # partition, then sort of the top
    assert one.tolist() == [[5, 7, 0]]
    assert many.tolist() == [[5, 7, 1500]] * 3
