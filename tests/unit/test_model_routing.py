"""ModelRouter: decision rules, fallbacks, calibration on data of known probability, save/load,
pairwise preferences and every bad input."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from stratarouter_core import (
    ConfigError,
    DimensionMismatchError,
    InvalidQueryError,
    ModelRouter,
    ModelRouterConfig,
    ModelSpec,
    NotFittedError,
    PersistenceError,
    StrataRouterError,
)
from stratarouter_core.calibration import expected_calibration_error
from stratarouter_core.model_routing import (
    DuplicateModelError,
    InvalidScoresError,
    ModelSpecError,
    NoGradedDataError,
    Rule,
    UnknownModelError,
    decide,
    decide_one,
)
from stratarouter_core.testing import HashingEncoder

BIG = ModelSpec("big", input_usd_per_mtok=2.5, output_usd_per_mtok=10.0)
MID = ModelSpec("mid", input_usd_per_mtok=0.5, output_usd_per_mtok=2.0)
SMALL = ModelSpec("small", input_usd_per_mtok=0.15, output_usd_per_mtok=0.6)
DIM = 16


class VectorEncoder(HashingEncoder):
    """HashingEncoder with a dimension of our choosing (routing tests pass vectors anyway)."""

    def __init__(self) -> None:
        super().__init__(dimension=DIM)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def synthetic(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Vectors with known success probabilities: big 0.9 everywhere, mid and small vary."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    truth = np.stack(
        [np.full(n, 0.9), _sigmoid(6 * x[:, 0]), _sigmoid(6 * x[:, 0] - 2 + 4 * x[:, 1])], axis=1
    )
    queries = [f"query {seed} {i}" for i in range(n)]
    return queries, x.astype(np.float32), truth


@pytest.fixture(scope="module")
def fitted() -> tuple[ModelRouter, np.ndarray, np.ndarray, list[str]]:
    queries, x, truth = synthetic(3000, seed=1)
    outcomes = (np.random.default_rng(2).random(truth.shape) < truth).astype(float)
    scores = [dict(zip(["big", "mid", "small"], row.tolist())) for row in outcomes]
    router = ModelRouter([BIG, MID, SMALL], encoder=VectorEncoder())
    router.fit(queries, scores, x)
    test_queries, test_x, test_truth = synthetic(2000, seed=3)
    return router, test_x, test_truth, test_queries


# ------------------------------------------------------------------- calibration
def test_p_success_recovers_known_probabilities(fitted) -> None:
    router, x, truth, queries = fitted
    p = router.predict_proba(queries, x)
    assert np.abs(p - truth).mean(axis=0).max() < 0.05
    outcomes = (np.random.default_rng(4).random(truth.shape) < truth).astype(float)
    for m in range(3):
        assert expected_calibration_error(p[:, m], outcomes[:, m]) < 0.05
    assert all(v < 0.05 for v in router.report.cv_ece.values())


def test_report_names_the_chosen_hyperparameters(fitted) -> None:
    report = fitted[0].report
    assert report.n_queries == 3000 and report.n_graded == {"big": 3000, "mid": 3000, "small": 3000}
    assert set(report.hyperparameters["calibration"].values()) <= {"none", "platt", "isotonic"}
    assert report.hyperparameters["folds"] == 5 and report.duration_s > 0
    # three neighbourhood granularities, x4 apart from sqrt(n)/2, the finest capped at n/10
    assert report.hyperparameters["n_clusters"] == [27, 108, 300]
    assert len(report.hyperparameters["temperatures"]) == 3


def test_cluster_sizes_keep_ten_queries_per_cluster_and_drop_duplicates() -> None:
    from stratarouter_core.model_routing.predictor import _cluster_sizes

    assert _cluster_sizes(5608) == [37, 148, 560]
    assert _cluster_sizes(100) == [5, 10]  # 4x and 16x both hit the n/10 cap
    assert _cluster_sizes(15) == []  # fewer than two clusters: no neighbourhood evidence


def test_neighbourhood_profiles_are_out_of_fold() -> None:
    from stratarouter_core.model_routing.predictor import _neighbourhood
    from stratarouter_core.model_routing.types import ModelRouterConfig

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    grades = (rng.random((400, 2)) < 0.5).astype(float)
    known = np.ones_like(grades, dtype=bool)
    folds = np.arange(400) % 5
    config = ModelRouterConfig()
    oof, *_ = _neighbourhood(x, grades, known, folds, 40, config)
    # a held-out query's grade is in no table its own profile reads
    flipped = grades.copy()
    flipped[folds == 0] = 1.0 - flipped[folds == 0]
    again, *_ = _neighbourhood(x, flipped, known, folds, 40, config)
    np.testing.assert_array_equal(again[folds == 0], oof[folds == 0])
    assert not np.allclose(again[folds != 0], oof[folds != 0])


def test_member_sums_equal_the_indicator_product() -> None:
    from stratarouter_core.model_routing.kmeans import member_sums

    labels = np.array([2, 0, 2, 2, 0])
    values = np.arange(10.0).reshape(5, 2)
    indicator = np.eye(4)[labels].T  # cluster 1 and 3 have no member
    np.testing.assert_array_equal(member_sums(labels, values, 4), indicator @ values)


def test_p_success_claims_no_more_certainty_than_the_graded_answers(tmp_path) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(40, DIM))
    x[:20, 0] += 4.0  # two groups the stacker separates perfectly
    x[20:, 0] -= 4.0
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    queries = [f"q{i}" for i in range(40)]
    scores = [{"big": 1.0, "small": 1.0 if i < 20 else 0.0} for i in range(40)]
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    router.fit(queries, scores, x)
    low, high = 1 / 42, 41 / 42  # the rule of succession after 40 agreeing grades
    p = router.predict_proba(queries, x)
    assert p.min() >= low - 1e-12 and p.max() <= high + 1e-12
    assert p[:, 0] == pytest.approx(np.full(40, high))  # never wrong in 40 is not certainty
    assert router.route(queries[30], x[30]).p_success["small"] == pytest.approx(low)
    assert router.route(queries[0], x[0], min_quality=0.99).fallback  # 40 grades cannot back 99%
    # a save from before the bounds has no graded counts: it loads, unbounded
    router.save(tmp_path / "old")
    arrays = tmp_path / "old" / "arrays.npz"
    with np.load(arrays) as saved:
        kept = {k: saved[k] for k in saved.files if k != "graded_counts"}
    np.savez(arrays, **kept)
    old = ModelRouter.load(tmp_path / "old", encoder=VectorEncoder())
    assert old.predict_proba(queries, x)[:, 0].max() > high


# ---------------------------------------------------------------- decision rules
P = np.array([[0.95, 0.85, 0.40]])
COSTS = np.array([[10.0, 2.0, 0.5]])


def test_min_quality_picks_the_cheapest_model_that_qualifies() -> None:
    chosen, fallback = decide(P, COSTS, Rule(min_quality=0.8))
    assert chosen.tolist() == [1] and not fallback[0]
    chosen, _ = decide(P, COSTS, Rule(min_quality=0.3))
    assert chosen.tolist() == [2]


def test_min_quality_ties_on_cost_go_to_the_higher_p() -> None:
    chosen, _ = decide(
        np.array([[0.7, 0.9, 0.2]]), np.array([[1.0, 1.0, 0.1]]), Rule(min_quality=0.5)
    )
    assert chosen.tolist() == [1]


def test_unmet_min_quality_falls_back_to_the_highest_p_or_the_configured_model() -> None:
    chosen, fallback = decide(P, COSTS, Rule(min_quality=0.99))
    assert chosen.tolist() == [0] and fallback[0]
    chosen, fallback = decide(P, COSTS, Rule(min_quality=0.99), fallback=2)
    assert chosen.tolist() == [2] and fallback[0]


def test_cost_weight_trades_probability_for_relative_cost() -> None:
    assert decide(P, COSTS, Rule(cost_weight=0.0))[0].tolist() == [0]
    # utilities at w=0.2: 0.95-0.2, 0.85-0.04, 0.40-0.01 -> mid
    assert decide(P, COSTS, Rule(cost_weight=0.2))[0].tolist() == [1]
    assert decide(P, COSTS, Rule(cost_weight=5.0))[0].tolist() == [2]


def test_max_cost_picks_the_best_within_budget_and_falls_back_to_the_cheapest() -> None:
    chosen, fallback = decide(P, COSTS, Rule(max_cost=3.0))
    assert chosen.tolist() == [1] and not fallback[0]
    chosen, fallback = decide(P, COSTS, Rule(max_cost=0.1))
    assert chosen.tolist() == [2] and fallback[0]


def test_min_quality_within_max_cost() -> None:
    chosen, fallback = decide(P, COSTS, Rule(min_quality=0.9, max_cost=3.0))
    # nothing within budget reaches 0.9: best effort within the budget is mid (0.85)
    assert chosen.tolist() == [1] and fallback[0]


def test_decide_one_orders_accepted_models_first_and_agrees_with_decide() -> None:
    p, costs = P[0].tolist(), COSTS[0].tolist()
    assert decide_one(p, costs, Rule(min_quality=0.8)) == (1, False, [1, 0, 2])
    assert decide_one(p, costs, Rule(cost_weight=0.0)) == (0, False, [0, 1, 2])
    rng = np.random.default_rng(0)
    many_p, many_c = rng.random((300, 4)), rng.random((300, 4))
    many_c[:, 1] = many_c[:, 2]  # equal costs exercise the ties
    rules = [Rule(min_quality=0.6), Rule(cost_weight=0.5), Rule(max_cost=0.3)]
    rules += [Rule(min_quality=0.9, max_cost=0.5), Rule(cost_weight=2.0, max_cost=0.2)]
    for rule in rules:
        for fallback in (None, 3):
            chosen, failed = decide(many_p, many_c, rule, fallback)
            for row in range(300):
                one = decide_one(many_p[row].tolist(), many_c[row].tolist(), rule, fallback)
                assert one[:2] == (chosen[row], failed[row])


@pytest.mark.parametrize(
    "rule",
    [
        {"min_quality": 1.5},
        {"min_quality": -0.1},
        {"cost_weight": -1.0},
        {"max_cost": float("nan")},
        {"min_quality": 0.5, "cost_weight": 0.1},
    ],
)
def test_meaningless_rules_are_config_errors(rule) -> None:
    with pytest.raises(ConfigError):
        Rule(**rule)


def test_route_applies_rules_and_reports_costs(fitted) -> None:
    router, x, truth, queries = fitted
    easy = int(np.argmax(truth[:, 2]))  # small is near-certain here
    hard = int(np.argmin(truth[:, 1]))  # only big is likely to succeed
    choice = router.route(queries[easy], x[easy], min_quality=0.8)
    assert choice.model == "small" and not choice.fallback and choice.rule == "min_quality"
    assert choice.p_success["small"] >= 0.8
    assert choice.expected_cost_usd == choice.expected_costs_usd["small"]
    assert [a.model for a in choice.alternatives] == ["mid", "big"]
    assert router.route(queries[hard], x[hard], min_quality=0.8).model == "big"
    unmet = router.route(queries[hard], x[hard], min_quality=0.999)
    assert unmet.fallback and unmet.model == max(unmet.p_success, key=unmet.p_success.get)
    broke = router.route(queries[hard], x[hard], max_cost=1e-12)
    assert broke.fallback and broke.model == "small" and broke.rule == "max_cost"
    assert router.route(queries[hard], x[hard]).model == "big"  # default: highest p_success


def test_expected_cost_from_prices_and_tokens(fitted) -> None:
    router = fitted[0]
    choice = router.route("a b c d", np.ones(DIM), max_cost=1.0)
    tokens = math.ceil(len("a b c d") / 4)  # HashingEncoder has no tokenizer: the estimate
    assert router.token_counting == "estimate" and choice.input_tokens == tokens
    expected = (tokens * 2.5 + 256 * 10.0) / 1e6
    assert choice.expected_costs_usd["big"] == pytest.approx(expected)


def test_configured_fallback_model_is_used(fitted) -> None:
    router, x, _, queries = fitted
    config = ModelRouterConfig(fallback_model="mid")
    other = ModelRouter([BIG, MID, SMALL], encoder=VectorEncoder(), config=config)
    other._install(router._predictor, router._output_tokens, router.report)
    choice = other.route(queries[0], x[0], min_quality=1.0)
    assert choice.fallback and choice.model == "mid"


def test_route_batch_matches_route(fitted) -> None:
    router, x, _, queries = fitted
    batch = router.route_batch(queries[:20], x[:20], cost_weight=0.3)
    single = [router.route(q, v, cost_weight=0.3) for q, v in zip(queries[:20], x[:20])]
    assert [c.model for c in batch] == [c.model for c in single]
    for a, b in zip(batch, single):
        assert a.p_success == pytest.approx(b.p_success)


class ThreadRecordingEncoder(HashingEncoder):
    """Notes the thread each `encode` runs on."""

    def __init__(self) -> None:
        super().__init__(dimension=64)
        self.threads: list[int] = []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.threads.append(threading.get_ident())
        return super().encode(texts)


async def test_async_routing_encodes_off_the_event_loop_and_decides_the_same() -> None:
    encoder = ThreadRecordingEncoder()
    router = ModelRouter([BIG, SMALL], encoder=encoder)
    hard = [f"prove theorem {i} about primes" for i in range(40)]
    easy = [f"say hello to friend {i}" for i in range(40)]
    router.fit(hard + easy, [{"big": 1.0, "small": 0.0}] * 40 + [{"big": 1.0, "small": 1.0}] * 40)
    queries = ["say hello to friend 99", "prove theorem 99 about primes"]
    single = [router.route(q, min_quality=0.8) for q in queries]
    one_by_one = [await router.aroute(q, min_quality=0.8) for q in queries]
    batch = await router.aroute_batch(queries, min_quality=0.8)
    for choices in (one_by_one, batch):
        assert [c.model for c in choices] == [c.model for c in single] == ["small", "big"]
        for a, b in zip(choices, single):
            assert a.p_success == pytest.approx(b.p_success)
            assert a.nearest_graded_similarity == pytest.approx(b.nearest_graded_similarity)
    encoder.threads.clear()
    await router.aroute("say hello to friend 5")
    await router.aroute_batch(queries)
    assert encoder.threads and threading.get_ident() not in encoder.threads
    assert await router.aroute_batch([]) == [] == router.route_batch([])
    assert router.predict_proba([]).shape == (0, 2)
    with pytest.raises(InvalidQueryError):
        await router.aroute("   ")
    with pytest.raises(NotFittedError):
        await ModelRouter([BIG, SMALL], encoder=HashingEncoder(dimension=64)).aroute("hello")


def test_large_batches_are_predicted_in_bounded_steps(fitted, monkeypatch) -> None:
    from stratarouter_core.model_routing import kmeans

    router, x, _, queries = fitted
    whole = router.predict_proba(queries[:30], x[:30])
    monkeypatch.setattr(kmeans, "_PRODUCT_FLOATS", 1)  # one query per step
    np.testing.assert_allclose(router.predict_proba(queries[:30], x[:30]), whole, rtol=1e-5)


def test_learned_output_tokens_price_the_completion() -> None:
    queries, x, truth = synthetic(300, seed=5)
    scores = [dict(zip(["big", "small"], row[[0, 2]].round().tolist())) for row in truth]
    tokens = [{"big": 100.0, "small": 300.0}] * 300
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    router.fit(queries, scores, x, output_tokens=tokens)
    assert router.output_tokens == {"big": 100.0, "small": 300.0}
    spec = ModelSpec("big", 2.5, 10.0, expected_output_tokens=50)
    fixed = ModelRouter([spec, SMALL], encoder=VectorEncoder())
    fixed.fit(queries, scores, x, output_tokens=tokens)
    assert fixed.output_tokens["big"] == 50.0  # the spec wins over the data


# -------------------------------------------------------------------- persistence
def test_save_load_round_trip(fitted, tmp_path) -> None:
    router, x, _, queries = fitted
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr", encoder=VectorEncoder())
    assert loaded.models == router.models and loaded.config == router.config
    np.testing.assert_array_equal(
        loaded.predict_proba(queries[:50], x[:50]), router.predict_proba(queries[:50], x[:50])
    )
    assert loaded.route(queries[0], x[0], min_quality=0.7) == router.route(
        queries[0], x[0], min_quality=0.7
    )
    assert loaded.report == router.report


def test_load_refuses_another_encoder_and_foreign_directories(fitted, tmp_path) -> None:
    router = fitted[0]
    router.save(tmp_path / "mr")
    with pytest.raises(PersistenceError, match="encoder mismatch"):
        ModelRouter.load(tmp_path / "mr", encoder=HashingEncoder(dimension=32))
    with pytest.raises(PersistenceError, match="pass an equivalent encoder"):
        ModelRouter.load(tmp_path / "mr")
    with pytest.raises(PersistenceError, match="no saved ModelRouter"):
        ModelRouter.load(tmp_path / "nothing", encoder=VectorEncoder())


def test_unfitted_router_refuses_to_route_or_save(tmp_path) -> None:
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    with pytest.raises(NotFittedError):
        router.route("hello", np.ones(DIM))
    with pytest.raises(NotFittedError):
        router.save(tmp_path / "x")


# ----------------------------------------------------------------- preferences
def test_fit_preferences_learns_who_wins_where() -> None:
    queries, x, _ = synthetic(1200, seed=7)
    winners = ["big" if v[0] > 0 else "small" for v in x]
    losers = ["small" if w == "big" else "big" for w in winners]
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    report = router.fit_preferences(queries, winners, losers, x)
    assert report.n_queries == 1200
    p = router.predict_proba(queries, x)
    right = (p[:, 0] > p[:, 1]) == (x[:, 0] > 0)
    assert right.mean() > 0.9


def test_fit_preferences_bad_input() -> None:
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    with pytest.raises(UnknownModelError):
        router.fit_preferences(["q"], ["gpt-9"], ["small"])
    with pytest.raises(InvalidScoresError):
        router.fit_preferences(["q"], ["big"], ["big"])
    with pytest.raises(InvalidScoresError):
        router.fit_preferences(["q", "r"], ["big"], ["small"])


# ------------------------------------------------------------------- bad input
def _grades(n: int = 40) -> tuple[list[str], list[dict[str, float]], np.ndarray]:
    queries, x, _ = synthetic(n, seed=9)
    return queries, [{"big": 1.0, "small": float(i % 2)} for i in range(n)], x


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"big": 1.5, "small": 0.0}, InvalidScoresError),
        ({"big": -0.1, "small": 0.0}, InvalidScoresError),
        ({"big": float("nan"), "small": 0.0}, InvalidScoresError),
        ({"big": "yes", "small": 0.0}, InvalidScoresError),
        ({"big": True, "small": 0.0}, InvalidScoresError),
        ({"gpt-9": 1.0}, UnknownModelError),
    ],
)
def test_bad_scores(bad, error) -> None:
    queries, scores, x = _grades()
    scores[3] = bad
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    with pytest.raises(error) as caught:
        router.fit(queries, scores, x)
    assert isinstance(caught.value, StrataRouterError) and "scores[3]" in str(caught.value)


def test_no_overlap_between_queries_and_scores() -> None:
    queries, _, x = _grades()
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    with pytest.raises(NoGradedDataError, match="line up"):
        router.fit(queries, {"some other query": {"big": 1.0}}, x)
    with pytest.raises(NoGradedDataError, match="line up"):
        router.fit(queries, [{}] * len(queries), x)


def test_a_model_never_graded_is_named() -> None:
    queries, scores, x = _grades()
    scores = [{"big": s["big"]} for s in scores]
    with pytest.raises(NoGradedDataError, match="'small' has 0 graded"):
        ModelRouter([BIG, SMALL], encoder=VectorEncoder()).fit(queries, scores, x)


def test_scores_keyed_by_query_and_partial_grades() -> None:
    queries, scores, x = _grades(60)
    by_query = {q: s for q, s in zip(queries, scores)}
    by_query[queries[0]] = {"big": None, "small": 1.0}  # None: ungraded
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    report = router.fit(queries, by_query, x)
    assert report.n_graded == {"big": 59, "small": 60}


def test_misaligned_scores() -> None:
    queries, scores, x = _grades()
    with pytest.raises(InvalidScoresError, match="align"):
        ModelRouter([BIG, SMALL], encoder=VectorEncoder()).fit(queries, scores[:-1], x)


def test_bad_embeddings() -> None:
    queries, scores, x = _grades()
    router = ModelRouter([BIG, SMALL], encoder=VectorEncoder())
    nan = x.copy()
    nan[2, 0] = np.nan
    with pytest.raises(InvalidQueryError, match="NaN"):
        router.fit(queries, scores, nan)
    with pytest.raises(DimensionMismatchError):
        router.fit(queries, scores, x[:, :8])
    with pytest.raises(InvalidQueryError):
        router.fit(queries, scores, x[:-1])
    zero = x.copy()
    zero[0] = 0.0
    with pytest.raises(InvalidQueryError, match="zero norm"):
        router.fit(queries, scores, zero)


def test_bad_queries(fitted) -> None:
    router = fitted[0]
    with pytest.raises(InvalidQueryError):
        router.route("", np.ones(DIM))
    with pytest.raises(InvalidQueryError):
        router.route_batch("one string")
    with pytest.raises(InvalidQueryError, match="NaN"):
        router.route("q", np.full(DIM, np.nan))


def test_bad_model_lists() -> None:
    with pytest.raises(ModelSpecError, match="at least one"):
        ModelRouter([], encoder=VectorEncoder())
    with pytest.raises(DuplicateModelError, match="'big'"):
        ModelRouter([BIG, SMALL, BIG], encoder=VectorEncoder())
    with pytest.raises(ModelSpecError):
        ModelSpec("x", input_usd_per_mtok=-1.0, output_usd_per_mtok=1.0)
    with pytest.raises(ModelSpecError):
        ModelSpec("", 1.0, 1.0)
    with pytest.raises(UnknownModelError):
        ModelRouter([BIG], encoder=VectorEncoder(), config=ModelRouterConfig(fallback_model="x"))
    with pytest.raises(ConfigError):
        ModelRouterConfig(temperatures=(0.001,))


def test_errors_are_catchable_as_builtins() -> None:
    assert issubclass(InvalidScoresError, ValueError)
    assert issubclass(UnknownModelError, KeyError)
    assert issubclass(DuplicateModelError, ValueError)
    assert issubclass(NoGradedDataError, StrataRouterError)


def test_soft_logistic_matches_scikit_learn_and_survives_separable_grades() -> None:
    from sklearn.linear_model import LogisticRegression

    from stratarouter_core.model_routing.predictor import _soft_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = np.clip(_sigmoid(x @ np.array([1.5, -1.0, 0.5])) + rng.normal(0, 0.1, 400), 0, 1)
    w, b = _soft_logistic(x, y, 0.5)
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(
        np.concatenate([x, x]), np.r_[np.ones(400), np.zeros(400)], sample_weight=np.r_[y, 1 - y]
    )
    np.testing.assert_allclose(w, reference.coef_[0], atol=1e-4)
    assert b == pytest.approx(reference.intercept_[0], abs=1e-4)
    separable = (x[:, 0] > 0).astype(float)
    w, b = _soft_logistic(x, separable, 1e4)  # barely penalised: the optimum is far out
    assert np.isfinite(w).all() and math.isfinite(b) and w[0] > 5


def test_default_local_encoder_counts_tokens_with_its_tokenizer(local_encoder, tmp_path) -> None:
    router = ModelRouter([BIG, SMALL])  # the default encoder: LocalEncoder, like Router
    assert router.token_counting == "tokenizer"
    long_text = "routing " * 400  # past the encoder's 256-token truncation
    counts = router._count_tokens(["hello world", long_text])
    assert counts[0] == 2 and counts[1] >= 400
    queries = [f"prove theorem {i} about primes" for i in range(15)]
    queries += [f"say hello to friend {i}" for i in range(15)]
    scores = [{"big": 1.0, "small": 0.0}] * 15 + [{"big": 1.0, "small": 1.0}] * 15
    router.fit(queries, scores)  # encodes with MiniLM
    router.save(tmp_path / "mr")
    loaded = ModelRouter.load(tmp_path / "mr")  # no encoder given: LocalEncoder again
    choice = loaded.route("say hello to friend 99", min_quality=0.7)
    assert choice == router.route("say hello to friend 99", min_quality=0.7)
    assert choice.input_tokens == 5  # say, hello, to, friend, 99
