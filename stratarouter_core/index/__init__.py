"""Candidate selection: the routes whose prototypes are nearest to a query."""

from __future__ import annotations

from .base import CandidateIndex, build_index
from .exact import ExactIndex
from .hnsw import HnswIndex

__all__ = ["CandidateIndex", "ExactIndex", "HnswIndex", "build_index"]
