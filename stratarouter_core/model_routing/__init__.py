"""Model routing: send each query to the cheapest LLM that will answer it well.

`ModelRouter` learns, from graded answers or pairwise preferences, a calibrated probability
that each model answers a query well, prices each model on the query, and picks one with a
decision rule (cheapest above a quality bar, best quality-minus-cost, best under a budget).
"""

from __future__ import annotations

from .decision import Rule, decide, decide_one
from .errors import (
    DuplicateModelError,
    InvalidScoresError,
    ModelSpecError,
    NoGradedDataError,
    UnknownModelError,
)
from .graded_file import GradedFile, read_graded_file
from .router import ModelRouter
from .types import ModelChoice, ModelOption, ModelRouterConfig, ModelRoutingReport, ModelSpec

__all__ = [
    "DuplicateModelError",
    "GradedFile",
    "InvalidScoresError",
    "ModelChoice",
    "ModelOption",
    "ModelRouter",
    "ModelRouterConfig",
    "ModelRoutingReport",
    "ModelSpec",
    "ModelSpecError",
    "NoGradedDataError",
    "Rule",
    "UnknownModelError",
    "decide",
    "decide_one",
    "read_graded_file",
]
