"""Save/load keeps every decision, needs no re-encoding, and refuses another encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stratarouter_core import PersistenceError, Route, Router, RouterConfig
from stratarouter_core.testing import HashingEncoder

ROUTES = [
    Route(
        name="billing",
        examples=["refund my invoice", "I was charged twice"],
        keywords=["invoice"],
        metadata={"model": "gpt-4o-mini"},
        threshold=0.2,
    ),
    Route(
        name="weather", examples=["will it rain today", "weather forecast"], patterns=[r"\bstorm\b"]
    ),
    Route(name="sports", description="match results and scores of football and tennis"),
]
QUERIES = ["refund please", "rain tomorrow?", "storm warning", "football results", "cake recipe"]


class CountingEncoder(HashingEncoder):
    def __init__(self) -> None:
        super().__init__(dimension=64)
        self.texts = 0

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.texts += len(texts)
        return super().encode(texts)


def build() -> Router:
    r = Router(
        encoder=HashingEncoder(dimension=64),
        config=RouterConfig(threshold=0.1, fallback_route="human"),
    )
    r.add_routes(ROUTES)
    r.build_index()
    return r


def test_round_trip_gives_identical_decisions_without_reencoding(tmp_path: Path) -> None:
    router = build()
    router.save(tmp_path / "r")
    encoder = CountingEncoder()
    loaded = Router.load(tmp_path / "r", encoder=encoder)
    assert encoder.texts == 0
    assert loaded.routes == router.routes and loaded.config == router.config
    vectors = HashingEncoder(dimension=64).encode(QUERIES)
    for query, vector in zip(QUERIES, vectors):
        a, b = loaded.route(query, vector), router.route(query, vector)
        assert (a.route_id, a.candidates) == (b.route_id, b.candidates)


def test_fitted_model_survives_round_trip(tmp_path: Path) -> None:
    router = build()
    queries = [
        "refund my money",
        "charged twice again",
        "is it raining",
        "storm tonight",
        "who won the match",
        "tennis scores",
        "bake a cake",
        "quantum physics",
    ] * 3
    labels = ["billing", "billing", "weather", "weather", "sports", "sports", None, None] * 3
    router.fit(queries, labels, learn_head=True, folds=2)
    router.save(tmp_path / "fitted")
    loaded = Router.load(tmp_path / "fitted", encoder=HashingEncoder(dimension=64))
    assert loaded.model.is_fitted and loaded.model.head is not None
    for query in QUERIES:
        a, b = loaded.route(query), router.route(query)
        assert (a.route_id, a.candidates) == (b.route_id, b.candidates)


def test_directory_format_is_documented_and_versioned(tmp_path: Path) -> None:
    build().save(tmp_path / "r")
    manifest = json.loads((tmp_path / "r" / "router.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["encoder"]["dimension"] == 64 and manifest["encoder"]["fingerprint"]
    arrays = np.load(tmp_path / "r" / "arrays.npz")
    assert arrays["utterance_vectors"].shape == (5, 64)


def test_other_encoder_is_refused(tmp_path: Path) -> None:
    build().save(tmp_path / "r")
    with pytest.raises(PersistenceError, match="encoder mismatch"):
        Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=32))
    with pytest.raises(PersistenceError, match="pass an equivalent encoder"):
        Router.load(tmp_path / "r")


def test_other_format_version_and_missing_dir_are_clear(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match="no saved router"):
        Router.load(tmp_path / "absent", encoder=HashingEncoder(dimension=64))
    build().save(tmp_path / "r")
    manifest_path = tmp_path / "r" / "router.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(PersistenceError, match="format version 99"):
        Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))


def test_saving_over_an_existing_router_replaces_it_whole(tmp_path: Path) -> None:
    first = build()
    first.save(tmp_path / "r")
    second = build()
    second.add_route(Route(name="news", examples=["headlines"]))
    second.build_index()
    second.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))
    assert loaded.route_names == ("billing", "weather", "sports", "news")
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no staging leftovers
