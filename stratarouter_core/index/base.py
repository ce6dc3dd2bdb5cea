"""The candidate-index contract and the choice between exact and approximate search."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import NDArray

from ..config import IndexConfig

__all__ = ["CandidateIndex", "build_index"]


class CandidateIndex(ABC):
    """Finds the k prototypes with the highest inner product with each query.

    Vectors are L2-normalised, so inner product is cosine similarity.
    """

    kind: str

    @abstractmethod
    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Ids and similarities of the k best prototypes per query, best first: shapes (n, k)."""


def build_index(prototypes: NDArray[np.float32], config: IndexConfig) -> CandidateIndex:
    """Exact search for small route sets, HNSW above `config.exact_max_routes`."""
    from .exact import ExactIndex
    from .hnsw import HnswIndex

    if len(prototypes) <= config.exact_max_routes:
        return ExactIndex(prototypes)
    return HnswIndex(prototypes, config)
