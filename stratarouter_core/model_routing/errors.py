"""Errors of model routing, each a subclass of the core tree in `stratarouter_core.errors`.

::

    ConfigError
    ├── ModelSpecError                 empty model list, bad price or token estimate
    │   └── DuplicateModelError        two models with the same name
    └── InvalidScoresError             a score outside [0, 1], not a number, misaligned lists
        └── NoGradedDataError          nothing to learn from (no overlap, a model never graded)
    RouteNotFoundError(KeyError)
    └── UnknownModelError              a model name the ModelRouter does not know
"""

from __future__ import annotations

from ..errors import ConfigError, RouteNotFoundError

__all__ = [
    "DuplicateModelError",
    "InvalidScoresError",
    "ModelSpecError",
    "NoGradedDataError",
    "UnknownModelError",
]


class ModelSpecError(ConfigError):
    """A model list that cannot be routed over: empty, negative prices, bad token estimates."""


class DuplicateModelError(ModelSpecError):
    """Two models share one name."""


class InvalidScoresError(ConfigError):
    """Graded scores that cannot be learned from: outside [0, 1], NaN, or not aligned."""


class NoGradedDataError(InvalidScoresError):
    """No graded (query, model) pair to learn from, or a model that was never graded."""


class UnknownModelError(RouteNotFoundError):
    """A model name that is not one of the ModelRouter's models."""
