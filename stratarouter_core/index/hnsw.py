"""Approximate search with hnswlib, for route sets too large for brute force."""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

from .._deps import require
from ..config import IndexConfig
from .base import CandidateIndex

__all__ = ["HnswIndex"]


class HnswIndex(CandidateIndex):
    """HNSW graph over prototypes (inner-product space on normalised vectors).

    `ef_search` is raised to at least k per query so recall does not collapse for large k.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> vectors = rng.normal(size=(500, 16)).astype(np.float32)
        >>> vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        >>> ids, _ = HnswIndex(vectors, IndexConfig()).search(vectors[:1], k=1)
        >>> int(ids[0, 0])
        0
    """

    kind = "hnsw"

    def __init__(self, prototypes: NDArray[np.float32], config: IndexConfig) -> None:
        """Build the graph over the rows of `prototypes`."""
        hnswlib = require("hnswlib", install="pip install hnswlib")
        self.config = config
        n, dimension = prototypes.shape
        self._index = hnswlib.Index(space="ip", dim=dimension)
        self._index.init_index(
            max_elements=max(n, 1),
            ef_construction=config.hnsw_ef_construction,
            M=config.hnsw_m,
            random_seed=config.seed,
        )
        self._index.add_items(prototypes, np.arange(n))
        self._ef = config.hnsw_ef_search
        self._index.set_ef(self._ef)
        self._lock = threading.Lock()
        self.n_items = n

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Approximate top-k ids and similarities, best first."""
        k = min(k, self.n_items)
        ef = max(self._ef, k)
        if ef != self._ef:
            with self._lock:  # set_ef mutates shared state; keep concurrent searches consistent
                self._ef = ef
                self._index.set_ef(ef)
        labels, distances = self._index.knn_query(queries, k=k, num_threads=1)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)
