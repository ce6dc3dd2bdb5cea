"""The semantic-router baseline routes precomputed vectors the way its IndexedRouter does."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "semantic_router", reason="semantic-router is a dependency of stratarouter-bench: pip install -e benchmarks"
)

from stratarouter_core.errors import ConfigError, EncoderError

from stratarouter_bench.semantic_router_baseline import (
    SETTINGS,
    SemanticRouterBaseline,
    measure_latency,
)

ROUTES = {
    "weather": ["is it raining", "forecast for tomorrow"],
    "music": ["play a song", "next track please"],
    "billing": ["refund my order", "where is my invoice"],
}
# each route's utterances lie close to one axis of a 3-D space
VECTORS = {
    "is it raining": np.array([1.0, 0.1, 0.0]),
    "forecast for tomorrow": np.array([0.9, 0.0, 0.2]),
    "play a song": np.array([0.1, 1.0, 0.0]),
    "next track please": np.array([0.0, 0.9, 0.1]),
    "refund my order": np.array([0.0, 0.1, 1.0]),
    "where is my invoice": np.array([0.2, 0.0, 0.9]),
}
QUERIES = ["will it snow", "put on some jazz", "charge me back"]
QUERY_VECTORS = np.array([[0.95, 0.05, 0.05], [0.05, 0.95, 0.05], [0.05, 0.05, 0.95]])
EXPECTED = ["weather", "music", "billing"]


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_picks_the_nearest_route(setting: str) -> None:
    baseline = SemanticRouterBaseline(ROUTES, VECTORS, setting=setting)

    assert baseline.build_seconds > 0
    assert [baseline.route(q, v) for q, v in zip(QUERIES, QUERY_VECTORS, strict=True)] == EXPECTED
    assert baseline.route_many(QUERIES, QUERY_VECTORS) == EXPECTED


def test_settings_reach_the_rival_router() -> None:
    tuned = SemanticRouterBaseline(ROUTES, VECTORS, setting="tuned")

    assert tuned.router.top_k == 20
    assert tuned.router.aggregate([0.5, 0.25]) == pytest.approx(0.75)  # sum, not mean


def test_accepts_texts_and_a_matrix() -> None:
    texts = list(VECTORS)
    baseline = SemanticRouterBaseline(ROUTES, (texts, np.stack([VECTORS[t] for t in texts])))

    assert baseline.route_many(QUERIES, QUERY_VECTORS) == EXPECTED


def test_never_abstains_without_a_threshold() -> None:
    baseline = SemanticRouterBaseline(ROUTES, VECTORS)
    far_away = np.array([-1.0, -1.0, -1.0])

    assert baseline.route("gibberish", far_away) is not None
    baseline.threshold = 0.5
    assert baseline.route("gibberish", far_away) is None
    assert baseline.route(QUERIES[0], QUERY_VECTORS[0]) == "weather"


def test_query_vectors_are_not_kept() -> None:
    baseline = SemanticRouterBaseline(ROUTES, VECTORS)
    baseline.route_many(QUERIES, QUERY_VECTORS)

    assert set(baseline._vectors) == set(VECTORS)


def test_fit_calibrates_without_changing_the_ranking() -> None:
    baseline = SemanticRouterBaseline(ROUTES, VECTORS)
    texts = [*QUERIES, "random noise", "more noise"]
    vectors = np.vstack([QUERY_VECTORS, [[-1.0, 0.2, -1.0], [0.3, -1.0, -1.0]]])

    report = baseline.fit(texts, [*EXPECTED, None, None], vectors)

    assert report.n == 5 and report.accuracy == 1.0 and report.method == "platt"
    assert baseline.route_many(QUERIES, QUERY_VECTORS) == EXPECTED
    assert set(baseline._vectors) == set(VECTORS)
    _, confidence = baseline.decide(QUERIES[0], QUERY_VECTORS[0])
    assert confidence is not None and 0.0 < confidence < 1.0


def test_measure_latency_times_each_call() -> None:
    baseline = SemanticRouterBaseline(ROUTES, VECTORS)

    timings = measure_latency(baseline, QUERIES, QUERY_VECTORS, n=7, warmup=2)

    assert timings.shape == (7,) and np.all(timings > 0)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        SemanticRouterBaseline(ROUTES, VECTORS, setting="fast")
    with pytest.raises(ConfigError, match="no vector"):
        SemanticRouterBaseline({"weather": ["unseen text"]}, VECTORS)
    with pytest.raises(ConfigError, match="one row per text"):
        SemanticRouterBaseline(ROUTES, (list(VECTORS), np.zeros((2, 3))))


def test_a_missing_vector_is_an_encoder_error() -> None:
    baseline = SemanticRouterBaseline(ROUTES, VECTORS)

    with pytest.raises(EncoderError, match="no precomputed vector"):
        baseline.router("a text nobody embedded")
