"""Turning scores into probabilities: isotonic calibration and its quality metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import ConfigError

__all__ = [
    "IsotonicCalibrator",
    "SigmoidCalibrator",
    "brier_score",
    "calibrator_from_dict",
    "expected_calibration_error", "reliability_bins"]


class IsotonicCalibrator:
    """Monotone map from a score to P(correct), fitted by isotonic regression.

    Fitting uses scikit-learn's `IsotonicRegression`. Its step function is then made strictly
    increasing by interpolating between the weighted centres of its blocks (centred isotonic
    regression): the probabilities are the same on average, but nearby scores no longer
    collapse into one value, so thresholds can be placed finely. Routing only calls
    `np.interp`; scores outside the fitted range are clipped to its ends.

    Example:
        >>> import numpy as np
        >>> scores = np.linspace(0, 1, 200)
        >>> correct = (scores > 0.5).astype(float)
        >>> calibrator = IsotonicCalibrator().fit(scores, correct)
        >>> float(calibrator.transform([0.1])[0]), float(calibrator.transform([0.9])[0])
        (0.0, 1.0)
    """

    def __init__(self) -> None:
        """Create an unfitted calibrator."""
        self.x_: NDArray[np.float64] = np.zeros(0)
        self.y_: NDArray[np.float64] = np.zeros(0)

    @property
    def is_fitted(self) -> bool:
        """True once `fit` has run."""
        return len(self.x_) > 0

    def fit(
        self, scores: ArrayLike, correct: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> IsotonicCalibrator:
        """Fit on pairs (score, 1 if the decision was right else 0)."""
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(scores, dtype=np.float64)
        y = np.asarray(correct, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
            raise ConfigError("calibration needs two equal-length 1-D arrays of at least 2 items")
        w = (
            np.ones_like(x)
            if sample_weight is None
            else np.asarray(sample_weight, dtype=np.float64)
        )
        regression = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        fitted = regression.fit(x, y, sample_weight=w).predict(x)
        levels, block = np.unique(fitted, return_inverse=True)
        block_weight = np.bincount(block, weights=w)
        centres = np.bincount(block, weights=w * x) / block_weight
        order = np.argsort(centres)
        self.x_ = np.concatenate([[x.min()], centres[order], [x.max()]])
        self.y_ = np.concatenate([[levels[order][0]], levels[order], [levels[order][-1]]])
        return self

    def transform_values(self, scores: list[float]) -> list[float]:
        """`transform` of a few Python floats."""
        values: list[float] = self.transform(scores).tolist()
        return values

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities for `scores` (any shape)."""
        x = np.asarray(scores, dtype=np.float64)
        if not self.is_fitted:
            return np.clip(x, 0.0, 1.0)
        return np.interp(x, self.x_, self.y_)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {"kind": "isotonic", "x": self.x_.tolist(), "y": self.y_.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsotonicCalibrator:
        """Inverse of `to_dict`."""
        calibrator = cls()
        calibrator.x_ = np.asarray(data["x"], dtype=np.float64)
        calibrator.y_ = np.asarray(data["y"], dtype=np.float64)
        return calibrator


class SigmoidCalibrator:
    """The logistic map of a score that is already a log-odds (Platt scaling's output).

    Used when too few samples back an isotonic fit: smooth, strictly increasing, and kept in
    [`epsilon`, 1 - `epsilon`]: from n samples, Laplace's rule of succession gives
    ``epsilon = 1 / (n + 2)``, so a handful of examples can never claim certainty.

    Example:
        >>> float(SigmoidCalibrator().transform([0.0])[0])
        0.5
        >>> round(float(SigmoidCalibrator(epsilon=1 / 12).transform([50.0])[0]), 3)
        0.917
    """

    def __init__(self, epsilon: float = 1e-4) -> None:
        """A logistic map kept `epsilon` away from 0 and 1."""
        if not 0.0 <= epsilon < 0.5:
            raise ConfigError(f"epsilon must be in [0, 0.5), got {epsilon!r}")
        self.epsilon = float(epsilon)

    @property
    def is_fitted(self) -> bool:
        """Always True: the map has no parameters of its own."""
        return True

    def transform(self, scores: ArrayLike) -> NDArray[np.float64]:
        """P(correct) for log-odds `scores` (any shape)."""
        x = np.clip(np.asarray(scores, dtype=np.float64), -30.0, 30.0)
        out: NDArray[np.float64] = np.clip(
            1.0 / (1.0 + np.exp(-x)), self.epsilon, 1.0 - self.epsilon
        )
        return out

    def transform_values(self, scores: list[float]) -> list[float]:
        """`transform` of a few Python floats (one query's candidates: cheaper than arrays)."""
        low, high, exp = self.epsilon, 1.0 - self.epsilon, math.exp
        out = []
        for x in scores:
            p = 1.0 / (1.0 + exp(-x)) if -30.0 < x < 30.0 else (0.0 if x <= -30.0 else 1.0)
            out.append(low if p < low else high if p > high else p)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {"kind": "sigmoid", "epsilon": self.epsilon}


def calibrator_from_dict(data: dict[str, Any]) -> IsotonicCalibrator | SigmoidCalibrator:
    """The calibrator saved by `to_dict` (either kind)."""
    if data.get("kind") == "sigmoid":
        return SigmoidCalibrator(float(data.get("epsilon", 1e-4)))
    return IsotonicCalibrator.from_dict(data)


def reliability_bins(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> list[tuple[float, float, float, int]]:
    """Equal-width bins of confidence: (lower edge, mean confidence, accuracy, count) each."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            bins.append((float(edges[b]), float(conf[mask].mean()), float(hit[mask].mean()), count))
    return bins


def expected_calibration_error(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> float:
    """ECE: mean |accuracy - confidence| over equal-width bins, weighted by bin size."""
    conf = np.asarray(confidence, dtype=np.float64)
    if len(conf) == 0:
        return 0.0
    bins = reliability_bins(conf, correct, n_bins)
    return float(sum(count * abs(acc - mean) for _, mean, acc, count in bins) / len(conf))


def brier_score(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Mean squared error between confidence and the 0/1 outcome."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    return float(np.mean((conf - hit) ** 2)) if len(conf) else 0.0
