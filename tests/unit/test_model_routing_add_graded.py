"""`ModelRouter.add_graded`: grades learned after `fit`, without a refit, in the stages that look
graded queries up (graded repeats, the neighbour update and its index, the mean grades)."""

from __future__ import annotations

import numpy as np
import pytest

from stratarouter_core import ModelRouter, ModelRouterConfig, ModelSpec, NotFittedError
from stratarouter_core.errors import PersistenceError
from stratarouter_core.model_routing import (
    InvalidScoresError,
    NoGradedDataError,
    UnknownModelError,
)
from stratarouter_core.model_routing.evidence import GradedIndex
from stratarouter_core.model_routing.repeats import GradedRepeats, text_keys
from stratarouter_core.testing import HashingEncoder

CHEAP = ModelSpec("cheap", input_usd_per_mtok=0.1, output_usd_per_mtok=0.1)
DEAR = ModelSpec("dear", input_usd_per_mtok=1.0, output_usd_per_mtok=1.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _scores(grades: np.ndarray) -> list[dict[str, float]]:
    return [{"cheap": float(a), "dear": float(b)} for a, b in grades]


def _router(**config) -> ModelRouter:
    return ModelRouter(
        [CHEAP, DEAR], encoder=HashingEncoder(dimension=32), config=ModelRouterConfig(**config)
    )


@pytest.fixture(scope="module")
def random_grades() -> tuple[list[str], np.ndarray, np.ndarray]:
    # one random vector per query: only a query's own grades say how a model does on it
    rng = np.random.default_rng(2)
    x = _unit(rng.normal(size=(200, 32)))
    grades = rng.integers(0, 2, (200, 2)).astype(float)
    return [f"question {i}" for i in range(200)], x, grades


def test_an_added_text_is_answered_from_its_grades(random_grades, tmp_path) -> None:
    queries, x, grades = random_grades
    router = _router(evidence_neighbours=0)
    router.fit(queries[:150], _scores(grades[:150]), x[:150])
    late = slice(150, 200)
    before = router.predict_proba(queries[late], x[late])
    assert np.mean((before > 0.5) == (grades[late] > 0.5)) < 0.75  # nothing to go on yet
    assert router.add_graded(queries[late], _scores(grades[late]), x[late]) == 50
    after = router.predict_proba(queries[late], x[late])
    assert np.mean((after > 0.5) == (grades[late] > 0.5)) == 1.0
    one = router.route(queries[150], x[150])
    np.testing.assert_allclose([one.p_success["cheap"], one.p_success["dear"]], after[0])
    assert one.nearest_graded_similarity == pytest.approx(1.0, abs=1e-5)
    # the fitted texts are answered as before: the stacked predictor was not refitted
    np.testing.assert_allclose(
        router.predict_proba(queries[:20], x[:20]),
        _fitted(queries[:150], x[:150], grades[:150]).predict_proba(queries[:20], x[:20]),
    )
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr", encoder=HashingEncoder(dimension=32))
    np.testing.assert_array_equal(loaded.predict_proba(queries[late], x[late]), after)


def _fitted(queries, x, grades, **config) -> ModelRouter:
    router = _router(evidence_neighbours=0, **config)
    router.fit(queries, _scores(grades), x)
    return router


def _groups(n_groups: int, per_group: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Near copies of each group's query (cosine ~0.99) share the group's grade pattern."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(n_groups, 32)))
    x = _unit(
        np.repeat(centres, per_group, axis=0) + 0.02 * rng.normal(size=(n_groups * per_group, 32))
    )
    pattern = (rng.random((n_groups, 2)) < 0.5).astype(float)
    return x, np.repeat(pattern, per_group, axis=0)


def test_near_copies_of_added_queries_move_through_the_neighbour_update() -> None:
    x, grades = _groups(150, 4, seed=3)
    queries = [f"q{i}" for i in range(len(x))]
    fitted, late = slice(0, 400), slice(400, 600)  # the last 50 groups are graded later
    # texts never graded: the graded-repeat stage stays out, so the update is what is seen
    router = _router(repeat_reliability=None)
    router.fit(queries[fitted], _scores(grades[fitted]), x[fitted])
    assert router.report.hyperparameters["evidence_temperature"] is not None
    copies = _unit(x[late] + 0.01 * np.random.default_rng(4).normal(size=x[late].shape))
    fresh = [f"near copy {i}" for i in range(len(copies))]
    before = router.predict_proba(fresh, copies)
    assert np.mean((before > 0.5) == (grades[late] > 0.5)) < 0.75
    router.add_graded(queries[late], _scores(grades[late]), x[late])
    after = router.predict_proba(fresh, copies)
    assert np.mean((after > 0.5) == (grades[late] > 0.5)) > 0.95
    # a batch and one query at a time agree after the index has grown
    for text, vector, row in zip(fresh[:10], copies[:10], after[:10]):
        p = router.route(text, vector).p_success
        np.testing.assert_allclose([p["cheap"], p["dear"]], row, rtol=1e-6)


def test_adding_in_parts_equals_adding_at_once() -> None:
    x, grades = _groups(100, 4, seed=5)
    queries = [f"q{i}" for i in range(len(x))]
    once, parts = _router(), _router()
    for router in (once, parts):
        router.fit(queries[:300], _scores(grades[:300]), x[:300])
    once.add_graded(queries[300:], _scores(grades[300:]), x[300:])
    parts.add_graded(queries[300:350], _scores(grades[300:350]), x[300:350])
    parts.add_graded(queries[350:], _scores(grades[350:]), x[350:])
    probe = _unit(x + 0.05 * np.random.default_rng(6).normal(size=x.shape))
    texts = queries[:200] + [f"other {i}" for i in range(200, len(x))]
    np.testing.assert_allclose(
        once.predict_proba(texts, probe), parts.predict_proba(texts, probe), rtol=1e-9
    )


def test_added_grades_of_a_fitted_text_average_with_its_fitted_grades() -> None:
    keys = text_keys(["a", "b"])
    order = np.argsort(keys)
    table = GradedRepeats(
        keys[order],
        np.array([[1.0, np.nan], [0.0, 0.5]])[order],
        reliability=0.8,
        estimated=False,
        counts=np.array([[3.0, 0.0], [1.0, 1.0]])[order],
    )
    grown = table.with_grades(
        ["a", "c", " b"], np.array([[0.0, 1.0], [1.0, np.nan], [np.nan, 1.0]])
    )
    means = {
        t: grown.mean_grades[grown.keys.tolist().index(k)]
        for t, k in zip("abc", text_keys(["a", "b", "c"]).tolist())
    }
    np.testing.assert_allclose(means["a"], [0.75, 1.0])  # three 1s and a 0; the first grade
    np.testing.assert_allclose(means["b"], [0.0, 0.75])
    np.testing.assert_allclose(means["c"], [1.0, np.nan])
    assert grown.reliability == 0.8 and list(grown.keys) == sorted(grown.keys)
    # a table saved before counts were kept counts one grade behind each mean
    old = GradedRepeats(table.keys, table.mean_grades, 0.8, False)
    a = old.with_grades(["a"], np.array([[0.0, np.nan]]))
    np.testing.assert_allclose(
        a.mean_grades[a.keys.tolist().index(text_keys(["a"])[0])], [0.5, np.nan]
    )


def test_an_added_vector_joins_its_nearest_cluster() -> None:
    vectors = np.eye(4, dtype=np.float32)
    index = GradedIndex(vectors, centroids=vectors[[0, 2]], starts=np.array([0, 2, 4]), probe=1)
    added = _unit(np.array([[0.1, 0.0, 1.0, 0.0], [1.0, 0.2, 0.0, 0.0]]))
    grown, order = index.with_vectors(added)
    assert grown.starts.tolist() == [0, 3, 6]
    assert order.tolist() == [0, 1, 5, 2, 3, 4]  # each cluster's old rows, then its new ones
    rows, sims = grown.search_one(added[0], 1)
    np.testing.assert_allclose(grown.vectors[rows[0]], added[0])
    assert sims[0] == pytest.approx(1.0)


def test_unfamiliar_queries_follow_the_added_mean_grades(random_grades) -> None:
    queries, x, grades = random_grades
    router = _fitted(queries[:100], x[:100], grades[:100], min_graded_similarity=0.99)
    far = _unit(np.ones((1, 32)))[0]
    first = router.route("something else entirely", far)
    assert first.rule == "min_graded_similarity"
    # many graded answers where only the model the router did not pick succeeds
    winner = "dear" if first.model == "cheap" else "cheap"
    late = np.array([[1.0, 0.0] if winner == "cheap" else [0.0, 1.0]] * 100)
    router.add_graded(queries[100:], _scores(late), x[100:])
    assert router.route("something else entirely", far).model == winner


def test_bad_input_is_a_typed_error_and_changes_nothing(random_grades) -> None:
    queries, x, grades = random_grades
    with pytest.raises(NotFittedError):
        _router().add_graded(queries[:1], [{"cheap": 1.0}], x[:1])
    router = _fitted(queries[:150], x[:150], grades[:150])
    before = router.predict_proba(queries, x)
    bad = [
        (UnknownModelError, "'gpt-9'", [{"gpt-9": 1.0}]),
        (InvalidScoresError, "outside", [{"cheap": 1.5}]),
        (InvalidScoresError, "align", [{"cheap": 1.0}, {"cheap": 0.0}]),
        (NoGradedDataError, "nothing to add", [{"cheap": None}]),
    ]
    for error, message, scores in bad:
        with pytest.raises(error, match=message):
            router.add_graded(queries[160:161], scores, x[160:161])
    np.testing.assert_array_equal(router.predict_proba(queries, x), before)


async def test_aadd_graded_learns_as_add_graded_and_concurrent_calls_all_land(
    random_grades,
) -> None:
    import asyncio

    queries, x, grades = random_grades
    sync, concurrent = _router(evidence_neighbours=0), _router(evidence_neighbours=0)
    for router in (sync, concurrent):
        router.fit(queries[:150], _scores(grades[:150]), x[:150])
    sync.add_graded(queries[150:200], _scores(grades[150:200]), x[150:200])
    halves = [slice(150, 175), slice(175, 200)]
    added = await asyncio.gather(
        *(concurrent.aadd_graded(queries[h], _scores(grades[h]), x[h]) for h in halves)
    )
    assert added == [25, 25]
    np.testing.assert_allclose(
        concurrent.predict_proba(queries[150:200], x[150:200]),
        sync.predict_proba(queries[150:200], x[150:200]),
    )
    with pytest.raises(UnknownModelError):
        await concurrent.aadd_graded(["q"], [{"other": 1.0}])


def test_check_graded_checks_as_add_graded_and_changes_nothing(random_grades) -> None:
    queries, x, grades = random_grades
    router = _router()
    with pytest.raises(NotFittedError):
        router.check_graded(["q"], [{"cheap": 1.0}])
    router.fit(queries[:150], _scores(grades[:150]), x[:150])
    before = router.fingerprint()
    assert router.check_graded(["a", "b", "c"], [{"cheap": 1.0}, {}, {"dear": None}]) == 1
    for bad, error in [
        ([{"cheap": 1.5}], InvalidScoresError),
        ([{"other": 1.0}], UnknownModelError),
        ([{}], NoGradedDataError),
    ]:
        with pytest.raises(error):
            router.check_graded(["a"], bad)
    assert router.fingerprint() == before


def test_the_fingerprint_follows_the_fitted_state(random_grades, tmp_path) -> None:
    queries, x, grades = random_grades
    router, twin, other = _router(), _router(), _router()
    for r in (router, twin):
        r.fit(queries[:150], _scores(grades[:150]), x[:150])
    other.fit(queries[:149], _scores(grades[:149]), x[:149])
    assert router.fingerprint() == twin.fingerprint() != other.fingerprint()
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr", HashingEncoder(dimension=32))
    assert loaded.fingerprint() == router.fingerprint()
    router.add_graded(queries[150:151], _scores(grades[150:151]), x[150:151])
    assert router.fingerprint() != twin.fingerprint()


def test_the_fit_id_is_new_at_each_fit_and_kept_by_add_graded_save_and_load(
    random_grades, tmp_path
) -> None:
    import json

    queries, x, grades = random_grades
    router, twin = _router(), _router()
    with pytest.raises(NotFittedError):
        router.fit_id  # noqa: B018
    for r in (router, twin):
        r.fit(queries[:150], _scores(grades[:150]), x[:150])
    first = router.fit_id
    assert first != twin.fit_id  # the same data, two fits
    router.add_graded(queries[150:151], _scores(grades[150:151]), x[150:151])
    assert router.fit_id == first
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr", HashingEncoder(dimension=32))
    assert loaded.fit_id == first
    router.fit(queries[:150], _scores(grades[:150]), x[:150])
    assert router.fit_id != first
    # a save from before fit ids: its fingerprint, stable across loads
    manifest = tmp_path / "mr" / "model_router.json"
    data = json.loads(manifest.read_text())
    del data["fit_id"]
    manifest.write_text(json.dumps(data))
    old = ModelRouter.load(tmp_path / "mr", HashingEncoder(dimension=32))
    assert old.fit_id == old.fingerprint() == loaded.fingerprint()
    data["fit_id"] = 7
    manifest.write_text(json.dumps(data))
    with pytest.raises(PersistenceError, match="fit_id"):
        ModelRouter.load(tmp_path / "mr", HashingEncoder(dimension=32))
