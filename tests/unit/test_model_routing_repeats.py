"""The graded-repeat stage: a query whose exact text was graded is answered from its grades,
with a reliability estimated from the data's own repeats when it has enough of them."""

from __future__ import annotations

import numpy as np
import pytest

from stratarouter_core import ConfigError, ModelRouter, ModelRouterConfig, ModelSpec
from stratarouter_core.model_routing.repeats import GradedRepeats, fit_graded_repeats, text_keys
from stratarouter_core.testing import HashingEncoder

CHEAP = ModelSpec("cheap", input_usd_per_mtok=0.1, output_usd_per_mtok=0.1)
DEAR = ModelSpec("dear", input_usd_per_mtok=1.0, output_usd_per_mtok=1.0)
GRID = (0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95)


def test_texts_equal_up_to_whitespace_and_unicode_form_share_a_key() -> None:
    keys = text_keys(["Café  au lait\n", "Cafe\u0301 au lait", "café au lait", "Café au lai"])
    assert keys[0] == keys[1]  # collapsed whitespace; NFC joins e + combining accent
    assert len(set(keys.tolist())) == 3  # case and a missing letter still differ


def test_the_update_blends_toward_the_mean_grade_and_batch_equals_one() -> None:
    keys = text_keys(["a", "b"])
    order = np.argsort(keys)
    grades = np.array([[1.0, np.nan], [0.0, 0.5]])[order]
    stage = GradedRepeats(keys[order], grades, reliability=0.8, estimated=False)
    p = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.9]])
    out = stage.update(p, ["a", "new", " b "])
    np.testing.assert_allclose(out, [[0.9, 0.5], [0.5, 0.5], [0.04, 0.58]])
    for row, text in enumerate(["a", "new", " b "]):
        np.testing.assert_allclose(stage.update_one(p[row], text), out[row])


def _folds(n: int, k: int = 5) -> np.ndarray:
    return np.arange(n) % k


def test_without_repeats_in_the_data_the_prior_reliability_is_used() -> None:
    texts = [f"q{i}" for i in range(100)]
    grades = np.random.default_rng(0).integers(0, 2, (100, 2)).astype(float)
    cv_p = np.full((100, 2), 0.5)
    fit = fit_graded_repeats(
        texts, grades, _folds(100), cv_p, prior_reliability=0.8, reliabilities=GRID, min_repeats=30
    )
    assert fit.stage is not None and fit.stage.reliability == 0.8 and not fit.stage.estimated
    assert fit.cross_fold_repeats == 0
    np.testing.assert_array_equal(fit.cv_p_success, cv_p)
    off = fit_graded_repeats(
        texts, grades, _folds(100), cv_p, prior_reliability=None, reliabilities=GRID, min_repeats=30
    )
    assert off.stage is None


@pytest.mark.parametrize(("flip", "low", "high"), [(0.0, 0.9, 1.0), (0.5, 0.0, 0.25)])
def test_reliability_is_estimated_from_repeats_across_folds(flip, low, high) -> None:
    # 80 texts asked twice, the copies in different folds; a copy's grade is the original's
    # (flip 0) or an independent coin (flip 0.5)
    rng = np.random.default_rng(1)
    first = rng.integers(0, 2, (80, 2)).astype(float)
    second = np.where(rng.random((80, 2)) < 2 * flip, rng.integers(0, 2, (80, 2)), first)
    texts = [f"q{i}" for i in range(80)] * 2
    grades = np.concatenate([first, second])
    folds = np.concatenate([np.zeros(80, dtype=np.int64), np.ones(80, dtype=np.int64)])
    cv_p = np.full((160, 2), 0.5)
    fit = fit_graded_repeats(
        texts, grades, folds, cv_p, prior_reliability=0.8, reliabilities=GRID, min_repeats=30
    )
    assert fit.stage is not None and fit.stage.estimated
    assert fit.cross_fold_repeats == 160
    assert low <= fit.stage.reliability <= high
    # the out-of-fold p of a query moves toward its copy's grades, not its own
    expected = fit.stage.reliability * second[0] + (1 - fit.stage.reliability) * 0.5
    np.testing.assert_allclose(fit.cv_p_success[0], expected)


def test_copies_in_the_same_fold_are_not_cross_fold_evidence() -> None:
    texts = ["same"] * 40 + [f"q{i}" for i in range(60)]
    folds = np.concatenate([np.zeros(40, dtype=np.int64), np.arange(60) % 4 + 1])
    grades = np.ones((100, 1))
    fit = fit_graded_repeats(
        texts,
        grades,
        folds,
        np.full((100, 1), 0.5),
        prior_reliability=0.8,
        reliabilities=GRID,
        min_repeats=1,
    )
    assert fit.cross_fold_repeats == 0 and fit.stage is not None and not fit.stage.estimated


@pytest.fixture(scope="module")
def graded() -> tuple[list[str], np.ndarray, np.ndarray]:
    # one random vector per query: nothing but the text itself says how a model does on it
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 32)).astype(np.float32)
    grades = rng.integers(0, 2, (200, 2)).astype(float)
    return [f"question {i}" for i in range(200)], x, grades


def _fit(queries, x, grades, **config) -> ModelRouter:
    router = ModelRouter(
        [CHEAP, DEAR], encoder=HashingEncoder(dimension=32), config=ModelRouterConfig(**config)
    )
    router.fit(queries, [{"cheap": a, "dear": b} for a, b in grades.tolist()], x)
    return router


def test_a_graded_text_is_answered_from_its_grades_and_the_stage_is_saved(graded, tmp_path) -> None:
    queries, x, grades = graded
    router = _fit(queries, x, grades)
    params = router.report.hyperparameters
    assert params["repeat_reliability"] == 0.8 and not params["repeat_reliability_estimated"]
    p = router.predict_proba(queries, x)
    assert np.mean((p > 0.5) == (grades > 0.5)) == 1.0
    one = [router.route(q, v).p_success for q, v in zip(queries[:20], x[:20])]
    np.testing.assert_allclose([[c["cheap"], c["dear"]] for c in one], p[:20], rtol=1e-6)
    # the same vectors under texts never graded: nothing to go on but the vectors
    fresh = router.predict_proba([f"other {i}" for i in range(200)], x)
    assert np.mean((fresh > 0.5) == (grades > 0.5)) < 0.75
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr", encoder=HashingEncoder(dimension=32))
    np.testing.assert_array_equal(loaded.predict_proba(queries, x), p)
    assert "question 0" not in (tmp_path / "mr" / "model_router.json").read_text()


def test_identical_vectors_of_different_texts_are_not_repeats(graded) -> None:
    # long prompts that share their first 256 tokens embed identically: only the text tells
    queries, x, grades = graded
    router = _fit(queries, x, grades, evidence_neighbours=0)
    p = router.predict_proba([queries[0], "question 0, but another question"], x[[0, 0]])
    assert abs(p[0, 0] - grades[0, 0]) < 0.3
    assert abs(p[1, 0] - grades[0, 0]) > abs(p[0, 0] - grades[0, 0]) + 0.2


def test_the_stage_can_be_turned_off(graded) -> None:
    queries, x, grades = graded
    router = _fit(queries, x, grades, repeat_reliability=None, evidence_neighbours=0)
    assert router.report.hyperparameters["repeat_reliability"] is None
    p = router.predict_proba(queries, x)
    assert np.mean((p > 0.5) == (grades > 0.5)) < 0.75


@pytest.mark.parametrize(
    "kwargs",
    [
        {"repeat_reliability": 1.5},
        {"repeat_reliability": -0.1},
        {"repeat_reliabilities": ()},
        {"repeat_reliabilities": (0.5, 2.0)},
        {"repeat_min_queries": 0},
    ],
)
def test_bad_repeat_settings_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError, match="repeat_"):
        ModelRouterConfig(**kwargs)
