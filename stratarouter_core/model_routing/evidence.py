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
vector cost more than the rest of `route()` together (a few MB of vectors per query). That
index (`GradedIndex`) is kept even when the update is not: the cosine of a query's nearest
graded query says how far it is from the data p_success was learned on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .kmeans import row_steps, spherical_kmeans

__all__ = ["EvidenceFit", "GradedIndex", "GradedNeighbours", "fit_graded_neighbours"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class GradedIndex:
    """The graded queries' unit vectors, grouped by cluster, searched like an IVF index.

    It serves the graded-neighbour update and tells how close a query is to anything graded
    (`ModelChoice.nearest_graded_similarity`), so it is kept even when the update is not.
    """

    vectors: NDArray[np.float32]  # (N, d), grouped by cluster
    centroids: NDArray[np.float32]  # (C, d)
    starts: NDArray[np.int64]  # (C + 1,): cluster c's members are rows starts[c]:starts[c + 1]
    probe: int

    def __post_init__(self) -> None:
        """Each cluster's row span and row indices, for `search_one`."""
        spans = list(itertools.pairwise(self.starts.tolist()))
        object.__setattr__(self, "_spans", spans)
        object.__setattr__(self, "_rows", [np.arange(a, b) for a, b in spans])

    def search(
        self, queries: NDArray[np.floating[Any]], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(n, k) rows of the graded queries nearest each unit-norm query and their cosines
        (-inf in slots beyond a query's candidates)."""
        if len(queries) == 1:  # a search cluster by cluster costs a loop; one query needs none
            rows, sims = self.search_one(queries[0], k)
            return rows[None, :], sims[None, :]
        return _search(
            np.asarray(queries, dtype=np.float32),
            self.centroids,
            self.vectors,
            self.starts,
            self.probe,
            k,
        )

    def search_one(
        self, vector: NDArray[np.floating[Any]], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """`search` for one vector (d,): the same neighbours (in no particular order), fewer
        arrays."""
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
        k = min(k, len(rows))
        top = np.argpartition(sims, len(sims) - k)[len(sims) - k :]
        return rows[top], sims[top]

    def with_vectors(
        self, vectors: NDArray[np.floating[Any]]
    ) -> tuple[GradedIndex, NDArray[np.intp]]:
        """This index with unit-norm `vectors` (n, d) added, each to its nearest cluster (the
        clusters are not moved), and where each row came from: row i of the new index is row
        `order[i]` of the old rows followed by the added ones."""
        added = np.asarray(vectors, dtype=np.float32)
        labels = np.concatenate(
            [
                np.repeat(np.arange(len(self.centroids)), np.diff(self.starts)),
                np.argmax(added @ self.centroids.T, axis=1),
            ]
        )
        order = np.argsort(labels, kind="stable")  # a cluster's old members, then its new ones
        index = GradedIndex(
            vectors=np.ascontiguousarray(np.concatenate([self.vectors, added])[order]),
            centroids=self.centroids,
            starts=np.searchsorted(labels[order], np.arange(len(self.centroids) + 1)).astype(
                np.int64
            ),
            probe=self.probe,
        )
        return index, order

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Arrays for the router's .npz (see `from_arrays`)."""
        return {
            "evidence_vectors": self.vectors,
            "evidence_centroids": self.centroids,
            "evidence_starts": self.starts,
        }

    @classmethod
    def from_arrays(cls, arrays: Any, probe: int) -> GradedIndex:
        """Inverse of `arrays`."""
        return cls(
            vectors=np.ascontiguousarray(arrays["evidence_vectors"], dtype=np.float32),
            centroids=np.ascontiguousarray(arrays["evidence_centroids"], dtype=np.float32),
            starts=np.asarray(arrays["evidence_starts"], dtype=np.int64),
            probe=probe,
        )


@dataclass(frozen=True)
class GradedNeighbours:
    """The update: the grades of the indexed queries (same row order), and its parameters."""

    grades: F64  # (N, M), 0 where ungraded
    graded: F64  # (N, M), 1.0 where graded
    neighbours: int
    temperature: float
    strength: float

    def __post_init__(self) -> None:
        """The grades beside the graded counts: one gather and one product for both sums."""
        object.__setattr__(self, "_votes", np.concatenate([self.grades, self.graded], axis=1))

    def update(self, p: F64, nearest: NDArray[np.int64], sims: NDArray[np.float32]) -> F64:
        """Updated p_success (n, M) for the prior `p` (n, M), given each query's neighbours
        (n, k) and their cosines from `GradedIndex.search`."""
        weights = np.exp((sims - 1.0) / self.temperature)
        table: F64 = self._votes  # type: ignore[attr-defined]
        summed = np.empty((len(p), table.shape[1]))
        # the gathered (rows, k, 2M) grades are the batch's largest array: bound them
        for rows in row_steps(len(p), nearest.shape[1] * table.shape[1]):
            summed[rows] = np.einsum("nk,nkm->nm", weights[rows], table[nearest[rows]])
        m = p.shape[1]
        out: F64 = (self.strength * p + summed[:, :m]) / (self.strength + summed[:, m:])
        return out

    def update_one(self, p: F64, rows: NDArray[np.int64], sims: NDArray[np.float32]) -> F64:
        """`update` for one query's prior (M,), neighbours (k,) and cosines (k,)."""
        weights = np.exp((sims - 1.0) / self.temperature)
        votes: F64 = self._votes  # type: ignore[attr-defined]
        summed = weights @ votes[rows]
        m = len(p)
        out: F64 = (self.strength * p + summed[:m]) / (self.strength + summed[m:])
        return out

    def with_grades(self, grades: F64, order: NDArray[np.intp]) -> GradedNeighbours:
        """The update over the index `GradedIndex.with_vectors` returned with `order`, the
        added queries' grades (n, M; NaN: ungraded) appended; its parameters are kept."""
        known = ~np.isnan(grades)
        return GradedNeighbours(
            grades=np.concatenate([self.grades, np.where(known, grades, 0.0)])[order],
            graded=np.concatenate([self.graded, known.astype(np.float64)])[order],
            neighbours=self.neighbours,
            temperature=self.temperature,
            strength=self.strength,
        )

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Arrays for the router's .npz (see `from_arrays`)."""
        return {"evidence_grades": self.grades, "evidence_graded": self.graded}

    def scalars(self) -> dict[str, Any]:
        """The JSON-side state."""
        return {
            "neighbours": self.neighbours,
            "temperature": self.temperature,
            "strength": self.strength,
        }

    @classmethod
    def from_arrays(cls, arrays: Any, scalars: dict[str, Any]) -> GradedNeighbours:
        """Inverse of `arrays` + `scalars`."""
        return cls(
            grades=np.asarray(arrays["evidence_grades"], dtype=np.float64),
            graded=np.asarray(arrays["evidence_graded"], dtype=np.float64),
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
    """What `fit_graded_neighbours` found: the index, the update (or None), the updated
    out-of-fold p, and how near each training query's nearest graded query in other folds is."""

    index: GradedIndex | None  # None with fewer than two graded queries
    stage: GradedNeighbours | None
    cv_p_success: F64  # (n, M) cross-fitted p_success after the update (the prior if None)
    cv_brier_prior: float
    cv_brier: float
    cv_nearest_similarity: F64  # (n,) cosine to the nearest graded query of the other folds


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
    """Index the graded queries; choose temperature and strength by CV Brier score, starting
    from the out-of-fold `prior` (no update when `neighbours` is 0 or CV finds no gain)."""
    filled = np.where(known, grades, 0.0)
    graded = known.astype(np.float64)

    def losses(p: F64) -> F64:
        per_query: F64 = (((p - filled) ** 2) * known).sum(axis=1)
        return per_query

    total = float(known.sum())
    prior_losses = losses(prior)
    prior_brier = float(prior_losses.sum() / total)
    if len(x) < 2:
        return EvidenceFit(None, None, prior, prior_brier, prior_brier, np.full(len(x), np.nan))
    x32 = x.astype(np.float32)
    centres, labels = spherical_kmeans(x, max(1, round(np.sqrt(len(x)))), seed)
    # a cluster k-means left empty (many copies of a few texts) would take a probe slot and
    # could leave a query with nothing to compare
    occupied = np.bincount(labels, minlength=len(centres)) > 0
    labels = (np.cumsum(occupied) - 1)[labels]
    centroids32 = np.ascontiguousarray(centres[occupied], dtype=np.float32)
    clusters = np.arange(len(centroids32) + 1)
    order = np.argsort(labels, kind="stable")
    index = GradedIndex(
        vectors=np.ascontiguousarray(x32[order]),
        centroids=centroids32,
        starts=np.searchsorted(labels[order], clusters).astype(np.int64),
        probe=probe,
    )
    # per held-out query: its nearest graded queries among the other folds, searched in its
    # probed clusters as prediction will search them
    smallest_other = int(np.min([np.sum(folds != f) for f in np.unique(folds)]))
    k = max(1, min(neighbours, smallest_other))
    nearest = np.zeros((len(x), k), dtype=np.int64)
    sims = np.full((len(x), k), -np.inf, dtype=np.float32)
    for f in np.unique(folds):
        held = np.nonzero(folds == f)[0]
        train = np.nonzero(folds != f)[0]
        grouped = train[np.argsort(labels[train], kind="stable")]
        starts = np.searchsorted(labels[grouped], clusters)
        found, cosines = _search(x32[held], centroids32, x32[grouped], starts, probe, k)
        nearest[held, : found.shape[1]] = grouped[found]
        sims[held, : found.shape[1]] = cosines
    nearest_similarity = sims.max(axis=1).astype(np.float64)
    unchanged = EvidenceFit(index, None, prior, prior_brier, prior_brier, nearest_similarity)
    if neighbours < 1:
        return unchanged
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
        return unchanged
    stage = GradedNeighbours(
        grades=filled[order],
        graded=graded[order],
        neighbours=neighbours,
        temperature=float(temperature),
        strength=float(strength),
    )
    return EvidenceFit(index, stage, updated, prior_brier, score, nearest_similarity)
