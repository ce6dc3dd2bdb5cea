"""Score parts (BM25, rules), their fusion and the confidence map."""

from __future__ import annotations

from .model import FEATURES, ConfidenceModel, LinearHead, ScoringModel
from .rules import RuleMatcher
from .sparse import BM25Index

__all__ = ["FEATURES", "BM25Index", "ConfidenceModel", "LinearHead", "RuleMatcher", "ScoringModel"]
