"""`Router.fit`: learn from labelled queries everything that makes decisions better.

What is learned, in order (each step on data the previous one did not train on):

1. a linear head over query embeddings (multinomial logistic regression), trained on the
   routes' own utterances plus the labelled in-scope queries;
2. the fusion weights of dense / sparse / rule / head scores (a conditional logit over each
   query's candidates), on held-out head scores: cross-fitting over the labelled queries, or
   a separate `validation` set when one is given;
3. the confidence map: a logistic score of (softmax probability, cosine, BM25 fraction)
   followed by isotonic calibration, so `confidence` is P(the chosen route is right);
4. the threshold, by the chosen objective, with out-of-scope queries weighted to the
   out-of-scope rate the user expects in production (the labelled set's own rate otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .calibration import IsotonicCalibrator, expected_calibration_error
from .errors import ConfigError, RouteNotFoundError
from .scoring.model import FEATURES, ConfidenceModel, LinearHead, ScoringModel
from .text import tokenize

if TYPE_CHECKING:
    from .router import Router, _Built

__all__ = [
    "FitReport",
    "HeldOut",
    "Objective",
    "choose_threshold",
    "fit_router",
    "train_linear_head",
]

Objective = Literal["accuracy", "precision", "oos_recall", "in_scope_loss"]


@dataclass(frozen=True)
class HeldOut:
    """Decisions on data the scorer did not train on: what thresholds are chosen from."""

    confidence: NDArray[np.float64]
    correct: NDArray[np.float64]
    out_of_scope: NDArray[np.bool_]


@dataclass(frozen=True)
class FitReport:
    """What `fit` learned and how it did on the data it held out."""

    n_queries: int
    n_out_of_scope: int
    method: str
    weights: dict[str, float]
    threshold: float
    objective: str
    expected_oos_rate: float
    held_out: HeldOut
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0

    def threshold_for(
        self,
        objective: Objective,
        target: float | None = None,
        expected_oos_rate: float | None = None,
    ) -> float:
        """The threshold another objective would pick on the same held-out decisions.

        Apply it with `Router.set_threshold`; no refitting needed.
        """
        rate = self.expected_oos_rate if expected_oos_rate is None else expected_oos_rate
        _check_objective(objective, target, rate)
        held = self.held_out
        y = np.where(held.out_of_scope, -1, 0)
        return choose_threshold(
            held.confidence,
            held.correct,
            held.out_of_scope,
            _oos_weights(y, rate),
            objective,
            target,
        )


def fit_router(
    router: Router,
    queries: Sequence[str],
    labels: Sequence[str | None],
    embeddings: ArrayLike | None = None,
    *,
    validation: tuple[Sequence[str], Sequence[str | None]]
    | tuple[Sequence[str], Sequence[str | None], ArrayLike]
    | None = None,
    objective: Objective = "accuracy",
    target: float | None = None,
    expected_oos_rate: float | None = None,
    learn_head: bool = True,
    folds: int = 2,
    l2: float = 1e-5,
    max_iter: int = 300,
    seed: int = 0,
) -> FitReport:
    """Fit `router` on labelled queries (label None means out of scope).

    Args:
        router: A built router.
        queries: Labelled queries.
        labels: Route name per query, or None for out-of-scope queries.
        embeddings: Precomputed query embeddings (else the router encodes the queries).
        validation: Optional (queries, labels[, embeddings]) held out for fusion weights,
            calibration and threshold; without it, `folds`-fold cross-fitting is used.
        objective: "accuracy" (including out-of-scope queries answered by the fallback),
            "precision" (accepted decisions right at least `target` of the time, maximum
            coverage), "oos_recall" (reject at least `target` of out-of-scope queries) or
            "in_scope_loss" (reject as much as possible while losing at most `target` of the
            in-scope queries that would be routed right; it depends on in-scope data only,
            so it holds when the out-of-scope rate in production differs from the labels').
        target: The precision, out-of-scope recall or in-scope loss for those objectives.
        expected_oos_rate: Share of out-of-scope traffic expected in production; weights
            the held-out out-of-scope queries (default: their share in the labelled data).
        learn_head: Learn the linear head (else only fusion weights, calibration, threshold).
        folds: Cross-fitting folds when no `validation` set is given.
        l2: L2 penalty of the linear head.
        max_iter: L-BFGS iterations for the head.
        seed: Seed for fold assignment.
    """
    started = time.perf_counter()
    built = router._require_built()
    _check_objective(objective, target, expected_oos_rate)
    vectors, y = _labelled(router, built, queries, labels, embeddings)
    if validation is not None:
        v_vectors, v_y = _labelled(router, built, *_unpack(validation))
        head = _train_head(built, vectors, y, l2, max_iter) if learn_head else None
        held = _held_out_features(router, built, [validation[0]], [v_vectors], [head])
        held_y, method = v_y, "validation"
        final_head = head
    else:
        if folds < 2:
            raise ConfigError(f"folds must be >= 2 for cross-fitting, got {folds}")
        fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
        heads = [
            _train_head(built, vectors[fold_of != f], y[fold_of != f], l2, max_iter)
            if learn_head
            else None
            for f in range(folds)
        ]
        parts = [np.flatnonzero(fold_of == f) for f in range(folds)]
        held = _held_out_features(
            router,
            built,
            [[queries[i] for i in p.tolist()] for p in parts],
            [vectors[p] for p in parts],
            heads,
        )
        held_y, method = np.concatenate([y[p] for p in parts]), f"{folds}-fold cross-fitting"
        final_head = _train_head(built, vectors, y, l2, max_iter) if learn_head else None

    candidates, features = held
    weights = _fit_fusion(features, candidates, held_y, has_head=final_head is not None)
    oos_rate = float(np.mean(held_y < 0)) if expected_oos_rate is None else expected_oos_rate
    sample_weight = _oos_weights(held_y, oos_rate)
    confidence_model, top_conf, correct = _fit_confidence(
        features, candidates, held_y, weights, sample_weight
    )
    threshold = choose_threshold(top_conf, correct, held_y < 0, sample_weight, objective, target)
    model = ScoringModel(
        weights=weights,
        head=final_head,
        confidence_model=confidence_model,
        metadata={"threshold": threshold, "objective": objective, "expected_oos_rate": oos_rate},
    )
    router._set_model(model)
    in_scope = held_y >= 0
    return FitReport(
        n_queries=len(y),
        n_out_of_scope=int((y < 0).sum()),
        method=method,
        weights={name: float(w) for name, w in zip(FEATURES, weights)},
        threshold=threshold,
        objective=objective,
        expected_oos_rate=oos_rate,
        held_out=HeldOut(top_conf, correct, held_y < 0),
        metrics={
            "in_scope_top1_accuracy": float(correct[in_scope].mean()) if in_scope.any() else 0.0,
            "ece_in_scope": expected_calibration_error(top_conf[in_scope], correct[in_scope]),
        },
        duration_s=time.perf_counter() - started,
    )


def _check_objective(objective: str, target: float | None, oos_rate: float | None) -> None:
    if objective not in ("accuracy", "precision", "oos_recall", "in_scope_loss"):
        raise ConfigError(
            f"objective must be accuracy, precision, oos_recall or in_scope_loss, got {objective!r}"
        )
    if objective != "accuracy" and (target is None or not 0.0 < target <= 1.0):
        raise ConfigError(f"objective {objective!r} needs target in (0, 1], got {target!r}")
    if oos_rate is not None and not 0.0 <= oos_rate < 1.0:
        raise ConfigError(f"expected_oos_rate must be in [0, 1), got {oos_rate!r}")


def _unpack(validation: tuple[Any, ...]) -> tuple[Sequence[str], Sequence[str | None], Any]:
    if len(validation) == 2:
        return validation[0], validation[1], None
    if len(validation) == 3:
        return validation[0], validation[1], validation[2]
    raise ConfigError("validation must be (queries, labels) or (queries, labels, embeddings)")


def _labelled(
    router: Router,
    built: _Built,
    queries: Sequence[str],
    labels: Sequence[str | None],
    embeddings: ArrayLike | None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    from .router import _check_embeddings, _check_query

    if len(queries) != len(labels):
        raise ConfigError(f"{len(queries)} queries but {len(labels)} labels")
    if len(queries) < 2:
        raise ConfigError("fit needs at least 2 labelled queries")
    for query in queries:
        _check_query(query)
    index = {route.name: i for i, route in enumerate(built.routes)}
    unknown = sorted({str(label) for label in labels if label is not None and label not in index})
    if unknown:
        raise RouteNotFoundError(f"labels name unknown route(s): {', '.join(unknown[:10])}")
    y = np.array([-1 if label is None else index[label] for label in labels], dtype=np.int64)
    dimension = built.prototypes.shape[1]
    if embeddings is None:
        vectors = router.encode(list(queries))
    else:
        vectors = _check_embeddings(embeddings, dimension, single=False)
        if len(vectors) != len(queries):
            raise ConfigError(f"{len(queries)} queries but {len(vectors)} embeddings")
    return vectors, y


def _train_head(
    built: _Built, vectors: NDArray[np.float32], y: NDArray[np.int64], l2: float, max_iter: int
) -> LinearHead:
    in_scope = y >= 0
    x = np.vstack([built.utterance_vectors, vectors[in_scope]])
    labels = np.concatenate([built.utterance_owner, y[in_scope]])
    return train_linear_head(x, labels, len(built.routes), l2=l2, max_iter=max_iter)


def train_linear_head(
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    n_classes: int,
    *,
    l2: float = 1e-5,
    max_iter: int = 300,
) -> LinearHead:
    """Multinomial logistic regression by L-BFGS on float32 matrices (mean loss + l2/2 |W|²)."""
    from scipy.optimize import minimize

    n, d = x.shape
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0

    def loss_and_grad(flat: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w = flat[: d * n_classes].reshape(d, n_classes).astype(np.float32)
        b = flat[d * n_classes :].astype(np.float32)
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), y] + 1e-12).mean() + 0.5 * l2 * float((w * w).sum())
        g = (p - onehot) / n
        grad = np.concatenate([(x.T @ g + l2 * w).ravel(), g.sum(axis=0)])
        return float(loss), grad.astype(np.float64)

    result = minimize(
        loss_and_grad,
        np.zeros(d * n_classes + n_classes),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter},
    )
    w = result.x[: d * n_classes].reshape(d, n_classes)
    return LinearHead(
        weights=np.ascontiguousarray(w.T, dtype=np.float32),
        bias=result.x[d * n_classes :].astype(np.float32),
    )


def _held_out_features(
    router: Router,
    built: _Built,
    query_parts: Sequence[Sequence[str]],
    vector_parts: Sequence[NDArray[np.float32]],
    heads: Sequence[LinearHead | None],
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    from .router import _rule_columns

    candidate_parts, feature_parts = [], []
    for queries, vectors, head in zip(query_parts, vector_parts, heads):
        scoped = replace(built, model=replace(built.model, head=head))
        tokens = [tokenize(q) for q in queries]
        fired = router._fired_rules(scoped, queries, tokens)
        candidates, dense = router._candidates(scoped, vectors, fired)
        sparse = scoped.bm25.normalized_many(tokens, candidates)
        rule = _rule_columns(fired, candidates, len(queries), len(scoped.routes))
        features = router._features(scoped, vectors, candidates, dense, sparse, rule)
        candidate_parts.append(
            np.tile(np.arange(len(scoped.routes)), (len(queries), 1))
            if candidates is None
            else candidates
        )
        feature_parts.append(features.stacked())
    return np.concatenate(candidate_parts), np.concatenate(feature_parts)


def _fit_fusion(
    features: NDArray[np.float64],
    candidates: NDArray[np.int64],
    y: NDArray[np.int64],
    *,
    has_head: bool,
) -> NDArray[np.float64]:
    """Weights maximising the likelihood of the true route among each query's candidates."""
    from scipy.optimize import minimize

    position = (candidates == y[:, None]).argmax(axis=1)
    usable = (y >= 0) & (candidates == y[:, None]).any(axis=1)
    f, target = features[usable], position[usable]
    active = np.array([True, True, True, True, has_head])
    if not usable.any():
        return np.array([0.64, 0.29, 0.0, 0.07, 0.0])

    def loss_and_grad(w_active: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w = np.zeros(len(FEATURES))
        w[active] = w_active
        z = f @ w
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(f)), target] + 1e-12).mean() + 1e-4 * float(w @ w)
        chosen = f[np.arange(len(f)), target]
        expected = np.einsum("nk,nkf->nf", p, f)
        grad = (expected - chosen).mean(axis=0) + 2e-4 * w
        return float(loss), grad[active]

    start = np.array([10.0, 5.0, 1.0, 1.0, 1.0])[active]
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B")
    weights = np.zeros(len(FEATURES))
    weights[active] = result.x
    return weights


def _oos_weights(y: NDArray[np.int64], oos_rate: float) -> NDArray[np.float64]:
    """Sample weights giving out-of-scope queries the share `oos_rate` of the total weight."""
    weights = np.ones(len(y))
    oos = y < 0
    n_oos, n_in = int(oos.sum()), int((~oos).sum())
    if n_oos and n_in and oos_rate > 0:
        weights[oos] = oos_rate / (1.0 - oos_rate) * n_in / n_oos
    return weights


def _fit_confidence(
    features: NDArray[np.float64],
    candidates: NDArray[np.int64],
    y: NDArray[np.int64],
    weights: NDArray[np.float64],
    sample_weight: NDArray[np.float64],
) -> tuple[ConfidenceModel, NDArray[np.float64], NDArray[np.float64]]:
    from sklearn.linear_model import LogisticRegression

    scores = features @ weights
    top = scores.argmax(axis=1)  # same ranking as routing: fused score
    rows = np.arange(len(y))
    shifted = scores - scores[rows, top][:, None]
    log_p_top = -np.log(np.exp(shifted).sum(axis=1))
    x = np.column_stack([log_p_top, features[rows, top, 0], features[rows, top, 1]])
    correct = (candidates[rows, top] == y).astype(np.float64)
    if correct.min() == correct.max():
        coefficients = np.array([1.0, 0.0, 0.0, 0.0])
    else:
        logistic = LogisticRegression(C=10.0, max_iter=1000)
        logistic.fit(x, correct, sample_weight=sample_weight)
        coefficients = np.concatenate([logistic.coef_[0], logistic.intercept_])
    placeholder = ConfidenceModel(coefficients, IsotonicCalibrator())
    raw = placeholder.raw(x[:, 0], x[:, 1], x[:, 2])
    calibrator = IsotonicCalibrator().fit(raw, correct, sample_weight=sample_weight)
    model = ConfidenceModel(coefficients, calibrator)
    return model, calibrator.transform(raw), correct


def choose_threshold(
    confidence: NDArray[np.float64],
    correct: NDArray[np.float64],
    out_of_scope: NDArray[np.bool_],
    sample_weight: NDArray[np.float64],
    objective: Objective,
    target: float | None,
) -> float:
    """The confidence threshold that best meets `objective` on held-out decisions.

    Accepting a query scores when its top route is right; rejecting scores when it is out of
    scope. Candidate thresholds are the observed confidences (ties resolved consistently).
    """
    levels = np.unique(np.concatenate([[0.0], confidence, [1.0 + 1e-9]]))
    accept = confidence[None, :] >= levels[:, None]  # (levels, n)
    w = sample_weight[None, :]
    right_accepts = (accept * correct[None, :] * w).sum(axis=1)
    right_rejects = (~accept * out_of_scope[None, :] * w).sum(axis=1)
    if objective == "accuracy":
        best = int(np.argmax(right_accepts + right_rejects))
        return float(min(levels[best], 1.0))
    assert target is not None
    if objective == "precision":
        accepted = (accept * w).sum(axis=1)
        precision = np.divide(
            right_accepts, accepted, out=np.ones_like(accepted), where=accepted > 0
        )
        feasible = np.flatnonzero(precision >= target)
        index = int(feasible[0]) if len(feasible) else len(levels) - 1
    elif objective == "oos_recall":
        oos_total = float((out_of_scope * sample_weight).sum())
        recall = right_rejects / oos_total if oos_total else np.ones(len(levels))
        feasible = np.flatnonzero(recall >= target)
        index = int(feasible[0]) if len(feasible) else len(levels) - 1
    else:
        in_scope = ~out_of_scope
        lost = ((~accept) * (correct * in_scope)[None, :]).sum(axis=1) / max(int(in_scope.sum()), 1)
        index = int(np.flatnonzero(lost <= target)[-1])
    return float(min(levels[index], 1.0))
