"""The candidate-index contract: k nearest prototypes by inner product."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import NDArray

__all__ = ["CandidateIndex"]


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

