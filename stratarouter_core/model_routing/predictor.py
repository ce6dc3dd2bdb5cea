"""Per-model success probabilities: ridge scores + neighbourhood profiles, stacked, calibrated.

For every model, p_success(query) estimates the expected graded quality of its answer (for 0/1
grades, the probability that it is right). Three kinds of evidence feed a per-model logistic
stacker:

1. a ridge regression of the model's grade on the embedding (one per model);
2. neighbourhood profiles: the softmax-weighted mean grade of the model in the k-means
   clusters near the query, at three granularities (what kNN routers capture,
   at the cost of a few hundred dot products instead of a pass over the training set);
3. the query length in tokens (log).

The calibrated result is then updated with the grades of the most similar graded queries
(see `evidence`), so that a near copy of a graded query is answered from its grades, and, for a
query whose exact text was graded, with those grades (see `repeats`).

Everything the stacker and the calibrator see is cross-fitted: each training query's features
come from ridge models and clusters fitted without its fold, and the calibrator is fitted on
the stacker's out-of-fold outputs. Each hyper-parameter (ridge strength per model, softmax
temperature per granularity, stacker strength per model, calibration method per model) is the
candidate with the best cross-validated loss on the training data.

Prediction is a single matrix product with the embedding (ridge weights and centroids side by
side), two softmaxes, a (features x models) product and one interpolation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..calibration import IsotonicCalibrator
from .evidence import GradedIndex, GradedNeighbours, fit_graded_neighbours
from .kmeans import member_sums, row_steps, spherical_kmeans
from .repeats import GradedRepeats, fit_graded_repeats
from .types import ModelRouterConfig

__all__ = ["FitDiagnostics", "Prediction", "SuccessModel", "fit_success_model"]

F64 = NDArray[np.float64]
_ISOTONIC_MIN = 1000  # scikit-learn's advice: isotonic overfits below ~1,000 samples
_EPS = 1e-6


class Prediction(NamedTuple):
    """What `SuccessModel.predict` returns for a batch."""

    p_success: F64  # (n, M)
    nearest_graded_similarity: F64  # (n,) cosine to the nearest graded query (NaN: no index)


@dataclass(frozen=True)
class SuccessModel:
    """The fitted predictor: arrays only, so that saving and loading are exact."""

    ridge_weights: F64  # (d, M)
    ridge_bias: F64  # (M,)
    centroids: tuple[F64, ...]  # per granularity (K, d), unit norm
    profiles: tuple[F64, ...]  # per granularity (K, M): smoothed mean grade per cluster
    temperatures: tuple[float, ...]  # per granularity
    stack_weights: F64  # (F, M) over [ridge (M), profiles (M each), log tokens], unscaled
    stack_bias: F64  # (M,)
    platt: F64  # (2, M): slope and intercept on the stacker's logit (1, 0 = none)
    isotonic_models: tuple[int, ...]  # models calibrated by isotonic regression
    isotonic_x: F64  # their tables, model j's on [2j - 0.5, 2j + 1.5] (see _isotonic_tables)
    isotonic_y: F64
    evidence: GradedNeighbours | None = None  # the graded-neighbour update, when CV kept it
    graded_counts: F64 | None = None  # (M,) graded queries per model (None: saves before it)
    repeats: GradedRepeats | None = None  # grades of the graded texts, when the stage is on
    index: GradedIndex | None = None  # the graded queries searched (None: saves before it)
    mean_grades: F64 | None = None  # (M,) mean graded quality per model (None: saves before it)

    def __post_init__(self) -> None:
        """Fold the stages into the few arrays `predict` uses (see `_Compiled`), and the
        bounds of p_success (see `_succession_bounds`)."""
        object.__setattr__(self, "_compiled", _Compiled.build(self))
        object.__setattr__(self, "_bounds", _succession_bounds(self.graded_counts, self.n_models))

    @property
    def _searched(self) -> int:
        """Graded neighbours searched per query: the update's, or the nearest one alone."""
        return 1 if self.evidence is None else self.evidence.neighbours

    @property
    def n_models(self) -> int:
        """Number of models predicted."""
        return int(self.ridge_bias.shape[0])

    def predict(
        self, vectors: NDArray[np.floating[Any]], log_tokens: F64, texts: Sequence[str]
    ) -> Prediction:
        """p_success (n, M) for unit-norm `vectors` (n, d), log(1 + prompt tokens) (n,) and
        the query `texts` (n), and each query's cosine to its nearest graded query.

        In steps of bounded memory: each row takes a product with every centroid.
        """
        c: _Compiled = self._compiled  # type: ignore[attr-defined]
        steps = row_steps(len(vectors), c.projection.shape[1])
        if len(steps) <= 1:  # none for an empty batch
            p, similarity = self._predict(vectors, log_tokens)
        else:
            parts = [self._predict(vectors[s], log_tokens[s]) for s in steps]
            p = np.concatenate([part for part, _ in parts])
            similarity = np.concatenate([near for _, near in parts])
        if self.repeats is not None:
            p = self.repeats.update(p, texts)
        low, high = self._bounds  # type: ignore[attr-defined]
        return Prediction(np.clip(p, low, high), similarity)

    def _predict(self, vectors: NDArray[np.floating[Any]], log_tokens: F64) -> tuple[F64, F64]:
        c: _Compiled = self._compiled  # type: ignore[attr-defined]
        scores = np.asarray(vectors, dtype=np.float32) @ c.projection + c.offset
        m = c.n_models
        weighted = np.exp(scores[:, m:]) @ c.mixer  # (n, G*M + G)
        g = c.n_granularities
        sums = weighted[:, g * m :]
        logits = scores[:, :m] + c.token_weight * log_tokens[:, None]
        for j in range(g):
            logits += weighted[:, j * m : (j + 1) * m] / sums[:, j : j + 1]
        p = _expit(logits * c.slope + c.intercept)
        if c.isotonic:
            raw = _expit(logits[:, c.isotonic])
            p[:, c.isotonic] = np.interp(raw + c.isotonic_offsets, self.isotonic_x, self.isotonic_y)
        if self.index is None:
            return p, np.full(len(p), np.nan)
        nearest, sims = self.index.search(vectors, self._searched)
        if self.evidence is not None:
            p = self.evidence.update(p, nearest, sims)
        return p, sims.max(axis=1).astype(np.float64)

    def with_graded(
        self, vectors: NDArray[np.floating[Any]], grades: F64, texts: Sequence[str]
    ) -> SuccessModel:
        """This model with more graded queries (unit-norm `vectors` (n, d), `grades` (n, M)
        with NaN where ungraded, their `texts`) in the stages that look graded queries up:
        the neighbour index and update, the graded repeats, and the per-model counts and mean
        grades. The stacked predictor and every fitted parameter stay as they are."""
        index, evidence = self.index, self.evidence
        if index is not None:
            index, order = index.with_vectors(vectors)
            if evidence is not None:
                evidence = evidence.with_grades(grades, order)
        repeats = None if self.repeats is None else self.repeats.with_grades(texts, grades)
        added = (~np.isnan(grades)).sum(axis=0).astype(np.float64)
        counts, means = self.graded_counts, self.mean_grades
        if counts is not None and means is not None:
            totals = means * counts + np.nansum(grades, axis=0)
            means = totals / np.maximum(counts + added, 1.0)
        if counts is not None:
            counts = counts + added
        return replace(
            self,
            index=index,
            evidence=evidence,
            repeats=repeats,
            graded_counts=counts,
            mean_grades=means,
        )

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Arrays for an .npz file (see `from_arrays`)."""
        out: dict[str, NDArray[Any]] = {
            "ridge_weights": self.ridge_weights,
            "ridge_bias": self.ridge_bias,
            "stack_weights": self.stack_weights,
            "stack_bias": self.stack_bias,
            "platt": self.platt,
            "isotonic_x": self.isotonic_x,
            "isotonic_y": self.isotonic_y,
        }
        for g, (centroids, table) in enumerate(zip(self.centroids, self.profiles)):
            out[f"centroids_{g}"] = centroids
            out[f"profile_{g}"] = table
        if self.index is not None:
            out.update(self.index.arrays())
        if self.evidence is not None:
            out.update(self.evidence.arrays())
        if self.mean_grades is not None:
            out["mean_grades"] = self.mean_grades
        if self.graded_counts is not None:
            out["graded_counts"] = self.graded_counts
        if self.repeats is not None:
            out.update(self.repeats.arrays())
        return out

    def scalars(self) -> dict[str, Any]:
        """The JSON-side state (see `from_arrays`)."""
        return {
            "temperatures": list(self.temperatures),
            "isotonic_models": list(self.isotonic_models),
            "n_granularities": len(self.profiles),
            "index": None if self.index is None else {"probe": self.index.probe},
            "evidence": None if self.evidence is None else self.evidence.scalars(),
            "repeats": None if self.repeats is None else self.repeats.scalars(),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, scalars: dict[str, Any]) -> SuccessModel:
        """Inverse of `arrays` + `scalars`."""

        def get(name: str) -> F64:
            return np.asarray(arrays[name], dtype=np.float64)

        granularities = range(int(scalars["n_granularities"]))
        # absent from saves made before the stages existed
        evidence, repeats = scalars.get("evidence"), scalars.get("repeats")
        # saves made before the index was kept apart from the update held it, with its probe,
        # only when the update was on
        index = scalars.get("index", evidence)
        return cls(
            ridge_weights=get("ridge_weights"),
            ridge_bias=get("ridge_bias"),
            centroids=tuple(get(f"centroids_{g}") for g in granularities),
            profiles=tuple(get(f"profile_{g}") for g in granularities),
            temperatures=tuple(float(t) for t in scalars["temperatures"]),
            stack_weights=get("stack_weights"),
            stack_bias=get("stack_bias"),
            platt=get("platt"),
            isotonic_models=tuple(int(m) for m in scalars["isotonic_models"]),
            isotonic_x=get("isotonic_x"),
            isotonic_y=get("isotonic_y"),
            evidence=None if evidence is None else GradedNeighbours.from_arrays(arrays, evidence),
            graded_counts=get("graded_counts") if "graded_counts" in arrays else None,
            repeats=None if repeats is None else GradedRepeats.from_arrays(arrays, repeats),
            index=None if index is None else GradedIndex.from_arrays(arrays, int(index["probe"])),
            mean_grades=get("mean_grades") if "mean_grades" in arrays else None,
        )

    def predict_one(
        self, vector: NDArray[np.floating[Any]], log_tokens: float, text: str
    ) -> tuple[list[float], float | None]:
        """`predict` for one unit-norm vector (d,): the same numbers, fewer array calls (the
        similarity is None without an index)."""
        c: _Compiled = self._compiled  # type: ignore[attr-defined]
        scores = np.asarray(vector, dtype=np.float32) @ c.projection + c.offset
        m, g = c.n_models, c.n_granularities
        weighted = np.exp(scores[m:]) @ c.mixer
        profiles = (weighted[: g * m].reshape(g, m) / weighted[g * m :, None]).sum(axis=0)
        logits = scores[:m] + c.token_weight * log_tokens + profiles
        p = _expit(logits * c.slope + c.intercept)
        if c.isotonic:
            raw = _expit(logits[c.isotonic])
            p[c.isotonic] = np.interp(raw + c.isotonic_offsets, self.isotonic_x, self.isotonic_y)
        similarity = None
        if self.index is not None:
            rows, sims = self.index.search_one(vector, self._searched)
            similarity = float(sims.max())
            if self.evidence is not None:
                p = self.evidence.update_one(p, rows, sims)
        if self.repeats is not None:
            p = self.repeats.update_one(p, text)
        low, high = self._bounds  # type: ignore[attr-defined]
        out: list[float] = np.clip(p, low, high).tolist()
        return out, similarity


@dataclass(frozen=True)
class _Compiled:
    """`SuccessModel` folded for speed; every product that does not depend on the query is done.

    The stacker is linear in the ridge scores, which are linear in the embedding, so that path
    folds into d x M weights. Centroids are pre-divided by their temperature, with -1/T as
    offset, so exp() of the product is the softmax numerator, bounded by 1 (cosines <= 1). The
    profiles pass through the stacker as (profile table @ stacker block), and one `mixer`
    product gives every granularity's weighted sum and its normaliser.
    """

    projection: NDArray[np.float32]  # (d, M + sum K)
    offset: F64  # (M + sum K,)
    mixer: F64  # (sum K, G*M + G)
    token_weight: F64  # (M,)
    slope: F64
    intercept: F64
    isotonic: list[int]
    isotonic_offsets: F64
    n_models: int
    n_granularities: int

    @classmethod
    def build(cls, model: SuccessModel) -> _Compiled:
        m = model.n_models
        g = len(model.profiles)
        w = model.stack_weights
        columns = [model.ridge_weights @ w[:m]]
        offsets = [model.ridge_bias @ w[:m] + model.stack_bias]
        total = sum(t.shape[0] for t in model.profiles)
        mixer = np.zeros((total, g * m + g))
        row = 0
        for j, (centroids, table, temperature) in enumerate(
            zip(model.centroids, model.profiles, model.temperatures)
        ):
            k = table.shape[0]
            columns.append(centroids.T / temperature)
            offsets.append(np.full(k, -1.0 / temperature))
            mixer[row : row + k, j * m : (j + 1) * m] = table @ w[m * (j + 1) : m * (j + 2)]
            mixer[row : row + k, g * m + j] = 1.0
            row += k
        iso = list(model.isotonic_models)
        return cls(
            projection=np.ascontiguousarray(np.concatenate(columns, axis=1), dtype=np.float32),
            offset=np.concatenate(offsets),
            mixer=mixer,
            token_weight=w[m * (g + 1)],
            slope=model.platt[0],
            intercept=model.platt[1],
            isotonic=iso,
            isotonic_offsets=2.0 * np.arange(len(iso), dtype=np.float64),
            n_models=m,
            n_granularities=g,
        )


@dataclass(frozen=True)
class FitDiagnostics:
    """Cross-validated figures and the hyper-parameters chosen, per model (index order)."""

    ridge_strength: list[float]
    temperatures: list[float]
    n_clusters: list[int]
    stacker_c: list[float]
    calibration: list[str]
    cv_brier: list[float]
    cv_ece: list[float]
    cv_p_success: F64  # (n, M) cross-fitted calibrated p_success (NaN where ungraded)
    folds: int
    evidence_temperature: float | None  # None: the graded-neighbour update was left out
    evidence_strength: float | None
    repeat_reliability: float | None  # None: the graded-repeat stage is off
    repeat_reliability_estimated: bool  # chosen by CV on the data's repeats, not the prior
    cross_fold_repeats: int  # training queries whose text was graded in another fold
    cv_nearest_similarity: F64  # (n,) cosine to the nearest graded query in other folds


def fit_success_model(
    vectors: NDArray[np.floating[Any]],
    grades: F64,
    log_tokens: F64,
    texts: Sequence[str],
    config: ModelRouterConfig,
) -> tuple[SuccessModel, FitDiagnostics]:
    """Fit on unit-norm `vectors` (n, d), `grades` (n, M; NaN = ungraded), log token counts
    and the query `texts`."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # The products here are small: BLAS threads mostly spin, and on a shared machine they
    # make the fit several times slower than one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(np.asarray(vectors, dtype=np.float64), grades, log_tokens, texts, config)


def _fit(
    x: F64, grades: F64, log_tokens: F64, texts: Sequence[str], config: ModelRouterConfig
) -> tuple[SuccessModel, FitDiagnostics]:
    known = ~np.isnan(grades)
    n = len(x)
    min_graded = int(known.sum(axis=0).min())
    n_folds = max(2, min(config.folds, min_graded // 2))
    rng = np.random.default_rng(config.seed)
    folds = rng.permutation(n) % n_folds
    ridge_oof, ridge_final, strengths = _ridge(x, grades, known, folds, config)
    blocks = [ridge_oof]
    finals: list[tuple[F64, F64, float]] = []
    sizes = _cluster_sizes(n)
    for k in sizes:
        oof, centroids, table, temperature = _neighbourhood(x, grades, known, folds, k, config)
        blocks.append(oof)
        finals.append((centroids, table, temperature))
    blocks.append(log_tokens[:, None])
    features = np.concatenate(blocks, axis=1)
    stack_folds = np.random.default_rng(config.seed + 1).permutation(n) % n_folds
    stack_w, stack_b, stack_oof, stack_c = _stack(features, grades, known, stack_folds, config)
    platt, iso_models, iso_tables, methods, calibrated = _calibrate(
        stack_oof, grades, known, folds, config
    )
    iso_x, iso_y = _isotonic_tables(iso_tables)
    evidence = fit_graded_neighbours(
        x,
        grades,
        known,
        folds,
        calibrated,
        neighbours=config.evidence_neighbours,
        probe=config.evidence_probe,
        temperatures=config.evidence_temperatures,
        strengths=config.evidence_strengths,
        seed=config.seed,
    )
    counts = known.sum(axis=0).astype(np.float64)
    low, high = _succession_bounds(counts, grades.shape[1])
    repeats = fit_graded_repeats(
        texts,
        grades,
        folds,
        evidence.cv_p_success,
        prior_reliability=config.repeat_reliability,
        reliabilities=config.repeat_reliabilities,
        min_repeats=config.repeat_min_queries,
    )
    calibrated = np.clip(repeats.cv_p_success, low, high)
    stage = evidence.stage
    model = SuccessModel(
        ridge_weights=ridge_final[0],
        ridge_bias=ridge_final[1],
        centroids=tuple(c for c, _, _ in finals),
        profiles=tuple(t for _, t, _ in finals),
        temperatures=tuple(t for _, _, t in finals),
        stack_weights=stack_w,
        stack_bias=stack_b,
        platt=platt,
        isotonic_models=tuple(iso_models),
        isotonic_x=iso_x,
        isotonic_y=iso_y,
        evidence=stage,
        graded_counts=counts,
        repeats=repeats.stage,
        index=evidence.index,
        mean_grades=np.nanmean(grades, axis=0),
    )
    brier, ece = [], []
    from ..calibration import expected_calibration_error

    for m in range(grades.shape[1]):
        rows = known[:, m]
        brier.append(float(np.mean((calibrated[rows, m] - grades[rows, m]) ** 2)))
        ece.append(expected_calibration_error(calibrated[rows, m], grades[rows, m]))
    diagnostics = FitDiagnostics(
        ridge_strength=strengths,
        temperatures=[t for _, _, t in finals],
        n_clusters=list(sizes),
        stacker_c=stack_c,
        calibration=methods,
        cv_brier=brier,
        cv_ece=ece,
        cv_p_success=np.where(known, calibrated, np.nan),
        folds=n_folds,
        evidence_temperature=None if stage is None else stage.temperature,
        evidence_strength=None if stage is None else stage.strength,
        repeat_reliability=None if repeats.stage is None else repeats.stage.reliability,
        repeat_reliability_estimated=repeats.stage is not None and repeats.stage.estimated,
        cross_fold_repeats=repeats.cross_fold_repeats,
        cv_nearest_similarity=evidence.cv_nearest_similarity,
    )
    return model, diagnostics


def _succession_bounds(counts: F64 | None, n_models: int) -> tuple[F64, F64]:
    """[1 / (n + 2), (n + 1) / (n + 2)] per model graded on n queries.

    Laplace's rule of succession after n agreeing grades: no query's p_success claims more
    certainty than all of a model's graded answers could back. A stacker fitted on separable
    grades otherwise says 3e-8 for a model that failed 30 similar queries (and exactly 1.0
    for one that passed them all); with 5,608 graded queries the bounds are 0.0002 / 0.9998.
    """
    if counts is None:
        return np.zeros(n_models), np.ones(n_models)
    return 1.0 / (counts + 2.0), (counts + 1.0) / (counts + 2.0)


# ------------------------------------------------------------------------------ ridge
def _ridge_path(x: F64, y: F64, strengths: tuple[float, ...]) -> list[tuple[F64, F64]]:
    """Ridge solutions for every strength from one eigendecomposition of the centred Gram matrix.

    The (d x d) Gram matrix costs one product over the rows, far less than an SVD of the rows.
    """
    mean = x.mean(axis=0)
    centred = x - mean
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    y_mean = y.mean(axis=0)
    projected = vectors.T @ (centred.T @ (y - y_mean))
    top = float(eigenvalues.max()) if eigenvalues.max() > 0 else 1.0
    out = []
    for strength in strengths:
        w = vectors @ (projected / (eigenvalues + strength * top)[:, None])
        out.append((w, y_mean - mean @ w))
    return out


def _mask_groups(known: NDArray[np.bool_]) -> list[list[int]]:
    """Models graded on exactly the same queries share one SVD per fold."""
    groups: dict[bytes, list[int]] = {}
    for m in range(known.shape[1]):
        groups.setdefault(known[:, m].tobytes(), []).append(m)
    return list(groups.values())


def _ridge(
    x: F64,
    grades: F64,
    known: NDArray[np.bool_],
    folds: NDArray[np.int64],
    config: ModelRouterConfig,
) -> tuple[F64, tuple[F64, F64], list[float]]:
    """Out-of-fold ridge scores (strength per model by CV error) and the final fit."""
    n, n_models = grades.shape
    grid = config.ridge_strengths
    oof = np.zeros((len(grid), n, n_models))
    for models in _mask_groups(known):
        rows_known = known[:, models[0]]
        for f in np.unique(folds):
            train = rows_known & (folds != f)
            held = folds == f
            for g, (w, b) in enumerate(_ridge_path(x[train], grades[train][:, models], grid)):
                oof[g][np.ix_(held, models)] = x[held] @ w + b
    filled = np.where(known, grades, 0.0)
    errors = (((oof - filled) ** 2) * known).sum(axis=1)  # (grid, M)
    best = errors.argmin(axis=0)
    weights = np.zeros((x.shape[1], n_models))
    bias = np.zeros(n_models)
    for models in _mask_groups(known):
        rows = known[:, models[0]]
        path = _ridge_path(x[rows], grades[rows][:, models], grid)
        for j, m in enumerate(models):
            w, b = path[best[m]]
            weights[:, m], bias[m] = w[:, j], b[j]
    chosen = oof[best, :, np.arange(n_models)].T
    return chosen, (weights, bias), [float(grid[g]) for g in best]


# ---------------------------------------------------------------------- neighbourhoods
def _cluster_sizes(n: int) -> list[int]:
    """Coarse, fine and finer granularities (x4 each), at least ten queries per cluster on average.

    The third, finest level (kept after 5-fold CV on a training split: quality at the best
    single model's cost 0.650 -> 0.654, cost saved 63% -> 69%) carries what kNN routers get
    from near neighbours; a fourth (x64, five queries per cluster) did worse (0.653, 62%).
    """
    coarse = round(math.sqrt(n) / 2)
    sizes = sorted({min(k, n // 10) for k in (coarse, 4 * coarse, 16 * coarse)})
    return [k for k in sizes if k >= 2]


def _profile(sims: F64, table: F64, temperature: float) -> F64:
    weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / temperature)
    out: F64 = (weights @ table) / weights.sum(axis=1, keepdims=True)
    return out


def _cluster_means(
    labels: NDArray[np.int64], k: int, grades: F64, known: NDArray[np.bool_], strength: float
) -> F64:
    """Mean grade per cluster and model, shrunk toward the model's mean by `strength` counts."""
    counts = member_sums(labels, known.astype(np.float64), k)
    sums = member_sums(labels, np.where(known, grades, 0.0), k)
    prior = sums.sum(axis=0) / np.maximum(counts.sum(axis=0), 1.0)
    out: F64 = (sums + strength * prior) / (counts + strength)
    return out


def _neighbourhood(
    x: F64,
    grades: F64,
    known: NDArray[np.bool_],
    folds: NDArray[np.int64],
    k: int,
    config: ModelRouterConfig,
) -> tuple[F64, F64, F64, float]:
    """Out-of-fold profiles at the temperature with the lowest CV Brier score, and the final fit.

    The regions come from one k-means over every training vector (no grades); each fold then
    centres them on its own members and fills their table with its own grades, so a held-out
    query's profile uses neither its grade nor its position. One clustering per granularity
    instead of one per fold and granularity: k-means was 70% of the fit, and grows as N^1.5.
    """
    temps = config.temperatures
    oof = np.zeros((len(temps), *grades.shape))
    centroids, labels = spherical_kmeans(x, k, config.seed)
    for f in np.unique(folds):
        train, held = np.nonzero(folds != f)[0], np.nonzero(folds == f)[0]
        sums = member_sums(labels[train], x[train], k)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        # a region with no member in this fold keeps the global centre; its table row is the prior
        fold_centroids = np.where(norms > 0, sums / np.where(norms > 0, norms, 1.0), centroids)
        table = _cluster_means(labels[train], k, grades[train], known[train], config.prior_strength)
        for step in row_steps(len(held), k):
            rows = held[step]
            sims = x[rows] @ fold_centroids.T
            for t, temperature in enumerate(temps):
                oof[t][rows] = _profile(sims, table, temperature)
    filled = np.where(known, grades, 0.0)
    loss = (((oof - filled) ** 2) * known).sum(axis=(1, 2))
    best = int(loss.argmin())
    table = _cluster_means(labels, k, grades, known, config.prior_strength)
    return oof[best], centroids, table, float(temps[best])


# ---------------------------------------------------------------------------- stacker
def _soft_logistic(x: F64, y: F64, c: float, iterations: int = 50) -> tuple[F64, float]:
    """L2 logistic regression on grades in [0, 1] by Newton's method (intercept unpenalised).

    Minimises sum_i [-y_i log p_i - (1 - y_i) log(1 - p_i)] + |w|^2 / (2c), the objective of
    scikit-learn's LogisticRegression(C=c) with soft labels; the few features here make each
    Newton step one small (F x F) solve.
    """
    n, f = x.shape
    if float(y.max() - y.min()) < _EPS:  # a constant grade: nothing to separate
        mean = min(max(float(y.mean()), _EPS), 1 - _EPS)
        return np.zeros(f), math.log(mean / (1 - mean))
    design = np.concatenate([x, np.ones((n, 1))], axis=1)
    penalty = np.full(f + 1, 1.0 / c)
    penalty[-1] = 0.0
    theta = np.zeros(f + 1)
    mean = min(max(float(y.mean()), _EPS), 1 - _EPS)
    theta[-1] = math.log(mean / (1 - mean))

    def objective(t: F64) -> float:
        z = design @ t
        # log(1 + e^z) - y z, computed without overflow
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * t * t))

    current = objective(theta)
    for _ in range(iterations):
        p = _sigmoid(design @ theta)
        gradient = design.T @ (p - y) + penalty * theta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        # halve the step until the objective decreases: near-separable grades with a weak
        # penalty would otherwise overshoot
        for _ in range(30):
            trial = theta - step
            value = objective(trial)
            if value <= current:
                break
            step = step / 2.0
        else:
            break
        theta, current = trial, value
        if float(np.abs(step).max()) < 1e-7:
            break
    return theta[:-1].copy(), float(theta[-1])


def _log_loss(p: F64, y: F64) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _stack(
    features: F64,
    grades: F64,
    known: NDArray[np.bool_],
    folds: NDArray[np.int64],
    config: ModelRouterConfig,
) -> tuple[F64, F64, F64, list[float]]:
    """Per-model stacker (C by CV log loss): folded weights, biases, out-of-fold logits."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > _EPS, scale, 1.0)
    z = (features - mean) / scale
    n, n_models = grades.shape
    weights = np.zeros((features.shape[1], n_models))
    bias = np.zeros(n_models)
    oof_logits = np.zeros((n, n_models))
    chosen = []
    for m in range(n_models):
        rows = known[:, m]
        best: tuple[float, float, F64] | None = None
        for c in config.stacker_c:
            logits = np.zeros(n)
            for f in np.unique(folds):
                train, held = rows & (folds != f), rows & (folds == f)
                w, b = _soft_logistic(z[train], grades[train, m], c)
                logits[held] = z[held] @ w + b
            loss = _log_loss(_sigmoid(logits[rows]), grades[rows, m])
            if best is None or loss < best[0]:
                best = (loss, c, logits)
        assert best is not None
        _, c, oof_logits[:, m] = best
        chosen.append(float(c))
        w, b = _soft_logistic(z[rows], grades[rows, m], c)
        weights[:, m] = w / scale
        bias[m] = b - float(mean / scale @ w)
    return weights, bias, oof_logits, chosen


def _sigmoid(x: F64) -> F64:
    return _expit(x)


@functools.cache
def _load_expit() -> Any:
    from scipy.special import expit  # imported on first use: `import stratarouter_core` stays light

    return expit


def _expit(x: NDArray[np.floating[Any]]) -> F64:
    out: F64 = _load_expit()(np.asarray(x, dtype=np.float64))
    return out


# ------------------------------------------------------------------------ calibration
def _platt(logits: F64, y: F64) -> tuple[float, float]:
    w, b = _soft_logistic(logits[:, None], y, 1e4)
    return (float(w[0]), b) if w.any() else (0.0, b)


def _calibrators(
    logits: F64, y: F64, method: str
) -> tuple[tuple[float, float], IsotonicCalibrator | None]:
    if method == "platt":
        return _platt(logits, y), None
    if method == "isotonic":
        return (1.0, 0.0), IsotonicCalibrator().fit(_sigmoid(logits), y)
    return (1.0, 0.0), None


def _apply(logits: F64, platt: tuple[float, float], iso: IsotonicCalibrator | None) -> F64:
    if iso is not None:
        return iso.transform(_sigmoid(logits))
    return _sigmoid(logits * platt[0] + platt[1])


def _calibrate(
    logits: F64,
    grades: F64,
    known: NDArray[np.bool_],
    folds: NDArray[np.int64],
    config: ModelRouterConfig,
) -> tuple[F64, list[int], list[IsotonicCalibrator], list[str], F64]:
    """Per-model calibration of the stacker's out-of-fold logits (method by CV Brier score)."""
    n_models = grades.shape[1]
    platt = np.array([[1.0] * n_models, [0.0] * n_models])
    iso_models: list[int] = []
    iso_tables: list[IsotonicCalibrator] = []
    methods: list[str] = []
    calibrated = np.zeros_like(logits)
    for m in range(n_models):
        rows = known[:, m]
        x, y = logits[rows, m], grades[rows, m]
        candidates = (
            ["none", "platt"] + (["isotonic"] if rows.sum() >= _ISOTONIC_MIN else [])
            if config.calibration == "auto"
            else [config.calibration]
        )
        best: tuple[float, str, F64] | None = None
        for method in candidates:
            cv = np.zeros_like(x)
            fold = folds[rows]
            for f in np.unique(fold):
                train, held = fold != f, fold == f
                params, iso = _calibrators(x[train], y[train], method)
                cv[held] = _apply(x[held], params, iso)
            brier = float(np.mean((cv - y) ** 2))
            if best is None or brier < best[0] - 1e-12:
                best = (brier, method, cv)
        assert best is not None
        _, method, cv = best
        methods.append(method)
        calibrated[rows, m] = cv
        params, iso = _calibrators(x, y, method)
        platt[:, m] = params
        if iso is not None:
            iso_models.append(m)
            iso_tables.append(iso)
    return platt, iso_models, iso_tables, methods, calibrated


def _isotonic_tables(tables: list[IsotonicCalibrator]) -> tuple[F64, F64]:
    """All isotonic maps in one table: model j's inputs shifted by 2j, padded past [0, 1].

    One `np.interp` then calibrates every isotonic model of a batch at once.
    """
    xs: list[F64] = []
    ys: list[F64] = []
    for j, table in enumerate(tables):
        xs.append(np.concatenate([[-0.5], table.x_, [1.5]]) + 2.0 * j)
        ys.append(np.concatenate([[table.y_[0]], table.y_, [table.y_[-1]]]))
    if not xs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)
