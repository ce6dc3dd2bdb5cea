"""`Router.fit`: learn from labelled queries everything that makes decisions better.

What is learned, in order (each step on data the previous one did not train on):

1. a linear head over query embeddings (multinomial logistic regression), trained on the
   routes' own utterances plus the labelled in-scope queries;
2. the fusion weights of dense / sparse / rule / head scores (a conditional logit over each
   query's candidates), on held-out head scores: cross-fitting over the labelled queries, or
   a separate `validation` set when one is given;
3. the confidence map: a logistic score of (fused score, softmax probability) with
   non-negative slopes, followed by isotonic calibration, so `confidence` is P(the chosen
   route is right) and increases with the fused score;
4. the threshold, by the chosen objective, with out-of-scope queries weighted to the
   out-of-scope rate the user expects in production (the labelled set's own rate otherwise).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .calibration import expected_calibration_error
from .config import FusionWeights
from .errors import ConfigError, RouteNotFoundError
from .fitting import (
    CandidateScores,
    Objective,
    choose_threshold,
    fit_confidence,
    fit_fusion,
    fit_temperature,
    oos_sample_weights,
    train_linear_head,
)
from .pipeline import RouterState, features, score_parts
from .scoring.model import FEATURES, LinearHead, ScoringModel
from .validation import check_embeddings, check_query

if TYPE_CHECKING:
    from .pipeline import RoutingEngine

__all__ = ["FitReport", "HeldOut", "Objective", "choose_threshold", "fit_router"]

MIN_CALIBRATION_SAMPLES = 50  # fewer labelled queries than this: fit warns


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
            oos_sample_weights(y < 0, rate),
            objective,
            target,
        )


def fit_router(
    router: RoutingEngine,
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
    learn_weights: bool | None = None,
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
        learn_weights: Learn the fusion weights. Default: learn them unless
            `RouterConfig.weights` was given, whose direction is then kept (only their scale,
            a softmax temperature, is learned): fit never silently replaces them.
        folds: Cross-fitting folds when no `validation` set is given.
        l2: L2 penalty of the linear head.
        max_iter: L-BFGS iterations for the head.
        seed: Seed for fold assignment.

    Raises:
        InfeasibleTargetError: No threshold meets `target` on the held-out decisions.
    """
    started = time.perf_counter()
    state = router.state
    _check_objective(objective, target, expected_oos_rate)
    if learn_weights is None:
        learn_weights = router.config.weights is None
    vectors, y = _labelled(router, state, queries, labels, embeddings)
    if validation is not None:
        held, held_y, final_head = _validation_scores(
            router, state, vectors, y, validation, learn_head, l2, max_iter
        )
        method = "validation"
    else:
        held, held_y, final_head = _cross_fitted_scores(
            state, queries, vectors, y, learn_head, folds, l2, max_iter, seed
        )
        method = f"{folds}-fold cross-fitting"
    if len(held_y) < MIN_CALIBRATION_SAMPLES:
        warnings.warn(
            f"fit: {len(held_y)} held-out queries calibrate the confidence; with fewer than "
            f"{MIN_CALIBRATION_SAMPLES} it is coarse (a smooth logistic map is used)",
            stacklevel=3,
        )
    prior = _prior_weights(router)
    if learn_weights:
        weights = fit_fusion(held, has_head=final_head is not None)
    else:
        weights = prior * fit_temperature(held, prior)
    oos_rate = float(np.mean(held_y < 0)) if expected_oos_rate is None else expected_oos_rate
    sample_weight = oos_sample_weights(held_y < 0, oos_rate)
    confidence_model, top_conf, correct = fit_confidence(held, held_y, weights, sample_weight)
    threshold = choose_threshold(top_conf, correct, held_y < 0, sample_weight, objective, target)
    model = ScoringModel(
        weights=weights,
        head=final_head,
        confidence_model=confidence_model,
        metadata={
            "threshold": threshold,
            "objective": objective,
            "expected_oos_rate": oos_rate,
            "calibrated_from": "labelled queries",
            "weights_learned": bool(learn_weights),
        },
    )
    router.install_model(model)
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


def _validation_scores(
    router: RoutingEngine,
    state: RouterState,
    vectors: NDArray[np.float32],
    y: NDArray[np.int64],
    validation: tuple[Any, ...],
    learn_head: bool,
    l2: float,
    max_iter: int,
) -> tuple[CandidateScores, NDArray[np.int64], LinearHead | None]:
    """The validation set's scores under a head trained on the labelled queries."""
    v_queries, v_labels, v_embeddings = _unpack(validation)
    v_vectors, v_y = _labelled(router, state, v_queries, v_labels, v_embeddings)
    head = _train_head(state, vectors, y, l2, max_iter) if learn_head else None
    return _held_out_scores(state, [v_queries], [v_vectors], [v_y], [head]), v_y, head


def _cross_fitted_scores(
    state: RouterState,
    queries: Sequence[str],
    vectors: NDArray[np.float32],
    y: NDArray[np.int64],
    learn_head: bool,
    folds: int,
    l2: float,
    max_iter: int,
    seed: int,
) -> tuple[CandidateScores, NDArray[np.int64], LinearHead | None]:
    """Each fold's scores under a head trained on the other folds; the final head on all."""
    if folds < 2:
        raise ConfigError(f"folds must be >= 2 for cross-fitting, got {folds}")
    fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
    parts = [np.flatnonzero(fold_of == f) for f in range(folds)]
    heads = [
        _train_head(state, vectors[fold_of != f], y[fold_of != f], l2, max_iter)
        if learn_head
        else None
        for f in range(folds)
    ]
    held = _held_out_scores(
        state,
        [[queries[i] for i in p.tolist()] for p in parts],
        [vectors[p] for p in parts],
        [y[p] for p in parts],
        heads,
    )
    final_head = _train_head(state, vectors, y, l2, max_iter) if learn_head else None
    return held, np.concatenate([y[p] for p in parts]), final_head


def _prior_weights(router: RoutingEngine) -> NDArray[np.float64]:
    """The configured fusion direction (the default prior when none was configured)."""
    given = router.config.weights or FusionWeights()
    return np.array([given.dense, given.sparse, 0.0, given.rule, 0.0])


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
    router: RoutingEngine,
    state: RouterState,
    queries: Sequence[str],
    labels: Sequence[str | None],
    embeddings: ArrayLike | None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    if len(queries) != len(labels):
        raise ConfigError(f"{len(queries)} queries but {len(labels)} labels")
    if len(queries) < 2:
        raise ConfigError("fit needs at least 2 labelled queries")
    for query in queries:
        check_query(query)
    index = {name: i for i, name in enumerate(state.names)}
    unknown = sorted({str(label) for label in labels if label is not None and label not in index})
    if unknown:
        raise RouteNotFoundError(f"labels name unknown route(s): {', '.join(unknown[:10])}")
    y = np.array([-1 if label is None else index[label] for label in labels], dtype=np.int64)
    dimension = state.prototypes.shape[1]
    if embeddings is None:
        vectors = router.encode(list(queries))
    else:
        vectors = check_embeddings(embeddings, dimension, single=False)
        if len(vectors) != len(queries):
            raise ConfigError(f"{len(queries)} queries but {len(vectors)} embeddings")
    return vectors, y


def _train_head(
    state: RouterState,
    vectors: NDArray[np.float32],
    y: NDArray[np.int64],
    l2: float,
    max_iter: int,
) -> LinearHead:
    in_scope = y >= 0
    x = np.vstack([state.utterance_vectors, vectors[in_scope]])
    labels = np.concatenate([state.utterance_owner, y[in_scope]])
    return train_linear_head(x, labels, len(state.routes), l2=l2, max_iter=max_iter)


def _held_out_scores(
    state: RouterState,
    query_parts: Sequence[Sequence[str]],
    vector_parts: Sequence[NDArray[np.float32]],
    label_parts: Sequence[NDArray[np.int64]],
    heads: Sequence[LinearHead | None],
) -> CandidateScores:
    """The pipeline's score parts of each part's queries, scored with that part's head."""
    scored = []
    for queries, vectors, y, head in zip(query_parts, vector_parts, label_parts, heads):
        parts = score_parts(state, queries, vectors)
        candidates = (
            np.tile(np.arange(len(state.routes)), (len(queries), 1))
            if parts.candidates is None
            else parts.candidates
        )
        hit = candidates == y[:, None]
        target = np.where(hit.any(axis=1) & (y >= 0), hit.argmax(axis=1), -1)
        stacked = features(state, vectors, parts, head).stacked().astype(np.float64)
        scored.append(CandidateScores(stacked, candidates, target))
    held = scored[0]
    for more in scored[1:]:
        held = held.concatenate(more)
    return held


