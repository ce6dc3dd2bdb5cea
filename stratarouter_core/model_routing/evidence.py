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

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .kmeans import row_steps, spherical_kmeans

__all__ = ["EvidenceFit", "GradedNeighbours", "fit_graded_neighbours"]

F64 = NDArray[np.float64]


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

    def update(self, p: F64, vectors: NDArray[np.floating[Any]]) -> F64:
        """Updated p_success (n, M) for the prior `p` (n, M) of unit-norm `vectors` (n, d)."""
        queries = np.asarray(vectors, dtype=np.float32)
        if len(queries) == 1:  # a search cluster by cluster costs a loop; one query needs none
            return self.update_one(p[0], queries[0])[None, :]
        nearest, sims = _search(
            queries,
            self.centroids,
            self.vectors,
            self.starts,
            self.probe,
            self.neighbours,
        )
        weights = np.exp((sims - 1.0) / self.temperature)
        table: F64 = self._votes  # type: ignore[attr-defined]
        summed = np.empty((len(queries), table.shape[1]))
        # the gathered (rows, k, 2M) grades are the batch's largest array: bound them
        for rows in row_steps(len(queries), nearest.shape[1] * table.shape[1]):
            summed[rows] = np.einsum("nk,nkm->nm", weights[rows], table[nearest[rows]])
        m = p.shape[1]
        out: F64 = (self.strength * p + summed[:, :m]) / (self.strength + summed[:, m:])
        return out

    def __post_init__(self) -> None:
        """Lookups for `update_one`: each cluster's row span and row indices, and the grades
        beside the graded counts (one gather and one product for both sums)."""
        bounds = self.starts.tolist()
        spans = list(itertools.pairwise(bounds))
        object.__setattr__(self, "_spans", spans)
        object.__setattr__(self, "_rows", [np.arange(a, b) for a, b in spans])
        object.__setattr__(self, "_votes", np.concatenate([self.grades, self.graded], axis=1))

    def update_one(self, p: F64, vector: NDArray[np.floating[Any]]) -> F64:
        """`update` for one vector (d,) and its prior (M,): the same neighbours, fewer arrays."""
        query = np.asarray(vector, dtype=np.float32)
        centroid_sims = self.centroids @ query
        if self.probe < len(centroid_sims):
            clusters = np.argpartition(-centroid_sims, self.probe - 1)[: self.probe].tolist()
        else:
            clusters = list(range(len(centroid_sims)))
        spans: list[tuple[int, int]] = self._spans  # type: ignore[attr-defined]
        cluster_rows: list[NDArray[np.int64]] = self._rows  # type: ignore[attr-defined]
        rows = np.concatenate([cluster_rows[c] for c in clusters])
        # clusters are contiguous rows: products with views, no copy of their vectors
        sims = np.concatenate([self.vectors[spans[c][0] : spans[c][1]] @ query for c in clusters])
        k = min(self.neighbours, len(rows))
        top = np.argpartition(sims, len(sims) - k)[len(sims) - k :]
        weights = np.exp((sims[top] - 1.0) / self.temperature)
        votes: F64 = self._votes  # type: ignore[attr-defined]
        summed = weights @ votes[rows[top]]
        m = len(p)
        out: F64 = (self.strength * p + summed[:m]) / (self.strength + summed[m:])
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


def _search(
    queries: NDArray[np.float32],
    centroids: NDArray[np.float32],
    vectors: NDArray[np.float32],
    starts: NDArray[np.int64],
    probe: int,
    neighbours: int,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Rows of `vectors` (grouped by cluster) nearest each query within its `probe` nearest
    clusters, and their cosines; slots beyond a query's candidates have cosine -inf (weight 0).

    Cluster by cluster: one product of the queries that probe it with its members, merged into
    each query's running top k. Gathering each query's candidate vectors instead copied MBs
    per query, and a (queries x graded) product grows as N^2.
    """
    k = min(neighbours, len(vectors))
    nearest = np.zeros((len(queries), k), dtype=np.int64)
    sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
    probed = _nearest(queries @ centroids.T, probe)
    pairs = np.argsort(probed, axis=None, kind="stable")  # (query, cluster) pairs by cluster
    clusters = probed.ravel()[pairs]
    asking = pairs // probed.shape[1]
    bounds = np.searchsorted(clusters, np.arange(len(centroids) + 1))
    for c in np.unique(clusters):
        first, last = int(starts[c]), int(starts[c + 1])
        if first == last:
            continue
        members = np.arange(first, last)
        cluster_queries = asking[bounds[c] : bounds[c + 1]]
        for step in row_steps(len(cluster_queries), last - first):
            rows = cluster_queries[step]
            found = np.concatenate([sims[rows], queries[rows] @ vectors[first:last].T], axis=1)
            ids = np.concatenate(
                [nearest[rows], np.broadcast_to(members, (len(rows), len(members)))], axis=1
            )
            top = np.argpartition(-found, k - 1, axis=1)[:, :k]
            sims[rows] = np.take_along_axis(found, top, axis=1)
            nearest[rows] = np.take_along_axis(ids, top, axis=1)
    return nearest, sims


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
    centroids32 = np.ascontiguousarray(centroids, dtype=np.float32)
    # per held-out query: its nearest graded queries among the other folds, searched in its
    # probed clusters as prediction will search them
    k = min(neighbours, int(np.min([np.sum(folds != f) for f in np.unique(folds)])))
    nearest = np.zeros((len(x), k), dtype=np.int64)
    sims = np.full((len(x), k), -np.inf, dtype=np.float32)
    for f in np.unique(folds):
        held = np.nonzero(folds == f)[0]
        train = np.nonzero(folds != f)[0]
        grouped = train[np.argsort(labels[train], kind="stable")]
        starts = np.searchsorted(labels[grouped], np.arange(len(centroids) + 1))
        found, cosines = _search(x32[held], centroids32, x32[grouped], starts, probe, k)
        nearest[held, : found.shape[1]] = grouped[found]
        sims[held, : found.shape[1]] = cosines
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
        centroids=centroids32,
        starts=np.searchsorted(labels[order], np.arange(len(centroids) + 1)).astype(np.int64),
        probe=probe,
        neighbours=neighbours,
        temperature=float(temperature),
        strength=float(strength),
    )
    return EvidenceFit(stage, updated, prior_brier, score)
