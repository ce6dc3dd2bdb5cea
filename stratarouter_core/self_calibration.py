"""Calibration from the routes themselves, at `build_index()`: no labelled queries needed.

A route's examples are labelled data. Each example is routed as a query against the router
without it (leave-one-out: its route's prototype and BM25 document lose it), which shows what
an in-scope query scores and how often the best route is right. The same example routed with
its whole route held out is a query the router cannot answer: that shows what an
out-of-scope query scores. From those two samples the router learns

1. the temperature of the fusion weights (the direction stays the configured one), so the
   softmax over routes is a likelihood;
2. the confidence map, P(best route is right) from the best route's softmax probability,
   cosine and BM25 fraction: a logistic model, then isotonic regression on top once there
   are enough samples (below `ISOTONIC_MIN_SAMPLES` isotonic overfits, and the logistic
   model's own probability is used);
3. the default threshold: reject as much as possible while losing at most
   `DEFAULT_IN_SCOPE_LOSS` of the examples that are routed right (needs in-scope data only;
   the lower of the empirical quantile and one from a normal fit of the confidences'
   log-odds, which small samples estimate better).

Out-of-scope queries count as much in total as in-scope ones by default (each example gives
one of each), so confidence assumes as much out-of-scope traffic as in-scope:
`RouterConfig.expected_oos_rate` states another share (lower: higher confidence in scope).
A router with a single route, or no route with two utterances, has nothing to learn from: it
keeps the uncalibrated default (confidence = fused score, threshold 0.5).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from .fitting import (
    CandidateScores,
    choose_threshold,
    fit_confidence,
    fit_temperature,
    oos_sample_weights,
)
from .pipeline import RouterState, features, relative_sparse, score_parts
from .scoring.model import Features, ScoringModel
from .text import tokenize

__all__ = [
    "DEFAULT_IN_SCOPE_LOSS",
    "MAX_SAMPLES",
    "SelfCalibration",
    "calibrate_from_routes",
]

DEFAULT_IN_SCOPE_LOSS = 0.05
HELD_OUT_REJECTION = 0.95
MAX_SAMPLES = 4_000  # examples routed leave-one-out; more adds time, not accuracy


@dataclass(frozen=True)
class SelfCalibration:
    """What `build_index` learned from the route examples (kept in the model's metadata)."""

    in_scope_samples: int
    out_of_scope_samples: int
    top1_accuracy: float  # leave-one-out: how often an example's own route ranks first
    temperature: float
    threshold: float


def calibrate_from_routes(
    state: RouterState,
    *,
    in_scope_loss: float = DEFAULT_IN_SCOPE_LOSS,
    oos_rate: float = 0.5,
    max_samples: int = MAX_SAMPLES,
    seed: int = 0,
) -> ScoringModel:
    """The state's model with a confidence map and threshold learned from its own examples.

    Args:
        state: The built router state (its model supplies the fusion direction).
        in_scope_loss: Share of the right-routed examples the default threshold may reject.
        oos_rate: Share of out-of-scope traffic the confidence assumes: held-out-route
            examples get that share of the calibration weight.
        max_samples: At most this many examples are routed (an even share of each route's).
        seed: Seed of that sample.

    Returns `state.model` unchanged when the routes give nothing to learn from.
    """
    samples = _leave_one_out(state, max_samples, seed)
    if samples is None:
        return state.model
    in_scope, out_of_scope = samples
    if len(in_scope.target) < 2:
        return state.model
    weights = state.model.weights
    temperature = fit_temperature(in_scope, weights)
    scaled = weights * temperature
    both = in_scope.concatenate(out_of_scope)
    labels = np.concatenate([in_scope.target, np.full(len(out_of_scope.target), -1)])
    is_oos = labels < 0
    sample_weight = oos_sample_weights(is_oos, oos_rate)
    confidence_model, confidence, correct = fit_confidence(both, labels, scaled, sample_weight)
    threshold = min(
        choose_threshold(
            confidence, correct, is_oos, sample_weight, "in_scope_loss", in_scope_loss
        ),
        _smooth_quantile(confidence[(correct > 0) & ~is_oos], in_scope_loss),
        # No stricter than needed: past rejecting nearly every held-out-route example (which
        # looks more in scope than most out-of-scope traffic), more rejection costs in-scope.
        _upper_quantile(confidence[is_oos], HELD_OUT_REJECTION),
    )
    report = SelfCalibration(
        in_scope_samples=int((~is_oos).sum()),
        out_of_scope_samples=int(is_oos.sum()),
        top1_accuracy=float(correct[~is_oos].mean()),
        temperature=float(temperature),
        threshold=threshold,
    )
    return ScoringModel(
        weights=scaled,
        head=None,
        confidence_model=confidence_model,
        metadata={
            "threshold": threshold,
            "calibrated_from": "routes",
            "objective": "in_scope_loss",
            "target": in_scope_loss,
            "expected_oos_rate": oos_rate,
            "self_calibration": dataclasses.asdict(report),
        },
    )


def _leave_one_out(
    state: RouterState, max_samples: int, seed: int
) -> tuple[CandidateScores, CandidateScores] | None:
    """Every sampled example's score parts with it left out, as in-scope and OOS samples."""
    n_routes = len(state.routes)
    if n_routes < 2:
        return None
    owner = state.utterance_owner
    per_route = np.bincount(owner, minlength=n_routes)
    rows = _sample_rows(owner, per_route, max_samples, seed)
    texts = [u for route in state.routes for u in route.utterances]
    queries = [texts[i] for i in rows.tolist()]
    vectors = state.utterance_vectors[rows]
    parts = score_parts(state, queries, vectors)
    parts_features = features(state, vectors, parts, head=None)
    columns = (
        np.broadcast_to(np.arange(n_routes), (len(rows), n_routes))
        if parts.candidates is None
        else parts.candidates
    )
    own = owner[rows]
    dense = np.array(parts_features.dense, dtype=np.float64)
    sparse = np.array(parts_features.sparse, dtype=np.float64)
    # Leave each example out of its own route: the prototype without it, the BM25 document
    # without its words. The cosine to a mean of K-1 examples understates the cosine a new
    # query gets to the mean of all K (a mean of fewer unit vectors is longer, and the cosine
    # divides by its length): the expected dot product with the route's mean is the same, so
    # the left-out mean's dot product is divided by the length of the full mean instead.
    starts = np.concatenate([[0], np.cumsum(per_route)[:-1]])  # utterances grouped by route
    sums = np.add.reduceat(state.utterance_vectors.astype(np.float64), starts, axis=0)
    counts = per_route[own].astype(np.float64)
    remaining = sums[own] - vectors
    has_rest = (per_route[own] > 1) & (np.linalg.norm(remaining, axis=1) > 1e-6)
    full_mean_length = np.linalg.norm(sums, axis=1)[own] / counts
    left_out_dot = np.einsum("ij,ij->i", remaining, vectors) / np.maximum(counts - 1, 1)
    own_dense = np.clip(left_out_dot / np.maximum(full_mean_length, 1e-12), -1.0, 1.0)
    own_sparse = np.array(
        [state.bm25.normalized_without(int(r), tokenize(q)) for r, q in zip(own, queries)]
    )
    position = columns == own[:, None]
    found = position.any(axis=1)
    sample, slot = np.nonzero(position)
    dense[sample, slot] = own_dense[sample]
    sparse[sample, slot] = own_sparse[sample]
    parts_of_all = Features(dense, sparse, relative_sparse(sparse), parts.rule, None)
    stacked = parts_of_all.stacked().astype(np.float64, copy=False)
    in_rows = np.flatnonzero(has_rest & found)
    in_scope = CandidateScores(
        stacked[in_rows], np.asarray(columns)[in_rows], position[in_rows].argmax(axis=1)
    )
    # The same examples with their whole route held out: the best route is always wrong.
    # (An example whose only scored route is its own has no other route to be sent to.)
    oos_rows = np.flatnonzero((~position).any(axis=1))
    out_of_scope = CandidateScores(
        stacked[oos_rows],
        np.asarray(columns)[oos_rows],
        np.full(len(oos_rows), -1),
        excluded=position[oos_rows],
    )
    return in_scope, out_of_scope


def _upper_quantile(confidence: NDArray[np.float64], share: float) -> float:
    """The smallest threshold rejecting `share` of `confidence` (1.0 when there are none)."""
    if not len(confidence):
        return 1.0
    return float(np.quantile(confidence, share, method="higher")) + 1e-12


def _smooth_quantile(confidence: NDArray[np.float64], share: float) -> float:
    """The `share` quantile of confidences from a normal fit of their log-odds.

    With a few dozen examples the empirical quantile of a few percent is the smallest one
    or two values, which sit above the true quantile on average: a fitted tail does not.
    """
    if len(confidence) < 2:
        return 0.0
    clipped = np.clip(confidence, 1e-6, 1 - 1e-6)
    log_odds = np.log(clipped / (1 - clipped))
    quantile = float(log_odds.mean()) + NormalDist().inv_cdf(share) * float(log_odds.std(ddof=1))
    return float(0.5 * (1.0 + np.tanh(0.5 * quantile)))


def _sample_rows(
    owner: NDArray[np.int64], per_route: NDArray[np.int64], max_samples: int, seed: int
) -> NDArray[np.int64]:
    """All utterances, or an even share of each route's when there are more than `max_samples`."""
    if len(owner) <= max_samples:
        return np.arange(len(owner))
    rng = np.random.default_rng(seed)
    quota = max(2, max_samples // len(per_route))
    starts = np.concatenate([[0], np.cumsum(per_route)[:-1]])
    picked = [
        start + np.sort(rng.choice(count, min(count, quota), replace=False))
        for start, count in zip(starts.tolist(), per_route.tolist())
        if count
    ]
    return np.concatenate(picked).astype(np.int64)

