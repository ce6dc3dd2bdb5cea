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
    with pytest.warns(UserWarning, match="held-out queries calibrate"):
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
    assert manifest["format_version"] == 2
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


def test_a_directory_holding_other_files_is_refused_not_deleted(tmp_path: Path) -> None:
    router = build()
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("keep me")
    with pytest.raises(PersistenceError, match=r"holds files a save did not write \(notes.txt\)"):
        router.save(project)
    assert (project / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["project"]  # no staging leftovers
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(PersistenceError, match="is a file"):
        router.save(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "not a directory"
    empty = tmp_path / "empty"
    empty.mkdir()
    router.save(empty)  # an empty directory is fine
    assert Router.load(empty, encoder=HashingEncoder(dimension=64)).route_names == (
        "billing",
        "weather",
        "sports",
    )


@pytest.mark.parametrize(
    "drop",
    ["encoder", "config", "routes", "model", "encoder.fingerprint", "encoder.class",
     "model.weights", "model.has_head", "model.metadata", "model.confidence_model"],
)
def test_incomplete_manifest_is_a_persistence_error_not_a_key_error(
    tmp_path: Path, drop: str
) -> None:
    build().save(tmp_path / "r")
    manifest_path = tmp_path / "r" / "router.json"
    manifest = json.loads(manifest_path.read_text())
    *parents, key = drop.split(".")
    holder = manifest
    for parent in parents:
        holder = holder[parent]
    del holder[key]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(PersistenceError, match=rf"router.json is incomplete: it has no '{drop}'") as info:
        Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))
    assert not isinstance(info.value, KeyError)


def test_wrong_kinds_and_missing_weights_are_persistence_errors(tmp_path: Path) -> None:
    build().save(tmp_path / "r")
    manifest_path = tmp_path / "r" / "router.json"
    original = json.loads(manifest_path.read_text())
    for edit, message in [
        (lambda m: m.update(routes={"a": 1}), r"'routes' must be a list, got dict"),
        (lambda m: m["model"].update(has_head="yes"), r"'model.has_head' must be a bool"),
        (lambda m: m["model"]["weights"].pop(next(iter(m["model"]["weights"]))),
         r"model.weights has no \["),
    ]:
        manifest = json.loads(json.dumps(original))
        edit(manifest)
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(PersistenceError, match=message):
            Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))
    manifest_path.write_text("[1, 2]")
    with pytest.raises(PersistenceError, match="JSON object"):
        Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))


def test_missing_or_incomplete_arrays_are_persistence_errors(tmp_path: Path) -> None:
    build().save(tmp_path / "r")
    arrays_path = tmp_path / "r" / "arrays.npz"
    with np.load(arrays_path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez(arrays_path, utterance_vectors=arrays["utterance_vectors"])
    with pytest.raises(PersistenceError, match=r"no \['utterance_owner'\] array"):
        Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))
    manifest_path = tmp_path / "r" / "router.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["has_head"] = True  # says fitted, but no head arrays were saved
    manifest_path.write_text(json.dumps(manifest))
    np.savez(arrays_path, **arrays)
    with pytest.raises(PersistenceError, match=r"no \['head_weights', 'head_bias'\]"):
        Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))
    arrays_path.unlink()
    with pytest.raises(PersistenceError, match="cannot read"):
        Router.load(tmp_path / "r", encoder=HashingEncoder(dimension=64))
