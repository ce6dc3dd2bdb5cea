"""Bad input gets a clear, typed error, and never damages the router."""

from __future__ import annotations

import numpy as np
import pytest

from stratarouter_core import (
    ConfigError,
    DimensionMismatchError,
    DuplicateRouteError,
    IndexNotBuiltError,
    InvalidQueryError,
    Route,
    RouteNotFoundError,
    Router,
    RouterConfig,
    RouteValidationError,
    StrataRouterError,
)
from stratarouter_core.testing import HashingEncoder

ROUTES = [
    Route(name="billing", examples=["refund my invoice", "I was charged twice"]),
    Route(name="weather", examples=["will it rain today", "weather forecast for tomorrow"]),
]


@pytest.fixture
def router() -> Router:
    r = Router(encoder=HashingEncoder(dimension=64), config=RouterConfig(threshold=0.1))
    r.add_routes(ROUTES)
    r.build_index()
    return r


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_rejected(router: Router, query: str) -> None:
    with pytest.raises(InvalidQueryError, match="empty"):
        router.route(query)


@pytest.mark.parametrize("query", [None, 42, b"bytes", ["list"]])
def test_non_string_query_is_rejected(router: Router, query: object) -> None:
    with pytest.raises(InvalidQueryError, match="must be a str"):
        router.route(query)  # type: ignore[arg-type]


def test_wrong_dimension_names_both_dimensions(router: Router) -> None:
    with pytest.raises(DimensionMismatchError, match="dimension 10.*has 64"):
        router.route("refund", embedding=np.ones(10))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_embedding_is_rejected(router: Router, bad: float) -> None:
    vector = np.ones(64)
    vector[3] = bad
    with pytest.raises(InvalidQueryError, match="NaN or infinite"):
        router.route("refund", embedding=vector)


def test_zero_norm_embedding_is_rejected(router: Router) -> None:
    with pytest.raises(InvalidQueryError, match="zero norm"):
        router.route("refund", embedding=np.zeros(64))


def test_batch_with_mismatched_embeddings_is_rejected(router: Router) -> None:
    with pytest.raises(InvalidQueryError, match="2 queries but 1 embeddings"):
        router.route_batch(["a b", "c d"], embeddings=np.ones((1, 64)))
    with pytest.raises(InvalidQueryError, match="not one string"):
        router.route_batch("refund my invoice")  # type: ignore[arg-type]


def test_duplicate_route_names_are_rejected_without_losing_routes(router: Router) -> None:
    with pytest.raises(DuplicateRouteError, match="billing"):
        router.add_routes([Route(name="billing", examples=["again"])])
    with pytest.raises(DuplicateRouteError, match="news"):
        router.add_routes([Route(name="news", examples=["a"]), Route(name="news", examples=["b"])])
    assert router.route_names == ("billing", "weather")
    assert router.route("refund my invoice").route_id == "billing"


def test_route_without_examples_or_description_is_rejected() -> None:
    with pytest.raises(RouteValidationError, match="no examples and no description"):
        Route(name="empty")
    assert Route(name="described", description="payments").utterances == ("payments",)


def test_invalid_regex_names_route_and_pattern() -> None:
    with pytest.raises(RouteValidationError, match=r"route 'bad'.*invalid regex '\(unclosed'"):
        Route(name="bad", examples=["x"], patterns=["(unclosed"])


@pytest.mark.parametrize(
    "kwargs", [{"examples": "a string"}, {"keywords": [1]}, {"threshold": 1.5}]
)
def test_malformed_route_fields_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(RouteValidationError):
        Route(name="r", **({"examples": ["x"]} | kwargs))  # type: ignore[arg-type]


def test_routing_before_build_index_is_an_error() -> None:
    r = Router(encoder=HashingEncoder(dimension=64), routes=ROUTES)
    with pytest.raises(IndexNotBuiltError, match="build_index"):
        r.route("refund")


def test_adding_routes_requires_a_rebuild(router: Router) -> None:
    router.add_route(Route(name="news", examples=["latest headlines"]))
    with pytest.raises(IndexNotBuiltError, match="routes changed"):
        router.route("headlines")
    router.build_index()
    assert router.route("latest headlines today").route_id == "news"


def test_unknown_route_lookup(router: Router) -> None:
    with pytest.raises(RouteNotFoundError, match="unknown route 'nope'.*billing, weather"):
        router.get_route("nope")
    with pytest.raises(KeyError):
        router.remove_route("nope")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": 2}, "threshold must be in"),
        ({"threshold": float("nan")}, "threshold must be a number"),
        ({"top_k": 0}, "top_k must be an integer"),
        ({"fallback_route": "  "}, "fallback_route"),
        ({"weights": {"dense": -1}}, "FusionWeights.dense"),
        ({"weights": {"dense": 0, "sparse": 0, "rule": 0}}, "at least one weight"),
        ({"index": {"hnsw_m": 1}}, "hnsw_m"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RouterConfig(**kwargs)  # type: ignore[arg-type]


def test_config_round_trip_and_unknown_keys() -> None:
    config = RouterConfig(
        threshold=0.3, fallback_route="human", weights={"dense": 1, "sparse": 0, "rule": 0}
    )  # type: ignore[arg-type]
    assert RouterConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown config field.*tresh"):
        RouterConfig.from_dict({"tresh": 0.3})


def test_every_error_shares_the_root() -> None:
    for error in (
        ConfigError,
        InvalidQueryError,
        DimensionMismatchError,
        IndexNotBuiltError,
        RouteNotFoundError,
        DuplicateRouteError,
    ):
        assert issubclass(error, StrataRouterError)
