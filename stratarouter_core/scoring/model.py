"""Fusion of the score parts and the map from fused scores to calibrated confidence.

Per query and candidate route the pipeline computes five features:

- ``dense``: cosine between the query and the route prototype;
- ``sparse``: BM25 as a fraction of what the query could reach;
- ``sparse_rel``: ``sparse`` relative to the best route for that query;
- ``rule``: 1 when a keyword or pattern of the route matched;
- ``head``: the logit of a linear head learned by `Router.fit` (0 before).

The fused score is their weighted sum. Its scale is a softmax temperature learned at
`build_index` from the route examples (or weights learned by `fit`); the confidence is a
calibrated P(right) of the candidate's fused score and softmax probability (`ConfidenceModel`).
A router with nothing to calibrate from (one route) reports the fused score clipped to
[0, 1]: monotone, but not a probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..calibration import IsotonicCalibrator, SigmoidCalibrator, calibrator_from_dict
from ..config import FusionWeights
from ..errors import InvalidQueryError

__all__ = [
    "FEATURES",
    "ConfidenceModel",
    "Features",
    "FusedScorer",
    "LinearHead",
    "ScoringModel",
    "gathered_dot",
]

FEATURES = ("dense", "sparse", "sparse_rel", "rule", "head")
FloatArray = NDArray[np.floating[Any]]  # float32 (cosines, logits) or float64 (BM25)


class Features(NamedTuple):
    """The score parts of each query's candidates: arrays of shape (n, k), in FEATURES order.

    A named tuple, cheap to build on the hot path; iterating gives the parts in FEATURES order.
    """

    dense: FloatArray
    sparse: FloatArray
    sparse_rel: FloatArray | None  # None: not computed (only ranking needs it)
    rule: FloatArray | None  # None: no rule fired for any query
    head: FloatArray | None  # None: no learned head, or not computed

    def stacked(self) -> FloatArray:
        """All parts as one (n, k, len(FEATURES)) array, absent parts as zeros."""
        zeros = np.zeros_like(self.dense)
        return np.stack([zeros if p is None else p for p in self], axis=-1)


_GATHER_CHUNK_FLOATS = 1 << 22


def gathered_dot(
    matrix: NDArray[np.float32], ids: NDArray[np.int64], vectors: NDArray[np.float32]
) -> NDArray[np.float32]:
    """``out[n, k] = matrix[ids[n, k]] @ vectors[n]``, gathering at most ~16 MB at a time."""
    if len(ids) == 1:  # route(): one matrix-vector product
        one: NDArray[np.float32] = (matrix[ids[0]] @ vectors[0])[None, :]
        return one
    rows_per_chunk = max(1, _GATHER_CHUNK_FLOATS // max(1, ids.shape[1] * matrix.shape[1]))
    if len(ids) <= rows_per_chunk:  # (n, k, d) @ (n, d, 1): batched matmul, cheaper than einsum
        single: NDArray[np.float32] = (matrix[ids] @ vectors[:, :, None])[:, :, 0]
        return single
    out = np.empty(ids.shape, dtype=np.float32)
    for begin in range(0, len(ids), rows_per_chunk):
        end = begin + rows_per_chunk
        out[begin:end] = (matrix[ids[begin:end]] @ vectors[begin:end, :, None])[:, :, 0]
    return out


CONFIDENCE_FEATURES = ("log_p", "score", "bias")
_PYTHON_SOFTMAX_MAX = 32  # up to this many scored routes, a Python sum beats numpy calls


@dataclass
class LinearHead:
    """A learned linear scorer over query embeddings: one weight vector and bias per route."""

    weights: NDArray[np.float32]  # (n_routes, dimension)
    bias: NDArray[np.float32]  # (n_routes,)

    def logits(
        self, vectors: NDArray[np.float32], candidates: NDArray[np.int64] | None
    ) -> NDArray[np.float32]:
        """Logits of every route (candidates None), or of each query's candidate routes."""
        if candidates is None:
            out: NDArray[np.float32] = vectors @ self.weights.T + self.bias
            return out
        return gathered_dot(self.weights, candidates, vectors) + self.bias[candidates]


@dataclass
class ConfidenceModel:
    """Maps a candidate's fused score to P(it is the right route): logistic, then calibrator.

    The logistic score is ``a * log_p + b * score + c`` with a, b >= 0, where ``score`` is
    the candidate's fused score and ``log_p`` its log softmax probability among the query's
    candidates: increasing in the fused score, so a query's candidates are as confident as
    they are ranked. The calibrator is isotonic regression on that score when enough samples
    backed it, else the logistic probability itself (`SigmoidCalibrator`).
    """

    coefficients: NDArray[np.float64]  # over CONFIDENCE_FEATURES
    calibrator: IsotonicCalibrator | SigmoidCalibrator
    _terms: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Python floats: numpy scalars make every small-array product slower on the hot path.
        self._terms = tuple(float(c) for c in self.coefficients)

    def raw(self, log_p: FloatArray, score: FloatArray) -> FloatArray:
        """The uncalibrated confidence score (a log-odds)."""
        log_p_weight, score_weight, bias = self._terms
        out: FloatArray = log_p * log_p_weight
        out += score * score_weight
        out += bias
        return out

    def probability(self, log_p: FloatArray, score: FloatArray) -> FloatArray:
        """Calibrated P(correct): the raw score through the calibrator."""
        return self.calibrator.transform(self.raw(log_p, score))

    def probability_of_one(self, log_p: list[float], score: list[float]) -> FloatArray:
        """`probability` of one query's candidates given as Python floats: shape (1, t)."""
        log_p_weight, score_weight, bias = self._terms
        raw = [log_p_weight * lp + score_weight * sc + bias for lp, sc in zip(log_p, score)]
        return np.array([self.calibrator.transform_values(raw)])

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {"coefficients": self.coefficients.tolist(), "calibrator": self.calibrator.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfidenceModel:
        """Inverse of `to_dict`."""
        return cls(
            np.asarray(data["coefficients"], dtype=np.float64),
            calibrator_from_dict(data["calibrator"]),
        )


@dataclass
class ScoringModel:
    """Fusion weights, optional learned head, and the confidence map.

    Example:
        >>> import numpy as np
        >>> model = ScoringModel.default(FusionWeights())
        >>> zeros = np.zeros((1, 2))
        >>> dense = np.array([[0.9, 0.1]])  # a strong dense match for the first candidate
        >>> features = Features(dense, zeros, zeros, None, None)
        >>> scores = model.fuse(features)
        >>> confidence = model.confidence(scores, scores)
        >>> bool(scores[0, 0] > scores[0, 1]) and bool(confidence[0, 0] > confidence[0, 1])
        True
    """

    weights: NDArray[np.float64]  # over FEATURES
    head: LinearHead | None = None
    confidence_model: ConfidenceModel | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def default(cls, weights: FusionWeights) -> ScoringModel:
        """The unfitted model: configured weights, no head, confidence = clipped fused score."""
        return cls(np.array([weights.dense, weights.sparse, 0.0, weights.rule, 0.0]))

    @property
    def is_fitted(self) -> bool:
        """True once `Router.fit` has learned a confidence model."""
        return self.confidence_model is not None

    def fuse(self, features: Features) -> FloatArray:
        """Fused scores, shape (n, k): the weighted sum of the score parts."""
        fused: FloatArray | None = None
        for weight, part in zip(self.weights.tolist(), features):
            if weight and part is not None:
                fused = weight * part if fused is None else fused + weight * part
        return np.zeros_like(features.dense) if fused is None else fused

    def confidence(self, fused: FloatArray, ranked: FloatArray) -> FloatArray:
        """Confidence of the ranked candidates.

        Args:
            fused: Fused scores of every scored candidate, (n, k); they normalise the softmax.
            ranked: Fused scores of the candidates to report, best first, (n, t).
        """
        if self.confidence_model is None:
            return np.clip(ranked, 0.0, 1.0)
        # ranked is best first: its first column is each row's maximum.
        if len(ranked) == 1:  # route(): a handful of Python floats beat numpy calls on them
            scores = ranked.tolist()[0]
            best, row = scores[0], fused[0]
            if len(row) <= _PYTHON_SOFTMAX_MAX:
                exp = math.exp
                total = sum([exp(value - best) for value in row.tolist()])
            else:
                total = float(np.exp(row - best).sum())
            log_normaliser = best + math.log(total)
            return self.confidence_model.probability_of_one(
                [score - log_normaliser for score in scores], scores
            )
        top = ranked[:, :1]
        log_normalisers = np.log(np.exp(fused - top).sum(axis=1, keepdims=True))
        log_normalisers += top
        log_p = ranked - log_normalisers
        return self.confidence_model.probability(log_p, ranked)


@dataclass(frozen=True)
class FusedScorer:
    """`ScoringModel.fuse` for the routing hot path, with its linear parts folded together.

    The dense cosine and the head logit are both linear in the query vector, so over every
    route their weighted sum is one matrix product: ``v @ (w_dense * prototypes + w_head *
    head.weights).T``. The two BM25 parts are one BM25 row scaled per query. A query then costs
    one matrix-vector product and a few vector operations, whatever the number of features.
    Over preselected candidates, the index has already computed the cosines: only the head
    (if any) is gathered.

    Example:
        >>> import numpy as np
        >>> model = ScoringModel.default(FusionWeights())
        >>> prototypes = np.eye(2, dtype=np.float32)
        >>> scorer = FusedScorer.compile(model, prototypes)
        >>> query, sparse = np.array([[1.0, 0.0]], dtype=np.float32), np.array([[0.5, 0.0]])
        >>> expected = model.fuse(Features(query @ prototypes.T, sparse, sparse / 0.5, None, None))
        >>> bool(np.allclose(scorer.fuse(query, None, None, sparse, None), expected))
        True
    """

    matrix: NDArray[np.float32]  # (n_routes, dimension): w_dense * prototypes + w_head * head
    offset: NDArray[np.float32] | None  # (n_routes,): w_head * head bias
    head: LinearHead | None  # the learned head, for candidates (None when unused)
    head_weight: float
    dense_weight: float
    sparse_weight: float
    sparse_rel_weight: float
    rule_weight: float
    matrix_t: NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix_t", self.matrix.T)  # a view, kept to skip one per call

    @classmethod
    def compile(cls, model: ScoringModel, prototypes: NDArray[np.float32]) -> FusedScorer:
        """Fold `model`'s weights, head and the route `prototypes` into one scorer."""
        dense, sparse, sparse_rel, rule, head_weight = model.weights.tolist()
        head = model.head if head_weight else None
        matrix, offset = dense * prototypes, None
        if head is not None:
            matrix = matrix + head_weight * head.weights
            offset = (head_weight * head.bias).astype(np.float32)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        return cls(matrix, offset, head, head_weight, dense, sparse, sparse_rel, rule)

    def fuse(
        self,
        vectors: NDArray[np.float32],
        candidates: NDArray[np.int64] | None,
        dense: FloatArray | None,
        sparse: FloatArray,
        rule: FloatArray | None,
    ) -> FloatArray:
        """Fused scores of every route (candidates None) or of each query's candidates.

        Args:
            vectors: Normalised query vectors, (n, dimension).
            candidates: Route ids to score per query, (n, k), or None for every route.
            dense: The candidates' cosines, (n, k); None with candidates None.
            sparse: Normalised BM25 of the scored routes, (n, k or n_routes).
            rule: 1 where a scored route's rule fired, same shape, or None when none fired.
        """
        if candidates is None:
            fused: FloatArray = vectors @ self.matrix_t
            if self.offset is not None:
                fused += self.offset
        elif dense is None:
            raise InvalidQueryError("fuse: preselected candidates need their cosines (dense)")
        else:
            fused = dense * self.dense_weight
            if self.head is not None:
                fused += self.head_weight * self.head.logits(vectors, candidates)
        if self.sparse_weight or self.sparse_rel_weight:
            # sparse_rel is sparse over the query's best BM25 among the scored routes; a row
            # whose best is 0 is all zeros, so a tiny floor keeps it 0.
            scale: FloatArray | float
            if len(fused) == 1:  # route(): Python scalars, cheaper than (1, 1) arrays
                scale = self.sparse_rel_weight / max(float(sparse.max()), 1e-12)
            else:
                best = sparse.max(axis=1, keepdims=True)
                scale = self.sparse_rel_weight / np.maximum(best, 1e-12)
            scale += self.sparse_weight
            fused += sparse * scale
        if rule is not None and self.rule_weight:
            fused += self.rule_weight * rule
        return fused
