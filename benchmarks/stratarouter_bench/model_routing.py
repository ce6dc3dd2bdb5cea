"""`stratarouter bench model-routing`: quality against cost on a graded multi-model data set.

Data: a JSON file with ``models`` ({name: {input_usd_per_mtok, output_usd_per_mtok}}) and
``train`` / ``test`` lists of [query, {model: score in [0, 1]}], and an .npz with one
embedding per query per split (``train``, ``test``), in the same order.

Protocol. Every method is fitted on train only and evaluated once on test, on the same
vectors and the same per-query prices: a model's price is the mean of its input and output
prices per million tokens (the data has no token counts, so every query costs the same per
model). A method maps each test query to a predicted quality per model; a decision then
picks argmax(predicted - w * price / max price) and w sweeps from 0 upwards, which traces the
method's quality-cost curve (the same `decide` that `ModelRouter.route` uses). Figures:

- quality at <= the best single model's cost: the best curve point within that cost;
- cost saved at the best single model's quality: 1 - (cheapest curve point reaching it) / cost;
- AvgAcc: the quality of the quality-only choice (w = 0); Gain@Best-single =
  (AvgAcc - best single) / best single and Gap@Oracle = (oracle - AvgAcc) / oracle, both
  relative, as LLMRouterBench reports them;
- ECE of each model's predicted quality against its graded scores (15 equal-width bins), with
  its floor: the median ECE that outcomes drawn from the predictions themselves would show
  (a perfectly calibrated predictor as sharp as this one, on as many queries), and the share
  of such draws at least as far off as the real grades (the consistency test's p-value);
- for one strong/weak pair, RouteLLM's APGR (area under the performance-gap-recovered curve
  over the share of strong calls, from 0 to 100%) and CPT(50%) / CPT(80%) (the share of
  strong calls needed to recover 50% / 80% of the gap), ranking queries by predicted
  strong-minus-weak quality.

The best single model and the pair are chosen on train. Baselines: best single model,
random mix (any random split between models: the upper convex hull of the single models),
oracle (the true scores), kNN (k=20, mean graded score per model among the 20 most similar
train queries) and per-model logistic regression on the embeddings (scikit-learn defaults,
labels score >= 0.5). ModelRouter is also run without its graded-neighbour update, and
``--drop-repeats`` scores only the test queries whose text is not in train. ``--models A,B``
routes among those models only (a strong/weak pair: every method is fitted on their columns
alone), and ``--train-sample N --seed S`` fits every method on N random training queries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.calibration import expected_calibration_error
from stratarouter_core.errors import ConfigError
from stratarouter_core.model_routing import (
    ModelRouter,
    ModelRouterConfig,
    ModelSpec,
    Rule,
    decide,
    read_graded_file,
)

from .datasets import PrecomputedEncoder

__all__ = ["GradedData", "MethodResult", "load_graded", "register", "run"]

F64 = NDArray[np.float64]
_WEIGHTS = np.concatenate([[0.0], np.logspace(-4, 1, 400)])  # cost_weight sweep
_KNN_K = 20
_KNN_BLOCK = 2**24  # similarities computed at once by the kNN baseline (64 MB)
_FLOOR_DRAWS = 200


def register(benches: Any) -> None:
    """Add the `model-routing` benchmark."""
    parser = benches.add_parser(
        "model-routing", help="model routing: quality vs cost against kNN, logistic, oracle"
    )
    parser.add_argument("--dataset", required=True, help="graded JSON (models, train, test)")
    parser.add_argument("--embeddings", required=True, help=".npz with train and test vectors")
    parser.add_argument("--plot", help="write the quality-cost curves to this PNG")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--drop-repeats",
        action="store_true",
        help="score only the test queries whose exact text is not among the training queries",
    )
    parser.add_argument(
        "--models",
        help="MODEL,MODEL,...: route among these models only (e.g. a strong/weak pair)",
    )
    parser.add_argument(
        "--train-sample",
        type=int,
        help="fit every method on a random subset of this many training queries",
    )
    parser.add_argument(
        "--add-graded",
        type=int,
        metavar="N",
        help="also fit ModelRouter without N random training queries, then add them with "
        "add_graded (no refit), and report both beside the full fit",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of --train-sample and --add-graded (default 0)"
    )
    parser.add_argument(
        "--pair",
        help="STRONG,WEAK models for APGR/CPT (default: the best model on train, and the best "
        "of the cheaper ones)",
    )
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class GradedData:
    """One graded data set, split; scores (n, M) with NaN where a model was not graded."""

    name: str
    models: tuple[ModelSpec, ...]
    train_queries: list[str]
    train_scores: F64
    train_vectors: NDArray[np.float32]
    test_queries: list[str]
    test_scores: F64
    test_vectors: NDArray[np.float32]
    embedding_model: str | None

    @property
    def names(self) -> list[str]:
        """Model names in column order."""
        return [m.name for m in self.models]

    @property
    def price(self) -> F64:
        """Per-query price of each model: mean of input and output price per Mtok."""
        return np.array([(m.input_usd_per_mtok + m.output_usd_per_mtok) / 2 for m in self.models])


def load_graded(dataset: str | Path, embeddings: str | Path) -> GradedData:
    """Read the JSON (`read_graded_file`) and the .npz, checking that they line up."""
    graded = read_graded_file(dataset)
    names = [m.name for m in graded.models]
    with np.load(embeddings) as arrays:
        vectors = {s: np.asarray(arrays[s], dtype=np.float32) for s in ("train", "test")}
        model = str(arrays["model"]) if "model" in arrays.files else None
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        queries, scores = graded.split(split)
        if len(queries) != len(vectors[split]):
            raise ConfigError(f"{split}: {len(queries)} queries but {len(vectors[split])} vectors")
        out[f"{split}_queries"] = queries
        out[f"{split}_scores"] = np.array(
            [[_score(s.get(m)) for m in names] for s in scores], dtype=np.float64
        )
        out[f"{split}_vectors"] = vectors[split]
    return GradedData(name=graded.name, models=graded.models, embedding_model=model, **out)


def _score(value: float | None) -> float:
    return np.nan if value is None else float(value)


@dataclass
class MethodResult:
    """One method's figures on test."""

    method: str
    quality_at_best_cost: float
    cost_saved_at_best_quality: float | None
    avg_acc: float
    gain_at_best_single: float
    gap_at_oracle: float
    max_ece: float | None = None
    ece: dict[str, float] | None = None
    ece_floor: dict[str, float] | None = None
    ece_p_value: dict[str, float] | None = None
    apgr: float | None = None
    cpt50: float | None = None
    cpt80: float | None = None
    curve: list[tuple[float, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------- methods
def _knn(data: GradedData) -> F64:
    train = _unit(data.train_vectors)
    test = _unit(data.test_vectors)
    k = min(_KNN_K, len(train))
    # in blocks of test rows: a (test x train) similarity matrix is GBs at 100k x 10k
    step = max(1, _KNN_BLOCK // max(1, len(train)))
    top = np.concatenate(
        [
            np.argpartition(-(test[i : i + step] @ train.T), k - 1, axis=1)[:, :k]
            for i in range(0, len(test), step)
        ]
    )
    neighbours = data.train_scores[top]  # (n_test, k, M)
    graded = (~np.isnan(neighbours)).sum(axis=1)
    sums = np.nansum(neighbours, axis=1)
    # a model none of the k neighbours was graded on gets its training mean
    fallback = np.broadcast_to(np.nanmean(data.train_scores, axis=0), sums.shape)
    out: F64 = np.divide(sums, graded, out=fallback.copy(), where=graded > 0)
    return out


def _logistic(data: GradedData) -> F64:
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(data.test_queries), len(data.models)))
    for m in range(len(data.models)):
        rows = ~np.isnan(data.train_scores[:, m])
        labels = data.train_scores[rows, m] >= 0.5
        if labels.all() or not labels.any():
            out[:, m] = float(labels.mean())
            continue
        fit = LogisticRegression(max_iter=1000).fit(data.train_vectors[rows], labels)
        out[:, m] = fit.predict_proba(data.test_vectors)[:, 1]
    return out


def _ours(
    data: GradedData, config: ModelRouterConfig | None = None
) -> tuple[F64, ModelRouter, float, float]:
    """p_success on test, the fitted router, fit seconds and route() P50 microseconds."""
    texts = data.train_queries + data.test_queries
    encoder = PrecomputedEncoder(
        texts, np.concatenate([data.train_vectors, data.test_vectors]), data.embedding_model
    )
    router = ModelRouter(data.models, encoder=encoder, config=config)
    scores = [
        {name: float(v) for name, v in zip(data.names, row) if not np.isnan(v)}
        for row in data.train_scores
    ]
    started = time.perf_counter()
    router.fit(data.train_queries, scores, data.train_vectors)
    fit_s = time.perf_counter() - started
    p = router.predict_proba(data.test_queries, data.test_vectors)
    timings = []
    for query, vector in zip(data.test_queries, data.test_vectors):
        started_ns = time.perf_counter_ns()
        router.route(query, vector, cost_weight=0.1)
        timings.append(time.perf_counter_ns() - started_ns)
    return p, router, fit_s, float(np.median(timings) / 1e3)


def _route_p50_counting_with_local_tokenizer(router: ModelRouter, data: GradedData) -> float | None:
    """route() P50 with the WordPiece count a router on the default `LocalEncoder` makes
    per query (the precomputed vectors' router estimates tokens from characters), the
    counter having seen the training queries as `fit` has; None without the local model's
    extra."""
    from stratarouter_core.errors import MissingDependencyError
    from stratarouter_core.model_routing.costs import make_token_counter

    try:
        from stratarouter_core.encoders.local import LocalEncoder

        counter = make_token_counter(LocalEncoder(), 4.0)
    except (ImportError, MissingDependencyError):
        return None
    counter(data.train_queries)
    timings = []
    for query, vector in zip(data.test_queries, data.test_vectors):
        started_ns = time.perf_counter_ns()
        counter.one(query)
        router.route(query, vector, cost_weight=0.1)
        timings.append(time.perf_counter_ns() - started_ns)
    return float(np.median(timings) / 1e3)


# ---------------------------------------------------------------------------- figures
def _curve(predicted: F64, truth: F64, price: F64) -> list[tuple[float, float]]:
    """(mean price, mean true quality) of the cost_weight sweep."""
    costs = np.broadcast_to(price, predicted.shape)
    realised = np.nan_to_num(truth)
    rows = np.arange(len(truth))
    points = set()
    for weight in _WEIGHTS:
        chosen, _ = decide(predicted, costs, Rule(cost_weight=float(weight)))
        points.add((float(price[chosen].mean()), float(realised[rows, chosen].mean())))
    return sorted(points)


def _hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Upper-left convex hull: what random mixes of the points reach."""
    ordered = sorted(points, key=lambda p: (p[0], -p[1]))
    hull: list[tuple[float, float]] = []
    for point in ordered:
        if hull and point[1] <= hull[-1][1]:
            continue
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(point)
    return hull


def _hull_value(hull: Sequence[tuple[float, float]], cost: float) -> float:
    xs, ys = zip(*hull)
    return float(np.interp(cost, xs, ys))


def _hull_cost(hull: Sequence[tuple[float, float]], quality: float) -> float | None:
    xs, ys = zip(*hull)
    if quality > max(ys):
        return None
    return float(np.interp(quality, ys, xs))


def _at_cost(curve: Sequence[tuple[float, float]], cost: float) -> float:
    within = [q for c, q in curve if c <= cost + 1e-12]
    return max(within) if within else float("nan")


def _saved(curve: Sequence[tuple[float, float]], quality: float, cost: float) -> float | None:
    reaching = [c for c, q in curve if q >= quality - 1e-12]
    return 1.0 - min(reaching) / cost if reaching else None


def _pair_curve(score: F64, strong: F64, weak: F64) -> F64:
    """Quality when the k highest-scored queries go to the strong model, k = 0..n."""
    order = np.argsort(-score, kind="stable")
    gains = np.concatenate([[0.0], np.cumsum((strong - weak)[order])])
    out: F64 = (weak.sum() + gains) / len(score)
    return out


def _apgr_cpt(score: F64, strong: F64, weak: F64) -> tuple[float, float | None, float | None]:
    quality = _pair_curve(score, strong, weak)
    gap = strong.mean() - weak.mean()
    if abs(gap) < 1e-12:
        return float("nan"), None, None
    pgr = (quality - weak.mean()) / gap
    share = np.linspace(0.0, 1.0, len(pgr))
    apgr = float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(share)))

    def cpt(target: float) -> float | None:
        hit = np.nonzero(pgr >= target - 1e-12)[0]
        return float(share[hit[0]]) if len(hit) else None

    return apgr, cpt(0.5), cpt(0.8)


def _pair(data: GradedData, spec: str | None) -> tuple[int, int]:
    names = data.names
    if spec:
        try:
            strong, weak = (names.index(s.strip()) for s in spec.split(","))
        except ValueError as exc:
            raise ConfigError(f"--pair {spec!r}: expected STRONG,WEAK among {names}") from exc
        return strong, weak
    means = np.nanmean(data.train_scores, axis=0)
    strong = int(np.argmax(means))
    others = [m for m in range(len(names)) if m != strong]
    if not others:
        raise ConfigError("one model only: nothing to route between")
    # the weak model is the best cheaper one; when none is cheaper (equal prices), the best
    # other one, so that APGR still measures the ranking of queries by who answers them
    cheaper = [m for m in others if data.price[m] < data.price[strong]]
    return strong, max(cheaper or others, key=lambda m: means[m])


@dataclass(frozen=True)
class _Reference:
    best: int
    best_quality: float
    best_cost: float
    oracle: float
    pair: tuple[int, int]


def _result(
    method: str,
    predicted: F64,
    data: GradedData,
    ref: _Reference,
    *,
    calibrated: bool = True,
) -> MethodResult:
    truth = data.test_scores
    curve = _curve(predicted, truth, data.price)
    avg = _quality_only(predicted, truth)
    strong, weak = ref.pair
    known = ~np.isnan(truth)
    ece = floor = p_value = None
    if calibrated:
        ece = {
            name: expected_calibration_error(predicted[known[:, m], m], truth[known[:, m], m])
            for m, name in enumerate(data.names)
        }
        floor, p_value = _ece_floor(predicted, truth, data.names)
    both = known[:, strong] & known[:, weak]
    apgr, cpt50, cpt80 = _apgr_cpt(
        (predicted[:, strong] - predicted[:, weak])[both], truth[both, strong], truth[both, weak]
    )
    return MethodResult(
        method=method,
        quality_at_best_cost=_at_cost(curve, ref.best_cost),
        cost_saved_at_best_quality=_saved(curve, ref.best_quality, ref.best_cost),
        avg_acc=avg,
        gain_at_best_single=(avg - ref.best_quality) / ref.best_quality,
        gap_at_oracle=(ref.oracle - avg) / ref.oracle,
        max_ece=max(ece.values()) if ece else None,
        ece=ece,
        ece_floor=floor,
        ece_p_value=p_value,
        apgr=apgr,
        cpt50=cpt50,
        cpt80=cpt80,
        curve=curve,
    )


def _ece_floor(
    predicted: F64, truth: F64, names: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per model: the median ECE of outcomes drawn from `predicted` itself, and the p-value.

    A perfectly calibrated predictor still shows an ECE on a finite test set, the larger the
    sharper it is and the fewer the queries; outcomes are drawn as Bernoulli(p), which makes
    the floor a little high for partial-credit grades.
    """
    rng = np.random.default_rng(0)
    floor, p_value = {}, {}
    for m, name in enumerate(names):
        rows = ~np.isnan(truth[:, m])
        p = np.clip(predicted[rows, m], 0.0, 1.0)
        observed = expected_calibration_error(p, truth[rows, m])
        drawn = np.array(
            [
                expected_calibration_error(p, (rng.random(len(p)) < p).astype(np.float64))
                for _ in range(_FLOOR_DRAWS)
            ]
        )
        floor[name] = float(np.median(drawn))
        p_value[name] = float(np.mean(drawn >= observed))
    return floor, p_value


def _quality_only(predicted: F64, truth: F64) -> float:
    chosen = np.argmax(predicted, axis=1)
    return float(np.nan_to_num(truth)[np.arange(len(truth)), chosen].mean())


def _baseline_rows(data: GradedData, ref: _Reference) -> list[MethodResult]:
    truth = np.nan_to_num(data.test_scores)
    singles = [(float(data.price[m]), float(truth[:, m].mean())) for m in range(len(data.models))]
    hull = _hull(singles)
    best = MethodResult(
        method=f"best single ({data.names[ref.best]})",
        quality_at_best_cost=ref.best_quality,
        cost_saved_at_best_quality=0.0,
        avg_acc=ref.best_quality,
        gain_at_best_single=0.0,
        gap_at_oracle=(ref.oracle - ref.best_quality) / ref.oracle,
        curve=[singles[ref.best]],
    )
    cost = _hull_cost(hull, ref.best_quality)
    random_quality = _hull_value(hull, ref.best_cost)
    random = MethodResult(
        method="random mix (hull of single models)",
        quality_at_best_cost=random_quality,
        cost_saved_at_best_quality=None if cost is None else 1.0 - cost / ref.best_cost,
        avg_acc=max(q for _, q in singles),
        gain_at_best_single=(max(q for _, q in singles) - ref.best_quality) / ref.best_quality,
        gap_at_oracle=(ref.oracle - max(q for _, q in singles)) / ref.oracle,
        apgr=0.5,
        cpt50=0.5,
        cpt80=0.8,
        curve=hull,
    )
    oracle = _result("oracle", np.nan_to_num(data.test_scores, nan=-1.0), data, ref)
    oracle.max_ece, oracle.ece = None, None
    return [best, random, oracle]


# ------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    """Fit every method on train, evaluate on test, print one table (or JSON)."""
    data = load_graded(args.dataset, args.embeddings)
    if args.drop_repeats:
        data = _without_repeats(data)
    if args.models:
        data = _only_models(data, args.models)
    if args.train_sample is not None:
        data = _train_sample(data, args.train_sample, args.seed)
    later = None if args.add_graded is None else _held_back(data, args.add_graded, args.seed)
    truth = np.nan_to_num(data.test_scores)
    train_means = np.nanmean(data.train_scores, axis=0)
    best = int(np.argmax(train_means))
    ref = _Reference(
        best=best,
        best_quality=float(truth[:, best].mean()),
        best_cost=float(data.price[best]),
        oracle=_quality_only(np.nan_to_num(data.test_scores, nan=-1.0), truth),
        pair=_pair(data, args.pair),
    )
    rows = _baseline_rows(data, ref)
    rows.append(_result(f"kNN (k={_KNN_K})", _knn(data), data, ref))
    rows.append(_result("logistic regression per model", _logistic(data), data, ref))
    for label, neighbours in (
        ("ModelRouter, stacked predictor only", 0),
        ("ModelRouter without graded repeats", ModelRouterConfig.evidence_neighbours),
    ):
        config = ModelRouterConfig(evidence_neighbours=neighbours, repeat_reliability=None)
        rows.append(_result(label, _ours(data, config)[0], data, ref))
    p, router, fit_s, p50_us = _ours(data)
    p50_counted_us = _route_p50_counting_with_local_tokenizer(router, data)
    rows.append(_result("StrataRouter ModelRouter", p, data, ref))
    added = None
    if later is not None:
        added = _added_later(data, later)
        fitted_on = len(data.train_queries) - args.add_graded
        rows.append(_result(f"ModelRouter fitted on {fitted_on}", added.before, data, ref))
        rows.append(
            _result(f"... then add_graded of the other {args.add_graded}", added.after, data, ref)
        )
    report = router.report
    payload = {
        "dataset": data.name,
        "n_train": len(data.train_queries),
        "n_test": len(data.test_queries),
        "repeats_dropped": bool(args.drop_repeats),
        "models": data.names,
        "price": data.price.tolist(),
        "best_single": data.names[best],
        "best_single_quality": ref.best_quality,
        "best_single_cost": ref.best_cost,
        "oracle_quality": ref.oracle,
        "pair": [data.names[i] for i in ref.pair],
        "fit_seconds": fit_s,
        "route_p50_us": p50_us,
        "route_p50_local_tokenizer_us": p50_counted_us,
        "hyperparameters": report.hyperparameters if report else None,
        "rows": [asdict(r) for r in rows],
        "nearest_graded_similarity": report.nearest_graded_similarity if report else None,
        "by_nearest_graded_similarity": _by_similarity(router, p, data, train_means),
        "add_graded_seconds": None if added is None else added.seconds,
    }
    if args.plot:
        _plot(rows, data, args.plot)
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        _print(rows, payload)
    return 0


def _by_similarity(
    router: ModelRouter, p: F64, data: GradedData, train_means: F64
) -> list[dict[str, Any]]:
    """How reliable p_success is by how near the graded data a test query is.

    Test queries in bands of their nearest graded cosine, cut at the training data's own
    percentiles (`report.nearest_graded_similarity`): per band, the Brier score of p_success
    against that of each model's training mean grade, and mean p_success minus mean grade.
    """
    scale = router.report.nearest_graded_similarity if router.report else None
    if not scale:
        return []
    choices = router.route_batch(data.test_queries, data.test_vectors)
    near = np.array(
        [
            np.nan if c.nearest_graded_similarity is None else c.nearest_graded_similarity
            for c in choices
        ]
    )
    cuts = [-np.inf, scale["p5"], scale["p25"], scale["p50"], np.inf]
    labels = ["below p5", "p5 to p25", "p25 to p50", "above p50"]
    known = ~np.isnan(data.test_scores)
    grades = np.nan_to_num(data.test_scores)
    out = []
    for label, low, high in zip(labels, cuts, cuts[1:]):
        rows = (near >= low) & (near < high)
        mask = known[rows]
        if not mask.any():
            out.append(
                {
                    "band": label,
                    "n": int(rows.sum()),
                    "brier": None,
                    "base_rate_brier": None,
                    "bias": None,
                }
            )
            continue
        error = (p[rows] - grades[rows])[mask]
        base = (np.broadcast_to(train_means, mask.shape) - grades[rows])[mask]
        out.append(
            {
                "band": label,
                "n": int(rows.sum()),
                "brier": float(np.mean(error**2)),
                "base_rate_brier": float(np.mean(base**2)),
                "bias": float(np.mean(error)),
            }
        )
    return out


def _fmt(value: float | None, style: str) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.1%}" if style == "pct" else f"{value:.3f}"


def _print(rows: Sequence[MethodResult], payload: dict[str, Any]) -> None:
    strong, weak = payload["pair"]
    print(
        f"\n{payload['dataset']}: {payload['n_train']} train / {payload['n_test']} test queries, "
        f"{len(payload['models'])} models; best single {payload['best_single']} "
        f"{payload['best_single_quality']:.3f} at price {payload['best_single_cost']:g}; "
        f"oracle {payload['oracle_quality']:.3f}; pair {strong} vs {weak}\n"
    )
    columns = [
        ("quality @ <= best cost", "quality_at_best_cost", "3"),
        ("cost saved @ best quality", "cost_saved_at_best_quality", "pct"),
        ("AvgAcc", "avg_acc", "3"),
        ("Gain@Best-single", "gain_at_best_single", "pct"),
        ("Gap@Oracle", "gap_at_oracle", "pct"),
        ("max per-model ECE", "max_ece", "3"),
        ("APGR", "apgr", "3"),
        ("CPT(50%)", "cpt50", "pct"),
        ("CPT(80%)", "cpt80", "pct"),
    ]
    print("| method | " + " | ".join(c[0] for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in rows:
        cells = [_fmt(getattr(row, attr), style) for _, attr, style in columns]
        print(f"| {row.method} | " + " | ".join(cells) + " |")
    ours = rows[-1]
    if ours.ece and ours.ece_floor and ours.ece_p_value:
        print(
            "\nECE of p_success per model (ModelRouter, test), its floor (median ECE of a "
            "perfectly calibrated predictor as sharp, on as many queries) and the p-value:"
        )
        print("| | " + " | ".join(ours.ece) + " |")
        print("|---" * (len(ours.ece) + 1) + "|")
        for label, values in (
            ("ECE", ours.ece),
            ("floor", ours.ece_floor),
            ("p-value", ours.ece_p_value),
        ):
            print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values.values()) + " |")
    bands, scale = payload["by_nearest_graded_similarity"], payload["nearest_graded_similarity"]
    if bands:
        cuts = ", ".join(f"{k} {scale[k]:.3f}" for k in ("p5", "p25", "p50"))
        print(
            "\np_success by the test query's nearest graded cosine, in bands cut at the "
            f"training queries' percentiles ({cuts}; Brier of the training mean grade for "
            "comparison):"
        )
        print("| band | queries | Brier | base-rate Brier | mean p - mean grade |")
        print("|---|---|---|---|---|")
        for band in bands:
            cells = [_fmt(band[k], "3") for k in ("brier", "base_rate_brier")]
            bias = "-" if band["bias"] is None else f"{band['bias']:+.3f}"
            print(f"| {band['band']} | {band['n']} | " + " | ".join(cells) + f" | {bias} |")
    print(
        f"\nModelRouter.fit: {payload['fit_seconds']:.1f} s; "
        f"route() with the embedding given: P50 {payload['route_p50_us']:.0f} us"
    )
    if payload["route_p50_local_tokenizer_us"] is not None:
        print(
            "route() plus counting the prompt's tokens with the local encoder's tokenizer, as "
            f"a router on the default LocalEncoder does: P50 "
            f"{payload['route_p50_local_tokenizer_us']:.0f} us"
        )
    if payload["add_graded_seconds"] is not None:
        print(f"add_graded: {payload['add_graded_seconds']:.2f} s")


def _plot(rows: Sequence[MethodResult], data: GradedData, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'stratarouter[plot]')")
        return
    figure, axes = plt.subplots(figsize=(8, 5.5))
    truth = np.nan_to_num(data.test_scores)
    for m, name in enumerate(data.names):
        axes.scatter(data.price[m], truth[:, m].mean(), color="grey", s=18)
        axes.annotate(name, (data.price[m], truth[:, m].mean()), fontsize=6, color="grey")
    for row in rows[1:]:
        xs, ys = zip(*_hull(row.curve)) if row.method.startswith("random") else zip(*row.curve)
        axes.plot(xs, ys, marker=".", markersize=3, label=row.method)
    axes.set(
        xlabel="mean price per query (mean of input and output USD / Mtok)",
        ylabel="mean graded quality (test)",
        title=f"{data.name}: quality vs cost",
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def _without_repeats(data: GradedData) -> GradedData:
    """The data with the test queries whose exact text is a training query left out."""
    seen = set(data.train_queries)
    keep = np.array([q not in seen for q in data.test_queries], dtype=bool)
    if not keep.any():
        raise ConfigError("--drop-repeats: every test query is also a training query")
    return dataclasses.replace(
        data,
        test_queries=[q for q, k in zip(data.test_queries, keep) if k],
        test_scores=data.test_scores[keep],
        test_vectors=data.test_vectors[keep],
    )


def _only_models(data: GradedData, spec: str) -> GradedData:
    """The data restricted to the named models, in the order given."""
    wanted = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in data.names]
    if unknown or len(set(wanted)) < 2 or len(set(wanted)) != len(wanted):
        raise ConfigError(
            f"--models {spec!r}: expected two or more distinct models among {data.names}"
        )
    columns = [data.names.index(name) for name in wanted]
    return dataclasses.replace(
        data,
        models=tuple(data.models[c] for c in columns),
        train_scores=data.train_scores[:, columns],
        test_scores=data.test_scores[:, columns],
    )


@dataclass(frozen=True)
class _AddedLater:
    before: F64  # p_success on test of the router fitted without the held-back queries
    after: F64  # the same router after add_graded of them
    seconds: float  # the add_graded call


def _held_back(data: GradedData, size: int, seed: int) -> NDArray[np.bool_]:
    """Which `size` random training queries `--add-graded` adds after the fit."""
    n = len(data.train_queries)
    if not 1 <= size <= n - 20:
        raise ConfigError(f"--add-graded {size}: expected 1 to {n - 20} training queries")
    later = np.zeros(n, dtype=bool)
    later[np.random.default_rng(seed).choice(n, size, replace=False)] = True
    return later


def _added_later(data: GradedData, later: NDArray[np.bool_]) -> _AddedLater:
    """Fit ModelRouter without the `later` training queries, then add them."""
    first = dataclasses.replace(
        data,
        train_queries=[q for q, late in zip(data.train_queries, later) if not late],
        train_scores=data.train_scores[~later],
        train_vectors=data.train_vectors[~later],
    )
    before, router, _, _ = _ours(first)
    scores = [
        {name: float(v) for name, v in zip(data.names, row) if not np.isnan(v)}
        for row in data.train_scores[later]
    ]
    started = time.perf_counter()
    router.add_graded(
        [q for q, late in zip(data.train_queries, later) if late],
        scores,
        data.train_vectors[later],
    )
    seconds = time.perf_counter() - started
    after = router.predict_proba(data.test_queries, data.test_vectors)
    return _AddedLater(before, after, seconds)


def _train_sample(data: GradedData, size: int, seed: int) -> GradedData:
    """A random subset of `size` training queries (the test split is unchanged)."""
    if not 20 <= size <= len(data.train_queries):
        raise ConfigError(
            f"--train-sample {size}: expected 20 to {len(data.train_queries)} training queries"
        )
    rows = np.sort(np.random.default_rng(seed).choice(len(data.train_queries), size, replace=False))
    return dataclasses.replace(
        data,
        train_queries=[data.train_queries[r] for r in rows],
        train_scores=data.train_scores[rows],
        train_vectors=data.train_vectors[rows],
    )


def _unit(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return out
