"""Fusion of the score parts and the map from fused scores to calibrated confidence.

Per query and candidate route the pipeline computes five features:

- ``dense``: cosine between the query and the route prototype;
- ``sparse``: BM25 as a fraction of what the query could reach;
- ``sparse_rel``: ``sparse`` relative to the best route for that query;
- ``rule``: 1 when a keyword or pattern of the route matched;
- ``head``: the logit of a linear head learned by `Router.fit` (0 before).

The fused score is their weighted sum. Before `fit`, weights come from `FusionWeights` and the
confidence is the fused score itself, clipped to [0, 1] (a monotone default, not yet a
probability). After `fit`, the fused scores go through a softmax over the candidates, and the
confidence is an isotonic calibration of a learned combination of the candidate's softmax
probability, cosine and BM25 fraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..calibration import IsotonicCalibrator
from ..config import FusionWeights

__all__ = ["FEATURES", "ConfidenceModel", "Features", "LinearHead", "ScoringModel"]

FEATURES = ("dense", "sparse", "sparse_rel", "rule", "head")
FloatArray = NDArray[np.floating[Any]]  # float32 (cosines, logits) or float64 (BM25)


@dataclass(frozen=True)
class Features:
    """The score parts of each query's candidates: arrays of shape (n, k), in FEATURES order."""

    dense: FloatArray
    sparse: FloatArray
    sparse_rel: FloatArray
    rule: FloatArray | None  # None: no rule fired for any query
    head: FloatArray | None  # None: no learned head

    def parts(self) -> tuple[FloatArray | None, ...]:
        """The arrays in FEATURES order (None for absent parts)."""
        return (self.dense, self.sparse, self.sparse_rel, self.rule, self.head)

    def stacked(self) -> FloatArray:
        """All parts as one (n, k, len(FEATURES)) array, absent parts as zeros."""
        zeros = np.zeros_like(self.dense)
        return np.stack([zeros if p is None else p for p in self.parts()], axis=-1)

    def take(self, rows: NDArray[np.int64], columns: NDArray[np.int64]) -> Features:
        """The parts at the given (row, column) positions."""
        dense, sparse, sparse_rel, rule, head = (
            None if p is None else p[rows, columns] for p in self.parts()
        )
        assert dense is not None and sparse is not None and sparse_rel is not None
        return Features(dense, sparse, sparse_rel, rule, head)


CONFIDENCE_FEATURES = ("log_p", "dense", "sparse", "bias")


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
        rows = self.weights[candidates]  # (n, k, d): only the candidates' rows
        gathered: NDArray[np.float32] = np.einsum("nkd,nd->nk", rows, vectors)
        return gathered + self.bias[candidates]


@dataclass
class ConfidenceModel:
    """Maps candidate features to P(correct): a linear score, then isotonic calibration."""

    coefficients: NDArray[np.float64]  # over CONFIDENCE_FEATURES
    calibrator: IsotonicCalibrator

    def raw(self, log_p: FloatArray, dense: FloatArray, sparse: FloatArray) -> FloatArray:
        """The uncalibrated confidence score."""
        c = self.coefficients
        out: NDArray[np.float64] = c[0] * log_p + c[1] * dense + c[2] * sparse + c[3]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {"coefficients": self.coefficients.tolist(), "calibrator": self.calibrator.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfidenceModel:
        """Inverse of `to_dict`."""
        return cls(
            np.asarray(data["coefficients"], dtype=np.float64),
            IsotonicCalibrator.from_dict(data["calibrator"]),
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
        >>> confidence = model.confidence(scores, scores, features)
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
        for weight, part in zip(self.weights.tolist(), features.parts()):
            if weight and part is not None:
                fused = weight * part if fused is None else fused + weight * part
        return np.zeros_like(features.dense) if fused is None else fused

    def confidence(self, fused: FloatArray, ranked: FloatArray, parts: Features) -> FloatArray:
        """Confidence of the ranked candidates.

        Args:
            fused: Fused scores of every scored candidate, (n, k); they normalise the softmax.
            ranked: Fused scores of the candidates to report, (n, t).
            parts: Score parts of those candidates, (n, t) each.
        """
        if self.confidence_model is None:
            return np.clip(ranked, 0.0, 1.0)
        top = fused.max(axis=1, keepdims=True)
        log_normaliser = top + np.log(np.exp(fused - top).sum(axis=1, keepdims=True))
        raw = self.confidence_model.raw(ranked - log_normaliser, parts.dense, parts.sparse)
        return self.confidence_model.calibrator.transform(raw)
