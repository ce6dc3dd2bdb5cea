"""Spherical k-means for the model router's neighbourhood profiles and neighbour search."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["one_hot", "spherical_kmeans"]

F64 = NDArray[np.float64]


def spherical_kmeans(
    x: F64, k: int, seed: int, iterations: int = 12
) -> tuple[F64, NDArray[np.int64]]:
    """Spherical k-means (cosine), seeded with k distinct random rows.

    A few Lloyd steps of matrix products: the neighbourhood profiles and the neighbour search
    only need coarse, stable regions, not the converged optimum scikit-learn's k-means++
    pays seconds for.
    """
    rng = np.random.default_rng(seed)
    x32 = x.astype(np.float32)  # assignments only need float32 products
    centroids = x32[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(iterations):
        labels = np.argmax(x32 @ centroids.T, axis=1)
        sums = one_hot(labels, k).T.astype(np.float32) @ x32
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0  # an emptied cluster keeps its old centre
        sums[empty] = centroids[empty]
        centroids = sums / np.where(norms > 0, norms, 1.0)
    return centroids.astype(np.float64), np.argmax(x32 @ centroids.T, axis=1).astype(np.int64)


def one_hot(labels: NDArray[np.int64], k: int) -> F64:
    """(n, k) indicator matrix of `labels`."""
    out = np.zeros((len(labels), k))
    out[np.arange(len(labels)), labels] = 1.0
    return out
