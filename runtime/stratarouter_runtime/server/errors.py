"""Every error the server answers with, mapped to its HTTP status in one place."""

from __future__ import annotations

from typing import Any

from stratarouter_core.errors import (
    ConfigError,
    DimensionMismatchError,
    EmptyRouterError,
    EncoderError,
    IndexNotBuiltError,
    InvalidQueryError,
    MissingDependencyError,
    RouteNotFoundError,
    StrataRouterError,
)
from stratarouter_core.model_routing import UnknownModelError

from ..errors import CircuitOpenError, ProviderError
from ..state import ExecutionNotFoundError, GradeConflictError
from .routeset import RouteSetConflictError
from .security import AuthenticationError, RateLimitedError

__all__ = ["LimitExceededError", "ModelNotFoundError", "NotFoundError", "error_body", "status_of"]


class LimitExceededError(StrataRouterError):
    """A request over a configured size limit: body bytes or batch size (413)."""


class NotFoundError(StrataRouterError):
    """A resource the caller cannot see: unknown, or another tenant's (404)."""


class ModelNotFoundError(NotFoundError):
    """`/v1/chat/completions` named a model no configured provider serves (404)."""


# First match wins, so a subclass is listed before its parents.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationError, 401),
    (RateLimitedError, 429),
    (LimitExceededError, 413),
    (NotFoundError, 404),
    (ExecutionNotFoundError, 404),
    (RouteSetConflictError, 409),
    (GradeConflictError, 409),
    (UnknownModelError, 422),  # a grade naming a model the ModelRouter does not have
    (RouteNotFoundError, 404),
    (DimensionMismatchError, 422),
    (InvalidQueryError, 422),
    (EmptyRouterError, 422),
    (ConfigError, 422),  # routes documents, route validation, a route with no target
    (IndexNotBuiltError, 503),
    (MissingDependencyError, 503),
    (EncoderError, 503),
    (CircuitOpenError, 503),
    (ProviderError, 502),
    (StrataRouterError, 400),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status for a deliberate error (400 for a StrataRouterError not listed)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(kind: str, message: str, status: int, **extra: Any) -> dict[str, Any]:
    """The JSON error body, shaped like OpenAI's so its SDK shows the message."""
    return {"error": {"type": kind, "message": message, "status": status, **extra}}
