"""Out of the box: calibrated confidence and a default threshold from the route examples alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.calibration import SigmoidCalibrator
from stratarouter_core.errors import EmptyRouterError, InfeasibleTargetError
from stratarouter_core.fitting import choose_threshold
from stratarouter_core.pipeline import features, score_parts
from stratarouter_core.testing import HashingEncoder

POLITICS = Route(
    name="politics",
    examples=[
        "isn't politics the best thing ever",
        "why don't you tell me about your political opinions",
        "don't you just love the president",
        "they're going to destroy this country!",
        "they will save the country!",
    ],
)
CHITCHAT = Route(
    name="chitchat",
    examples=[
        "how's the weather today?",
        "how are things going?",
        "lovely weather today",
        "the weather is horrendous",
        "let's go to the chippy",
    ],
)
SUPPORT = [
    Route(name="billing", examples=["refund my invoice", "I was charged twice", "update my card"]),
    Route(name="tech", examples=["the app crashes on start", "error when I log in", "page is blank"]),
    Route(name="weather", examples=["will it rain today", "weather forecast tomorrow", "is it sunny"]),
]


def hashing_router(routes: list[Route], **config: object) -> Router:
    router = Router(encoder=HashingEncoder(), config=RouterConfig(**config), routes=routes)  # type: ignore[arg-type]
    router.build_index()
    return router


def test_build_index_learns_a_confidence_map_and_threshold_from_examples() -> None:
    router = hashing_router(SUPPORT)
    metadata = router.model.metadata
    assert metadata["calibrated_from"] == "routes"
    assert router.model.confidence_model is not None
    report = metadata["self_calibration"]
    assert report["in_scope_samples"] == 9 and report["out_of_scope_samples"] == 9
    assert 0.0 < router.threshold < 1.0 and router.threshold == metadata["threshold"]
    # Few samples: the logistic map itself, never an exact 0 or 1.
    assert isinstance(router.model.confidence_model.calibrator, SigmoidCalibrator)
    confidences = [c.confidence for c in router.route("refund my invoice").candidates]
    assert all(0.0 < c < 1.0 for c in confidences)


def test_in_scope_queries_pass_and_nonsense_is_rejected(local_encoder: object) -> None:
    router = Router(encoder=local_encoder, routes=[POLITICS, CHITCHAT])  # type: ignore[arg-type]
    router.build_index()
    weather = router.route("how's the weather today?")
    assert weather.route_id == "chitchat" and weather.confidence > 0.5
    assert router.route("don't you love politics?").route_id == "politics"
    for nonsense in ("my", "what is the boiling point of mercury in kelvin"):
        result = router.route(nonsense)
        assert result.route_id is None and result.confidence < 0.5


def test_confidence_is_monotone_in_the_fused_score() -> None:
    router = hashing_router(SUPPORT)
    for query in ("refund the invoice", "app error", "rain", "purple elephant", "charged twice"):
        candidates = router.route(query).candidates
        scores = [c.score for c in candidates]
        confidences = [c.confidence for c in candidates]
        assert scores == sorted(scores, reverse=True)
        assert confidences == sorted(confidences, reverse=True)


def test_adding_or_removing_a_route_recalibrates() -> None:
    router = hashing_router(SUPPORT)
    before = router.model.metadata["self_calibration"]
    router.add_route(Route(name="sports", examples=["who won the match", "football scores"]))
    router.build_index()
    added = router.model.metadata["self_calibration"]
    assert added["in_scope_samples"] == before["in_scope_samples"] + 2
    router.remove_route("sports")
    router.build_index()
    assert router.model.metadata["self_calibration"] == before


def test_changed_examples_recalibrate_even_with_the_same_names() -> None:
    router = hashing_router(SUPPORT)
    before = router.model.metadata["self_calibration"]
    router.remove_route("weather")
    router.add_route(Route(name="weather", examples=["rain", "snow", "sun", "storm tonight"]))
    router.build_index()
    assert router.model.metadata["self_calibration"] != before


def test_save_and_load_keep_the_calibration_without_reencoding(tmp_path: Path) -> None:
    router = hashing_router(SUPPORT)
    router.save(tmp_path / "saved")
    encoder = HashingEncoder()
    calls: list[int] = []
    original = encoder.encode
    encoder.encode = lambda texts: calls.append(len(texts)) or original(texts)  # type: ignore[method-assign]
    loaded = Router.load(tmp_path / "saved", encoder=encoder)
    assert calls == []
    assert loaded.threshold == router.threshold
    assert loaded.model.metadata == router.model.metadata
    for query in ("refund my invoice", "nonsense words"):
        assert loaded.route(query).confidence == pytest.approx(router.route(query).confidence)


def test_an_explicit_threshold_always_wins() -> None:
    router = hashing_router(SUPPORT, threshold=0.9)
    assert router.threshold == 0.9
    assert router.model.metadata["threshold"] != 0.9  # calibration still ran underneath
    router.set_threshold(0.3)
    assert router.threshold == 0.3


def test_fit_overrides_the_self_calibration_and_is_kept_on_rebuild() -> None:
    router = hashing_router(SUPPORT)
    queries = ["refund please", "charged two times", "app crashed", "log in error", "rain today",
               "sunny tomorrow", "purple elephant", "quantum soup"] * 8
    labels = ["billing", "billing", "tech", "tech", "weather", "weather", None, None] * 8
    router.fit(queries, labels, learn_head=False)
    assert router.model.metadata["calibrated_from"] == "labelled queries"
    router.build_index()  # same route names: the fitted model stays
    assert router.model.metadata["calibrated_from"] == "labelled queries"


def test_fit_keeps_configured_weights_and_rejects_infeasible_targets() -> None:
    router = hashing_router(SUPPORT, weights={"dense": 1.0, "sparse": 0.5, "rule": 0.0})
    queries = ["refund please", "app crashed", "rain today", "purple elephant"] * 16
    labels = ["billing", "tech", "weather", None] * 16
    report = router.fit(queries, labels, learn_head=False)
    weights = np.array([report.weights[k] for k in ("dense", "sparse", "sparse_rel", "rule")])
    np.testing.assert_allclose(weights / weights[0], [1.0, 0.5, 0.0, 0.0], atol=1e-9)


def test_an_unreachable_target_is_an_error_not_a_threshold_of_one() -> None:
    # The most confident decision is wrong: no threshold accepting anything has precision 0.99.
    confidence = np.array([0.9, 0.8, 0.7, 0.2])
    correct = np.array([0.0, 1.0, 1.0, 0.0])
    oos = np.array([False, False, False, True])
    weights = np.ones(4)
    with pytest.raises(InfeasibleTargetError, match=r"precision 0.99.*best reachable: 0.667"):
        choose_threshold(confidence, correct, oos, weights, "precision", 0.99)
    assert choose_threshold(confidence, correct, oos, weights, "precision", 0.6) == 0.7


def test_too_few_labelled_queries_warn() -> None:
    router = hashing_router(SUPPORT)
    with pytest.warns(UserWarning, match="held-out queries calibrate"):
        router.fit(["refund please", "app crashed", "rain", "nonsense"], ["billing", "tech", "weather", None],
                   learn_head=False)


def test_nothing_to_learn_from_keeps_the_documented_default() -> None:
    one_route = hashing_router([Route(name="billing", examples=["refund"])])
    assert "calibrated_from" not in one_route.model.metadata and one_route.threshold == 0.5
    result = one_route.route("refund")
    assert result.route_id == "billing" and result.candidates[0].dense == pytest.approx(1.0)
    singletons = hashing_router([Route(name="a", examples=["refund"]), Route(name="b", description="weather")])
    assert singletons.threshold == 0.5 and singletons.route("refund").route_id == "a"


def test_build_index_without_routes_is_a_clear_error() -> None:
    with pytest.raises(EmptyRouterError, match="no routes"):
        Router(encoder=HashingEncoder()).build_index()


def test_explain_adds_up() -> None:
    router = hashing_router(SUPPORT)
    queries = ["refund please", "app crashed", "rain today", "purple elephant"] * 16
    labels = ["billing", "tech", "weather", None] * 16
    router.fit(queries, labels)  # with a head and learned weights
    text = router.explain("refund the invoice")
    rows = [line.split() for line in text.splitlines()[4:-1]]
    weights = router.model.weights
    for row in rows:
        score, parts = float(row[2]), np.array([float(v) for v in row[3:]])
        assert score == pytest.approx(float(parts @ weights), abs=5e-3 * max(1.0, abs(score)))
    state = router.state
    vector = router.encode(["refund the invoice"])
    exact = features(state, vector, score_parts(state, ["refund the invoice"], vector), state.model.head)
    np.testing.assert_allclose(
        router.model.fuse(exact).max(), router.route("refund the invoice").candidates[0].score, rtol=1e-5
    )


def test_readme_usage_routes_right_with_defaults(local_encoder: object) -> None:
    router = Router(encoder=local_encoder, config=RouterConfig(fallback_route="human"))  # type: ignore[arg-type]
    router.add_routes([
        Route(name="billing", examples=["I was charged twice", "refund my invoice"],
              description="Payments, invoices and refunds", keywords=["invoice", "refund"],
              patterns=[r"\binvoice\s*#?\d+"], metadata={"model": "gpt-4o-mini"}),
        Route(name="tech_support", examples=["the app crashes on start", "error 500 when I log in"]),
    ])
    router.build_index()
    result = router.route("why was my card charged two times?")
    assert result.route_id == "billing" and result.confidence > 0.8
    assert router.route("I was charged twice").route_id == "billing"
    assert router.route("please refund invoice #4471").route_id == "billing"
    assert router.route("what is the capital of France").route_id == "human"
    # Ten calibration samples: never more sure than Laplace's (n + 1) / (n + 2) allows.
    assert result.confidence <= 11 / 12 + 1e-9


def test_one_example_route_accepts_its_own_example() -> None:
    router = hashing_router([Route(name="billing", examples=["refund"])])
    result = router.route("refund")
    assert result.route_id == "billing" and result.confidence >= 0.64
