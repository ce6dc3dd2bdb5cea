"""Brute-force inner-product search: exact, and the fastest choice below a few thousand routes."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .base import CandidateIndex

__all__ = ["ExactIndex"]


class ExactIndex(CandidateIndex):
    """Exact top-k by one matrix product and `argpartition`.

    Example:
        >>> import numpy as np
        >>> index = ExactIndex(np.eye(3, dtype=np.float32))
        >>> ids, sims = index.search(np.array([[0, 1, 0]], dtype=np.float32), k=2)
        >>> int(ids[0, 0])
        1
    """

    kind = "exact"

    def __init__(self, prototypes: NDArray[np.float32]) -> None:
        """Index the rows of `prototypes` (normalised float32)."""
        self.prototypes = prototypes

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Exact top-k ids and similarities, best first."""
        sims = queries @ self.prototypes.T
        return top_k(sims, k)


def top_k(sims: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Row-wise top-k of a similarity matrix, sorted best first."""
    k = min(k, sims.shape[1])
    if k < sims.shape[1]:
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_sims, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return ids, np.take_along_axis(part_sims, order, axis=1)
