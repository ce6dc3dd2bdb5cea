"""How near a query is to the graded data: `ModelChoice.nearest_graded_similarity`, the report's
scale of it, and `min_graded_similarity`, which keeps a query unlike every graded one away from
the rule (its p_success there is the predictor's extrapolation)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stratarouter_core import ConfigError, ModelRouter, ModelRouterConfig, ModelSpec
from stratarouter_core.testing import HashingEncoder

CHEAP = ModelSpec("cheap", input_usd_per_mtok=0.1, output_usd_per_mtok=0.1)
DEAR = ModelSpec("dear", input_usd_per_mtok=1.0, output_usd_per_mtok=1.0)
DIM = 32


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _graded(seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, float]]]:
    """Two regions, in the first 8 dimensions only: hard (only the dear model succeeds) and
    easy (both do). Mean grades: dear 1.0, cheap 0.5."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, DIM))
    centres[0, 0] = centres[1, 1] = 1.0
    x = np.repeat(centres, 100, axis=0)
    x[:, :8] += 0.25 * rng.normal(size=(200, 8))
    scores = [{"cheap": 0.0, "dear": 1.0}] * 100 + [{"cheap": 1.0, "dear": 1.0}] * 100
    return [f"graded {i}" for i in range(200)], _unit(x), scores


def _router(**config: object) -> ModelRouter:
    queries, x, scores = _graded()
    router = ModelRouter(
        [CHEAP, DEAR], encoder=HashingEncoder(dimension=DIM), config=ModelRouterConfig(**config)
    )
    router.fit(queries, scores, x)
    return router


@pytest.fixture(scope="module")
def router() -> ModelRouter:
    return _router()


def _far() -> np.ndarray:
    """A query in dimensions no graded query uses: cosine 0 to all of them."""
    return _unit(np.eye(DIM)[None, 20])[0]


def test_the_similarity_is_the_cosine_of_the_nearest_graded_query(router) -> None:
    _, x, _ = _graded()
    rng = np.random.default_rng(1)
    near = _unit(x[:20] + 0.05 * rng.normal(size=(20, DIM)))
    queries = [f"new {i}" for i in range(20)]
    exact = (near @ x.T).max(axis=1)
    routed = [router.route(q, v).nearest_graded_similarity for q, v in zip(queries, near)]
    np.testing.assert_allclose(routed, exact, rtol=1e-5)
    batch = router.route_batch(queries, near)
    np.testing.assert_allclose([c.nearest_graded_similarity for c in batch], exact, rtol=1e-5)
    assert router.route("graded 3", x[3]).nearest_graded_similarity == pytest.approx(1.0)
    assert router.route("far", _far()).nearest_graded_similarity == pytest.approx(0.0, abs=1e-6)


def test_the_report_gives_the_training_data_scale(router) -> None:
    scale = router.report.nearest_graded_similarity
    assert list(scale) == ["p1", "p5", "p25", "p50"]
    values = list(scale.values())
    assert values == sorted(values)
    # out-of-fold: a training query is not its own neighbour, yet its region is dense
    assert 0.5 < values[0] < values[-1] < 0.999


def test_by_default_every_query_is_routed_by_the_rule(router) -> None:
    choice = router.route("far", _far(), cost_weight=10.0)
    assert choice.rule == "cost_weight" and not choice.fallback


def test_an_unfamiliar_query_goes_to_the_best_model_on_the_graded_data(router) -> None:
    # the rule alone would take the cheap model (cost counts ten times p_success)
    assert router.route("far", _far(), cost_weight=10.0).model == "cheap"
    choice = router.route("far", _far(), cost_weight=10.0, min_graded_similarity=0.5)
    assert (choice.model, choice.rule, choice.fallback) == ("dear", "min_graded_similarity", True)
    assert [a.model for a in choice.alternatives] == ["cheap"]
    # a familiar query is still decided by the rule
    _, x, _ = _graded()
    easy = router.route("easy one", x[150], min_quality=0.8, min_graded_similarity=0.5)
    assert (easy.model, easy.rule, easy.fallback) == ("cheap", "min_quality", False)
    # within max_cost, the best model the budget allows
    budget = 0.5 * choice.expected_costs_usd["dear"]
    capped = router.route("far", _far(), max_cost=budget, min_graded_similarity=0.5)
    assert (capped.model, capped.fallback) == ("cheap", True)
    # -1 turns it off for one call; the batch decides the same way
    assert router.route("far", _far(), cost_weight=10.0, min_graded_similarity=-1.0).model == (
        "cheap"
    )
    batch = router.route_batch(
        ["far", "easy one"], np.stack([_far(), x[150]]), min_quality=0.8, min_graded_similarity=0.5
    )
    assert [(c.model, c.rule) for c in batch] == [
        ("dear", "min_graded_similarity"),
        ("cheap", "min_quality"),
    ]


def test_the_config_sets_the_floor_and_the_fallback_model() -> None:
    router = _router(min_graded_similarity=0.5, fallback_model="cheap")
    choice = router.route("far", _far(), min_quality=0.8)
    assert (choice.model, choice.rule, choice.fallback) == ("cheap", "min_graded_similarity", True)


def test_without_the_neighbour_update_the_similarity_is_still_reported() -> None:
    router = _router(evidence_neighbours=0)
    assert router.report.hyperparameters["evidence_temperature"] is None
    _, x, _ = _graded()
    assert router.route("graded 3", x[3]).nearest_graded_similarity == pytest.approx(1.0)
    assert router.report.nearest_graded_similarity is not None


@pytest.mark.parametrize("bad", [1.5, -2.0, float("nan"), "0.5", True])
def test_a_floor_that_is_not_a_cosine_is_a_config_error(router, bad) -> None:
    with pytest.raises(ConfigError, match="min_graded_similarity"):
        ModelRouterConfig(min_graded_similarity=bad)
    with pytest.raises(ConfigError, match="min_graded_similarity"):
        router.route("far", _far(), min_graded_similarity=bad)


def test_save_load_keeps_the_index_and_the_mean_grades(router, tmp_path) -> None:
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr", encoder=HashingEncoder(dimension=DIM))
    for r in (router, loaded):
        choice = r.route("far", _far(), cost_weight=10.0, min_graded_similarity=0.5)
        assert choice.model == "dear" and choice.nearest_graded_similarity is not None
    assert loaded.report.nearest_graded_similarity == router.report.nearest_graded_similarity


def _rewrite(path, predictor_edit, drop_arrays) -> None:
    manifest = path / "model_router.json"
    data = json.loads(manifest.read_text())
    predictor_edit(data["predictor"])
    del data["report"]["nearest_graded_similarity"]
    del data["config"]["min_graded_similarity"]
    manifest.write_text(json.dumps(data))
    with np.load(path / "arrays.npz") as arrays:
        kept = {k: arrays[k] for k in arrays.files if k not in drop_arrays}
    np.savez(path / "arrays.npz", **kept)


def _neighbour_router() -> tuple[ModelRouter, np.ndarray]:
    """Near copies of 150 queries share a random grade pattern: only the neighbour update can
    learn it, so cross-validation keeps the update."""
    rng = np.random.default_rng(3)
    x = _unit(
        np.repeat(rng.normal(size=(150, DIM)), 4, axis=0) + 0.02 * rng.normal(size=(600, DIM))
    )
    pattern = np.repeat(rng.random((150, 2)) < 0.5, 4, axis=0).astype(float)
    router = ModelRouter(
        [CHEAP, DEAR],
        encoder=HashingEncoder(dimension=DIM),
        config=ModelRouterConfig(repeat_reliability=None),
    )
    router.fit([f"q{i}" for i in range(600)], [{"cheap": a, "dear": b} for a, b in pattern], x)
    return router, x


def test_a_save_from_before_the_index_was_kept_apart_loads(tmp_path) -> None:
    router, x = _neighbour_router()
    assert router.report.hyperparameters["evidence_temperature"] is not None
    router.save(tmp_path / "old")

    def index_inside_the_update(predictor: dict) -> None:
        predictor["evidence"]["probe"] = predictor.pop("index")["probe"]

    _rewrite(tmp_path / "old", index_inside_the_update, {"mean_grades"})
    loaded = ModelRouter.load(tmp_path / "old", encoder=HashingEncoder(dimension=DIM))
    assert loaded.route("q3", x[3]).nearest_graded_similarity == pytest.approx(1.0)
    queries = [f"q{i}" for i in range(600)]
    np.testing.assert_array_equal(
        loaded.predict_proba(queries, x), router.predict_proba(queries, x)
    )
    # no mean grades saved: an unfamiliar query takes the highest p_success instead
    choice = loaded.route("far", _far(), cost_weight=10.0, min_graded_similarity=0.9)
    p = choice.p_success
    assert choice.fallback and choice.model == max(p, key=lambda m: p[m])


def test_a_save_with_no_index_reports_no_similarity_and_routes_by_the_rule(tmp_path) -> None:
    router = _router(evidence_neighbours=0)
    router.save(tmp_path / "older")

    def no_index(predictor: dict) -> None:
        del predictor["index"]

    index_arrays = {"evidence_vectors", "evidence_centroids", "evidence_starts", "mean_grades"}
    _rewrite(tmp_path / "older", no_index, index_arrays)
    loaded = ModelRouter.load(tmp_path / "older", encoder=HashingEncoder(dimension=DIM))
    choice = loaded.route("far", _far(), cost_weight=10.0, min_graded_similarity=0.5)
    assert choice.nearest_graded_similarity is None
    assert (choice.rule, choice.fallback) == ("cost_weight", False)
    assert loaded.report.nearest_graded_similarity is None


def test_copies_of_a_few_texts_leave_no_empty_cluster_to_probe() -> None:
    # k-means over 2,000 copies of two texts finds 45 centres, 43 of them with no member: an
    # index that kept them could probe only empty clusters and find no graded query at all
    router = ModelRouter([CHEAP, DEAR], encoder=HashingEncoder(dimension=DIM))
    queries = ["hello there"] * 1000 + ["goodbye now"] * 1000
    router.fit(queries, [{"cheap": float(i % 2), "dear": 1.0} for i in range(2000)])
    index = router._predictor.index
    assert len(index.centroids) == 2 and (np.diff(index.starts) > 0).all()
    for query in ("hello there", "goodbye now"):
        assert router.route(query).nearest_graded_similarity == pytest.approx(1.0)
    batch = router.route_batch(["hello there", "goodbye now"])
    assert [c.nearest_graded_similarity for c in batch] == pytest.approx([1.0, 1.0])
