"""Graded-neighbour evidence: update p_success with the grades of the most similar graded queries.

The stacked predictor (see `predictor`) generalises from regions of the embedding space; it
cannot remember that this very query, or a near copy of it, was graded. This stage does: it
treats the calibrated p_success as a prior worth `strength` graded answers and adds the
grades of the k most similar graded queries, each weighted by exp((cos - 1) / temperature):

    p <- (strength * p + sum_i w_i * grade_i) / (strength + sum_i w_i)

(for each model, over the neighbours graded on it). A repeat of a graded query counts as a
whole graded answer (w = 1); a query at cosine 0.85 counts as exp(-0.15 / T). Temperature and
strength are chosen together by cross-validated Brier score over every model: each training
query is updated from neighbours in other folds, starting from its own cross-fitted p_success.
The stage is kept only when the best candidate's gain over the prior alone is more than twice
its standard error over the training queries (a paired comparison of per-query losses): a
chance improvement on grades that neighbours cannot predict does not switch it on.

The neighbours are searched like an IVF index: the graded queries are grouped by spherical
k-means into about sqrt(N) clusters, and only the members of the query's `probe` nearest
clusters are compared, in fit (cross-validation) and prediction alike. A scan of every graded
vector cost more than the rest of `route()` together (a few MB of vectors per query).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .kmeans import spherical_kmeans

__all__ = ["EvidenceFit", "GradedNeighbours", "fit_graded_neighbours"]

F64 = NDArray[np.float64]
_GATHERED_FLOATS = 1 << 23  # 32 MB of candidate vectors per batch step


@dataclass(frozen=True)
class GradedNeighbours:
    """The graded queries (unit vectors, grades, which are graded) and the update's parameters."""

    vectors: NDArray[np.float32]  # (N, d), grouped by cluster
    grades: F64  # (N, M), 0 where ungraded, same order
    graded: F64  # (N, M), 1.0 where graded
    centroids: NDArray[np.float32]  # (C, d)
    starts: NDArray[np.int64]  # (C + 1,): cluster c's members are rows starts[c]:starts[c + 1]
    probe: int
    neighbours: int
    temperature: float
    strength: float

    def __post_init__(self) -> None:
        """Padded member table (C, largest cluster), -1 past a cluster's end, for batches."""
        sizes = np.diff(self.starts)
        table = np.full((len(sizes), int(sizes.max(initial=1))), -1, dtype=np.int64)
        for c, (start, size) in enumerate(zip(self.starts[:-1], sizes)):
            table[c, :size] = np.arange(start, start + size)
        object.__setattr__(self, "_members", table)

    def update(self, p: F64, vectors: NDArray[np.floating[Any]]) -> F64:
        """Updated p_success (n, M) for the prior `p` (n, M) of unit-norm `vectors` (n, d)."""
        queries = np.asarray(vectors, dtype=np.float32)
        members: NDArray[np.int64] = self._members  # type: ignore[attr-defined]
        # each query gathers probe x (largest cluster) vectors: bound the gathered floats
        per_query = min(self.probe, len(members)) * members.shape[1] * queries.shape[1]
        step = max(1, _GATHERED_FLOATS // per_query)
        if len(queries) <= step:
            return self._update(p, queries)
        return np.concatenate(
            [self._update(p[i : i + step], queries[i : i + step]) for i in range(0, len(p), step)]
        )

    def _update(self, p: F64, queries: NDArray[np.float32]) -> F64:
        clusters = _nearest(queries @ self.centroids.T, self.probe)
        members: NDArray[np.int64] = self._members  # type: ignore[attr-defined]
        candidates = members[clusters].reshape(len(queries), -1)  # (n, probe * largest)
        sims = np.einsum("nd,nkd->nk", queries, self.vectors[candidates])
        sims[candidates < 0] = -np.inf
        k = min(self.neighbours, candidates.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        nearest = np.take_along_axis(candidates, top, axis=1)
        weights = np.exp((np.take_along_axis(sims, top, axis=1) - 1.0) / self.temperature)
        mass = np.einsum("nk,nkm->nm", weights, self.graded[nearest])
        votes = np.einsum("nk,nkm->nm", weights, self.grades[nearest])
        out: F64 = (self.strength * p + votes) / (self.strength + mass)
        return out

    def update_one(self, p: F64, vector: NDArray[np.floating[Any]]) -> F64:
        """`update` for one vector (d,) and its prior (M,): the same neighbours, fewer arrays."""
        query = np.asarray(vector, dtype=np.float32)
        clusters = _nearest((self.centroids @ query)[None, :], self.probe)[0]
        spans = [(int(self.starts[c]), int(self.starts[c + 1])) for c in clusters]
        rows = np.concatenate([np.arange(a, b) for a, b in spans])
        # clusters are contiguous rows: products with views, no copy of their vectors
        sims = np.concatenate([self.vectors[a:b] @ query for a, b in spans])
        k = min(self.neighbours, len(rows))
        top = np.argpartition(-sims, k - 1)[:k]
        nearest = rows[top]
        weights = np.exp((sims[top] - 1.0) / self.temperature)
        out: F64 = (self.strength * p + weights @ self.grades[nearest]) / (
            self.strength + weights @ self.graded[nearest]
        )
        return out

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Arrays for the router's .npz (see `from_arrays`)."""
        return {
            "evidence_vectors": self.vectors,
            "evidence_grades": self.grades,
            "evidence_graded": self.graded,
            "evidence_centroids": self.centroids,
            "evidence_starts": self.starts,
        }

    def scalars(self) -> dict[str, Any]:
        """The JSON-side state."""
        return {
            "probe": self.probe,
            "neighbours": self.neighbours,
            "temperature": self.temperature,
            "strength": self.strength,
        }

    @classmethod
    def from_arrays(cls, arrays: Any, scalars: dict[str, Any]) -> GradedNeighbours:
        """Inverse of `arrays` + `scalars`."""
        return cls(
            vectors=np.ascontiguousarray(arrays["evidence_vectors"], dtype=np.float32),
            grades=np.asarray(arrays["evidence_grades"], dtype=np.float64),
            graded=np.asarray(arrays["evidence_graded"], dtype=np.float64),
            centroids=np.ascontiguousarray(arrays["evidence_centroids"], dtype=np.float32),
            starts=np.asarray(arrays["evidence_starts"], dtype=np.int64),
            probe=int(scalars["probe"]),
            neighbours=int(scalars["neighbours"]),
            temperature=float(scalars["temperature"]),
            strength=float(scalars["strength"]),
        )


def _nearest(sims: NDArray[np.float32], probe: int) -> NDArray[np.int64]:
    """Indices of the `probe` largest entries of each row (all of them when fewer)."""
    if probe >= sims.shape[1]:
        every: NDArray[np.int64] = np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
        return every
    out: NDArray[np.int64] = np.argpartition(-sims, probe - 1, axis=1)[:, :probe]
    return out


@dataclass(frozen=True)
class EvidenceFit:
    """What `fit_graded_neighbours` found: the stage (or None) and the updated out-of-fold p."""

    stage: GradedNeighbours | None
    cv_p_success: F64  # (n, M) cross-fitted p_success after the update (the prior if None)
    cv_brier_prior: float
    cv_brier: float


def fit_graded_neighbours(
    x: F64,
    grades: F64,
    known: NDArray[np.bool_],
    folds: NDArray[np.int64],
    prior: F64,
    *,
    neighbours: int,
    probe: int,
    temperatures: tuple[float, ...],
    strengths: tuple[float, ...],
    seed: int,
) -> EvidenceFit:
    """Choose temperature and strength by CV Brier score, starting from the out-of-fold `prior`."""
    filled = np.where(known, grades, 0.0)
    graded = known.astype(np.float64)

    def losses(p: F64) -> F64:
        per_query: F64 = (((p - filled) ** 2) * known).sum(axis=1)
        return per_query

    total = float(known.sum())
    prior_losses = losses(prior)
    prior_brier = float(prior_losses.sum() / total)
    if neighbours < 1 or len(x) < 2:
        return EvidenceFit(None, prior, prior_brier, prior_brier)
    x32 = x.astype(np.float32)
    centroids, labels = spherical_kmeans(x, max(1, round(np.sqrt(len(x)))), seed)
    searched = _nearest(x32 @ centroids.astype(np.float32).T, probe)
    in_probe = np.zeros((len(x), len(centroids)), dtype=bool)
    np.put_along_axis(in_probe, searched, True, axis=1)
    # per held-out query: its nearest graded queries among the other folds, searched in its
    # probed clusters as prediction will search them
    k = min(neighbours, int(np.min([np.sum(folds != f) for f in np.unique(folds)])))
    nearest = np.zeros((len(x), k), dtype=np.int64)
    sims = np.zeros((len(x), k))
    for f in np.unique(folds):
        held = np.nonzero(folds == f)[0]
        train = np.nonzero(folds != f)[0]
        block = x32[held] @ x32[train].T
        block[~in_probe[held][:, labels[train]]] = -np.inf
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        nearest[held] = train[top]
        sims[held] = np.take_along_axis(block, top, axis=1)
    best: tuple[float, float, float, F64] | None = None
    for temperature in temperatures:
        weights = np.exp((sims - 1.0) / temperature)
        mass = np.einsum("nk,nkm->nm", weights, graded[nearest])
        votes = np.einsum("nk,nkm->nm", weights, filled[nearest])
        for strength in strengths:
            updated = (strength * prior + votes) / (strength + mass)
            score = float(losses(updated).sum() / total)
            if best is None or score < best[0]:
                best = (score, temperature, strength, updated)
    assert best is not None
    score, temperature, strength, updated = best
    gain = prior_losses - losses(updated)
    if gain.mean() <= 2.0 * gain.std(ddof=1) / np.sqrt(len(gain)):
        return EvidenceFit(None, prior, prior_brier, prior_brier)
    order = np.argsort(labels, kind="stable")
    stage = GradedNeighbours(
        vectors=np.ascontiguousarray(x32[order]),
        grades=filled[order],
        graded=graded[order],
        centroids=np.ascontiguousarray(centroids, dtype=np.float32),
        starts=np.searchsorted(labels[order], np.arange(len(centroids) + 1)).astype(np.int64),
        probe=probe,
        neighbours=neighbours,
        temperature=float(temperature),
        strength=float(strength),
    )
    return EvidenceFit(stage, updated, prior_brier, score)
