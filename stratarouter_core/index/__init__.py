"""Candidate selection: the routes whose prototypes are nearest to a query."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..config import IndexConfig
from .base import CandidateIndex
from .exact import ExactIndex
from .hnsw import HnswIndex

__all__ = ["CandidateIndex", "ExactIndex", "HnswIndex", "build_index"]


def build_index(prototypes: NDArray[np.float32], config: IndexConfig) -> CandidateIndex:
    """Exact search for small route sets, HNSW above `config.exact_max_routes`."""
    if len(prototypes) <= config.exact_max_routes:
        return ExactIndex(prototypes)
    return HnswIndex(prototypes, config)
