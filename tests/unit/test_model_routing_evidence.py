"""The graded-neighbour update: its formula, when cross-validation keeps it, and what a router
does with a repeat of a graded query."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from stratarouter_core import ConfigError, ModelRouter, ModelRouterConfig, ModelSpec
from stratarouter_core.model_routing.evidence import (
    EvidenceFit,
    GradedIndex,
    GradedNeighbours,
    fit_graded_neighbours,
)
from stratarouter_core.testing import HashingEncoder

CHEAP = ModelSpec("cheap", input_usd_per_mtok=0.1, output_usd_per_mtok=0.1)
DEAR = ModelSpec("dear", input_usd_per_mtok=1.0, output_usd_per_mtok=1.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _update(index: GradedIndex, stage: GradedNeighbours, p: np.ndarray, queries) -> np.ndarray:
    """The update of a batch, searched as the predictor searches it."""
    return stage.update(p, *index.search(queries, stage.neighbours))


def test_a_repeat_counts_as_one_graded_answer_and_far_queries_as_almost_none() -> None:
    vectors = np.eye(4, dtype=np.float32)  # orthogonal: cosine 0 between different queries
    grades = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    graded = np.ones_like(grades)
    graded[0, 1] = 0.0  # query 0 was never graded on model 1
    index = GradedIndex(
        vectors,
        centroids=np.full((1, 4), 0.5, dtype=np.float32),  # one cluster holding all four
        starts=np.array([0, 4]),
        probe=1,
    )
    stage = GradedNeighbours(grades * graded, graded, neighbours=4, temperature=0.05, strength=2.0)
    prior = np.array([[0.5, 0.5], [0.5, 0.5]])
    far = np.exp(-1.0 / 0.05)  # weight of a neighbour at cosine 0
    got = _update(index, stage, prior, vectors[:2])
    expected_0 = (2.0 * 0.5 + 1.0 + far * (0.0 + 1.0 + 0.0)) / (2.0 + 1.0 + 3 * far)
    expected_1 = (2.0 * 0.5 + far * (1.0 + 1.0 + 0.0)) / (2.0 + 3 * far)  # no own grade
    np.testing.assert_allclose(got[0], [expected_0, expected_1], rtol=1e-6)
    rows, sims = index.search_one(vectors[0], 4)
    np.testing.assert_allclose(stage.update_one(prior[0], rows, sims), got[0], rtol=1e-6)
    assert sims.max() == pytest.approx(1.0)  # the query itself is graded
    # a query between two graded right on model 0 takes both, each weighted by its similarity
    between = _unit(np.array([[1.0, 0.0, 1.0, 0.0]], dtype=np.float32))
    mixed = _update(index, stage, prior[:1], between)[0, 0]
    assert 0.5 < mixed < expected_0
    assert index.search(between, 1)[1][0, 0] == pytest.approx(np.sqrt(0.5))


def _repeats(n_groups: int, per_group: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Near copies of each group's query (cosine ~0.99) share the group's grade pattern."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(n_groups, 32)))
    x = _unit(
        np.repeat(centres, per_group, axis=0) + 0.02 * rng.normal(size=(n_groups * per_group, 32))
    )
    pattern = (rng.random((n_groups, 2)) < 0.5).astype(float)
    return x, np.repeat(pattern, per_group, axis=0)


def _fit(
    x: np.ndarray,
    grades: np.ndarray,
    folds: np.ndarray,
    *,
    probe: int = 8,
    temperatures: tuple[float, ...] = (0.1,),
    strengths: tuple[float, ...] = (2.0,),
) -> EvidenceFit:
    """Every query graded, from a prior that learned nothing (0.5)."""
    return fit_graded_neighbours(
        x,
        grades,
        np.ones_like(grades, dtype=bool),
        folds,
        np.full_like(grades, 0.5),
        neighbours=20,
        probe=probe,
        temperatures=temperatures,
        strengths=strengths,
        seed=0,
    )


def test_cross_validation_keeps_the_update_where_neighbours_know_the_answer() -> None:
    x, grades = _repeats(200, 3, seed=0)
    folds = np.random.default_rng(1).permutation(len(x)) % 5
    fit = _fit(x, grades, folds, temperatures=(0.03, 0.1), strengths=(0.5, 2.0))
    assert fit.stage is not None
    assert fit.cv_brier < 0.5 * fit.cv_brier_prior  # the copies in other folds answer it


def test_the_clustered_search_finds_the_exact_neighbours_and_batch_equals_one() -> None:
    x, grades = _repeats(200, 3, seed=4)
    folds = np.random.default_rng(5).permutation(len(x)) % 5
    fit = _fit(x, grades, folds, probe=4)
    stage, index = fit.stage, fit.index
    assert stage is not None and index is not None
    assert len(index.centroids) == round(np.sqrt(len(x)))
    assert index.starts[0] == 0 and index.starts[-1] == len(x)
    queries = _unit(x[:50] + 0.01 * np.random.default_rng(6).normal(size=(50, 32)))
    prior = np.full((50, 2), 0.5)
    batch = _update(index, stage, prior, queries)
    one = np.array(
        [stage.update_one(prior[i], *index.search_one(queries[i], 20)) for i in range(50)]
    )
    np.testing.assert_allclose(batch, one, rtol=1e-5)
    # probing every cluster is an exact search: same answers as a brute-force top 20
    everything = dataclasses.replace(index, probe=len(index.centroids))
    sims = queries @ index.vectors.T
    top = np.argsort(-sims, axis=1)[:, :20]
    w = np.exp((np.take_along_axis(sims, top, axis=1) - 1.0) / 0.1)
    exact = (2.0 * prior + np.einsum("nk,nkm->nm", w, stage.grades[top])) / (
        2.0 + np.einsum("nk,nkm->nm", w, stage.graded[top])
    )
    np.testing.assert_allclose(_update(everything, stage, prior, queries), exact, rtol=1e-5)
    np.testing.assert_allclose(everything.search(queries, 1)[1][:, 0], sims.max(axis=1), rtol=1e-6)
    # the probed search misses little: the copies sit in the query's nearest clusters
    np.testing.assert_allclose(batch, exact, atol=0.02)


def test_cross_validation_leaves_the_update_out_when_neighbours_are_noise() -> None:
    rng = np.random.default_rng(2)
    x = _unit(rng.normal(size=(600, 32)))
    grades = (rng.random((600, 2)) < 0.5).astype(float)  # grades unrelated to the query
    folds = rng.permutation(600) % 5
    fit = _fit(x, grades, folds, temperatures=(0.03, 0.1), strengths=(2.0, 8.0))
    assert fit.stage is None and fit.cv_brier == fit.cv_brier_prior
    np.testing.assert_array_equal(fit.cv_p_success, np.full_like(grades, 0.5))


@pytest.fixture(scope="module")
def repeat_router() -> tuple[ModelRouter, np.ndarray, np.ndarray, list[str]]:
    x, grades = _repeats(150, 4, seed=3)
    queries = [f"q{i}" for i in range(len(x))]
    scores = [{"cheap": float(a), "dear": float(b)} for a, b in grades]
    # the texts are the training texts: the graded-repeat stage (tested on its own) would
    # answer them from their grades and hide what the neighbour update does
    router = ModelRouter(
        [CHEAP, DEAR],
        encoder=HashingEncoder(dimension=32),
        config=ModelRouterConfig(repeat_reliability=None),
    )
    router.fit(queries, scores, x.astype(np.float32))
    return router, x.astype(np.float32), grades, queries


def test_router_answers_a_repeat_from_its_grades_and_saves_the_stage(
    repeat_router, tmp_path
) -> None:
    router, x, grades, queries = repeat_router
    assert router.report.hyperparameters["evidence_temperature"] is not None
    p = router.predict_proba(queries, x)
    # the stacked predictor alone cannot tell 150 random groups apart; the update can
    assert np.mean((p > 0.5) == (grades > 0.5)) > 0.95
    choice = router.route(queries[0], x[0], cost_weight=0.5)
    assert choice.model == (
        "cheap" if grades[0, 0] == 1.0 else "dear" if grades[0, 1] else choice.model
    )
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr", encoder=HashingEncoder(dimension=32))
    np.testing.assert_array_equal(loaded.predict_proba(queries, x), p)


def test_turning_the_update_off_and_loading_a_save_made_before_it(repeat_router, tmp_path) -> None:
    _, x, grades, queries = repeat_router
    off = ModelRouter(
        [CHEAP, DEAR],
        encoder=HashingEncoder(dimension=32),
        config=ModelRouterConfig(evidence_neighbours=0, repeat_reliability=None),
    )
    off.fit(queries, [{"cheap": float(a), "dear": float(b)} for a, b in grades], x)
    assert off.report.hyperparameters["evidence_temperature"] is None
    without = off.predict_proba(queries, x)
    assert np.mean((without > 0.5) == (grades > 0.5)) < 0.9
    # a save from before the stage existed has no "evidence" entry: it loads without it
    off.save(tmp_path / "old")
    manifest = tmp_path / "old" / "model_router.json"
    data = json.loads(manifest.read_text())
    del data["predictor"]["evidence"]
    del data["predictor"]["repeats"]
    for key in (
        "evidence_neighbours",
        "evidence_temperatures",
        "evidence_strengths",
        "repeat_reliability",
        "repeat_reliabilities",
        "repeat_min_queries",
    ):
        del data["config"][key]
    manifest.write_text(json.dumps(data))
    loaded = ModelRouter.load(tmp_path / "old", encoder=HashingEncoder(dimension=32))
    np.testing.assert_array_equal(loaded.predict_proba(queries, x), without)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"evidence_neighbours": -1},
        {"evidence_temperatures": ()},
        {"evidence_temperatures": (0.001,)},
        {"evidence_strengths": (0.0,)},
        {"evidence_probe": 0},
    ],
)
def test_bad_evidence_settings_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError, match="evidence_"):
        ModelRouterConfig(**kwargs)


def test_large_batches_are_updated_in_bounded_steps(monkeypatch) -> None:
    from stratarouter_core.model_routing import kmeans

    x, grades = _repeats(100, 3, seed=7)
    fit = _fit(x, grades, np.arange(len(x)) % 5, probe=100)  # every cluster probed
    assert fit.stage is not None and fit.index is not None
    prior = np.full_like(grades, 0.5)
    whole = _update(fit.index, fit.stage, prior, x)
    monkeypatch.setattr(kmeans, "_PRODUCT_FLOATS", 1)  # one query per product
    # float32 products of one row and of many take different BLAS paths
    np.testing.assert_allclose(_update(fit.index, fit.stage, prior, x), whole, rtol=1e-5, atol=1e-7)


def test_cross_validated_search_memory_grows_with_n_not_n_squared() -> None:
    import tracemalloc

    rng = np.random.default_rng(8)
    x = _unit(rng.normal(size=(20_000, 32)))
    grades = (rng.random((20_000, 2)) < 0.5).astype(float)
    folds = np.arange(len(x)) % 5
    tracemalloc.start()
    try:
        _fit(x, grades, folds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one (held-out x other folds) product per fold would be 4,000 x 16,000 floats (256 MB)
    assert peak < 64 * 2**20
