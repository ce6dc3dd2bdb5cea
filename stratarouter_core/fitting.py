"""The learners shared by `fit` and the calibration from the routes.

Each works on `CandidateScores` (the score parts of held-out queries' scored routes) and knows
nothing of the Router: the linear head, the fusion weights or their temperature, the
confidence map, and the threshold chosen by an objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from .calibration import IsotonicCalibrator, SigmoidCalibrator
from .errors import InfeasibleTargetError
from .scoring.model import FEATURES, ConfidenceModel, LinearHead

__all__ = [
    "ISOTONIC_MIN_SAMPLES",
    "CandidateScores",
    "Objective",
    "choose_threshold",
    "fit_confidence",
    "fit_fusion",
    "fit_temperature",
    "oos_sample_weights",
    "train_linear_head",
]

Objective = Literal["accuracy", "precision", "oos_recall", "in_scope_loss"]

# scikit-learn's advice: isotonic regression overfits below about a thousand samples. Below,
# the logistic confidence model's own probability (Platt scaling) is the calibrated output.
ISOTONIC_MIN_SAMPLES = 1_000
LOGISTIC_C = 1.0  # scikit-learn's default penalty, when too few samples to choose one
LOGISTIC_CS = (0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class CandidateScores:
    """Score parts of each query's scored routes, and where the right route is among them.

    Attributes:
        features: (n, k, len(FEATURES)) score parts of each query's k scored routes.
        candidates: (n, k) route ids of those columns.
        target: (n,) column of the right route, -1 when it is not among them (or none is).
        excluded: (n, k) True where a route must not be chosen (a held-out route), or None.
    """

    features: NDArray[np.float64]
    candidates: NDArray[np.int64]
    target: NDArray[np.int64]
    excluded: NDArray[np.bool_] | None = None

    def fused(self, weights: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fused scores (n, k); excluded routes at -inf."""
        scores: NDArray[np.float64] = self.features @ weights
        if self.excluded is not None:
            scores = np.where(self.excluded, -np.inf, scores)
        return scores

    def concatenate(self, other: CandidateScores) -> CandidateScores:
        """Both sets of queries, in order (same number of columns)."""
        def mask(part: CandidateScores) -> NDArray[np.bool_]:
            if part.excluded is None:
                return np.zeros(part.candidates.shape, dtype=bool)
            return part.excluded

        return CandidateScores(
            np.concatenate([self.features, other.features]),
            np.concatenate([self.candidates, other.candidates]),
            np.concatenate([self.target, other.target]),
            np.concatenate([mask(self), mask(other)]),
        )


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


def _softmax_loss(
    scores: NDArray[np.float64], target: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per query: -log softmax(scores)[target] and the softmax itself."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(len(p)), target] + 1e-12), p


def fit_temperature(samples: CandidateScores, weights: NDArray[np.float64]) -> float:
    """The scale of `weights` under which the softmax over routes best predicts the right one.

    The direction of the weights is kept: this is a one-parameter maximum likelihood fit.
    """
    from scipy.optimize import minimize_scalar

    usable = samples.target >= 0
    if not usable.any():
        return 1.0
    base = samples.fused(weights)[usable]
    target = samples.target[usable]

    def loss(log_scale: float) -> float:
        return float(_softmax_loss(base * np.exp(log_scale), target)[0].mean())

    result = minimize_scalar(loss, bounds=(np.log(0.1), np.log(1000.0)), method="bounded")
    return float(np.exp(result.x))


def fit_fusion(samples: CandidateScores, *, has_head: bool) -> NDArray[np.float64]:
    """Weights maximising the likelihood of the true route among each query's candidates."""
    from scipy.optimize import minimize

    usable = samples.target >= 0
    active = np.array([True, True, True, True, has_head])
    if not usable.any():
        return np.array([0.64, 0.29, 0.0, 0.07, 0.0])
    f, target = samples.features[usable], samples.target[usable]
    rows = np.arange(len(f))

    def loss_and_grad(w_active: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w = np.zeros(len(FEATURES))
        w[active] = w_active
        losses, p = _softmax_loss(f @ w, target)
        chosen = f[rows, target]
        expected = np.einsum("nk,nkf->nf", p, f)
        grad = (expected - chosen).mean(axis=0) + 2e-4 * w
        return float(losses.mean()) + 1e-4 * float(w @ w), grad[active]

    start = np.array([10.0, 5.0, 1.0, 1.0, 1.0])[active]
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B")
    weights = np.zeros(len(FEATURES))
    weights[active] = result.x
    return weights


def fit_confidence(
    samples: CandidateScores,
    labels: NDArray[np.int64],
    weights: NDArray[np.float64],
    sample_weight: NDArray[np.float64],
) -> tuple[ConfidenceModel, NDArray[np.float64], NDArray[np.float64]]:
    """P(the best route is right) from its fused score and softmax probability.

    A logistic model over those two (slopes >= 0), then isotonic regression on its score once
    there are
    `ISOTONIC_MIN_SAMPLES` samples (below, the logistic probability itself). Returns the
    model, each sample's calibrated confidence and whether its best route was right.
    `labels` < 0 marks out-of-scope samples, whose best route is never right.
    """
    scores = samples.fused(weights)
    top = scores.argmax(axis=1)  # same ranking as routing: fused score
    rows = np.arange(len(scores))
    shifted = scores - scores[rows, top][:, None]
    log_p_top = -np.log(np.exp(shifted).sum(axis=1))
    x = np.column_stack([log_p_top, scores[rows, top]])
    correct = ((labels >= 0) & (top == samples.target)).astype(np.float64)
    if correct.min() == correct.max():
        coefficients = np.array([1.0, 0.0, 0.0])
    else:
        coefficients = _monotone_logistic(x, correct, sample_weight)
    placeholder = ConfidenceModel(coefficients, SigmoidCalibrator())
    raw = placeholder.raw(x[:, 0], x[:, 1])
    calibrator: IsotonicCalibrator | SigmoidCalibrator
    if len(raw) >= ISOTONIC_MIN_SAMPLES and correct.min() != correct.max():
        calibrator = IsotonicCalibrator().fit(raw, correct, sample_weight=sample_weight)
    else:  # n samples cannot show a probability beyond (n + 1) / (n + 2): Laplace's rule
        calibrator = SigmoidCalibrator(epsilon=1.0 / (len(raw) + 2))
    model = ConfidenceModel(coefficients, calibrator)
    return model, calibrator.transform(raw), correct


def _monotone_logistic(
    x: NDArray[np.float64], y: NDArray[np.float64], sample_weight: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Weighted L2 logistic regression with non-negative slopes: [slopes..., intercept].

    The features are standardised, so the penalty treats each alike whatever its range; the
    slopes stay >= 0 so the confidence cannot decrease as a candidate's fused score
    increases. The penalty strength is chosen among `LOGISTIC_CS` by cross-validated log
    loss on the same samples (the smallest C within noise of the best: prefer smooth).
    """
    centre, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    z = (x - centre) / scale
    w = sample_weight / sample_weight.mean()
    # Enough samples make the penalty immaterial (and isotonic regression follows).
    c = LOGISTIC_C if len(y) >= ISOTONIC_MIN_SAMPLES else _cross_validated_c(z, y, w)
    theta = _logistic_fit(z, y, w, c)
    slopes = theta[:-1] / scale
    return np.concatenate([slopes, [theta[-1] - slopes @ centre]])


def _logistic_fit(
    z: NDArray[np.float64],
    y: NDArray[np.float64],
    w: NDArray[np.float64],
    c: float,
    start: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Penalised weighted logistic regression by projected Newton steps (slopes >= 0).

    A handful of parameters: Newton converges in a few steps, without an optimiser's overhead.
    The intercept is not penalised; a slope that would turn negative is held at 0.
    """
    design = np.column_stack([z, np.ones(len(z))])
    n_params = design.shape[1]
    ridge = np.full(n_params, 1.0 / c)
    ridge[-1] = 0.0
    theta = np.zeros(n_params) if start is None else start.copy()
    free = np.ones(n_params, dtype=bool)
    for _ in range(50):
        p = 0.5 * (1.0 + np.tanh(0.5 * (design @ theta)))  # the logistic, without overflow
        gradient = design.T @ (w * (p - y)) + ridge * theta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + np.diag(ridge + 1e-9)
        step = np.zeros(n_params)
        step[free] = np.linalg.solve(hessian[np.ix_(free, free)], gradient[free])
        updated = theta - step
        negative = np.flatnonzero(updated[:-1] < 0)
        if len(negative):
            updated[negative] = 0.0
            free[negative] = False
        elif np.abs(step).max() < 1e-8:
            theta = updated
            break
        theta = updated
    return theta


def _cross_validated_c(
    z: NDArray[np.float64], y: NDArray[np.float64], w: NDArray[np.float64]
) -> float:
    minority = int(min(y.sum(), len(y) - y.sum()))
    folds = min(3, minority)
    if folds < 2:
        return LOGISTIC_C
    rng = np.random.default_rng(0)
    fold_of = np.empty(len(y), dtype=np.int64)
    for label in (0.0, 1.0):  # stratified: each fold sees both outcomes
        rows = np.flatnonzero(y == label)
        fold_of[rows] = rng.permutation(len(rows)) % folds
    losses = []
    warm: list[NDArray[np.float64] | None] = [None] * folds
    for c in LOGISTIC_CS:
        total = 0.0
        for f in range(folds):
            train, test = fold_of != f, fold_of == f
            theta = _logistic_fit(z[train], y[train], w[train], c, warm[f])
            warm[f] = theta
            logit = z[test] @ theta[:-1] + theta[-1]
            total += float(w[test] @ (np.logaddexp(0.0, logit) - y[test] * logit))
        losses.append(total / float(w.sum()))
    best = min(losses)
    return next(c for c, loss in zip(LOGISTIC_CS, losses) if loss <= best * 1.01)


def oos_sample_weights(out_of_scope: NDArray[np.bool_], oos_rate: float) -> NDArray[np.float64]:
    """Sample weights giving out-of-scope samples the share `oos_rate` of the total weight."""
    weights = np.ones(len(out_of_scope))
    n_oos, n_in = int(out_of_scope.sum()), int((~out_of_scope).sum())
    if n_oos and n_in and oos_rate > 0:
        weights[out_of_scope] = oos_rate / (1.0 - oos_rate) * n_in / n_oos
    return weights


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

    Raises:
        InfeasibleTargetError: No threshold that accepts anything meets `target` (precision,
            out-of-scope recall), naming the best value that can be reached.
    """
    levels = np.unique(np.concatenate([[0.0], confidence, [1.0 + 1e-9]]))
    accept = confidence[None, :] >= levels[:, None]  # (levels, n)
    w = sample_weight[None, :]
    right_accepts = (accept * correct[None, :] * w).sum(axis=1)
    right_rejects = (~accept * out_of_scope[None, :] * w).sum(axis=1)
    if objective == "accuracy" or target is None:
        best = int(np.argmax(right_accepts + right_rejects))
        return float(min(levels[best], 1.0))
    accepted = (accept * w).sum(axis=1)
    if objective == "precision":
        reached = np.divide(
            right_accepts, accepted, out=np.zeros_like(accepted), where=accepted > 0
        )
    elif objective == "oos_recall":
        oos_total = float((out_of_scope * sample_weight).sum())
        if not oos_total:
            raise InfeasibleTargetError("oos_recall needs out-of-scope queries (label None)")
        reached = np.where(accepted > 0, right_rejects / oos_total, 0.0)
    else:
        in_scope = ~out_of_scope
        lost = ((~accept) * (correct * in_scope)[None, :]).sum(axis=1) / max(int(in_scope.sum()), 1)
        index = int(np.flatnonzero(lost <= target)[-1])  # level 0 rejects nothing: always there
        return float(min(levels[index], 1.0))
    feasible = np.flatnonzero(reached >= target)
    if not len(feasible):
        raise InfeasibleTargetError(
            f"no threshold reaches {objective} {target:g} on the held-out queries while "
            f"accepting any (best reachable: {float(reached.max()):.3f}); lower the target "
            "or add labelled data"
        )
    return float(min(levels[int(feasible[0])], 1.0))
