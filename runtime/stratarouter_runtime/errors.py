"""Errors raised when a provider call fails.

Every failure of a model call is a `ProviderError`, whatever SDK produced it, so callers (the
executor, the cache, the bridge) decide what to do from three attributes instead of from SDK
classes: `retryable` (is another attempt worth it), `status` (HTTP status, when there was one) and
`retry_after` (seconds the provider asked us to wait). Each class has the ``kind`` of
`stratarouter_core.encoders.openai_policy.FailureKind` it stands for, the classification
`OpenAIEncoder` uses too::

    StrataRouterError
    └── ProviderError(RuntimeError)        .provider .status .retryable .retry_after
        ├── ProviderTimeoutError           no answer within the per-call timeout (retryable)
        ├── ProviderConnectionError        connection refused or dropped mid-response (retryable)
        ├── RateLimitError                 HTTP 429; .retry_after from the headers (retryable)
        ├── ProviderServerError            HTTP 5xx (retryable)
        ├── ProviderRequestError           HTTP 4xx other than 408/429: the request is wrong (final)
        ├── MalformedResponseError         an answer that cannot be parsed (final by default)
        ├── CircuitOpenError               the target's circuit breaker rejects calls (final)
        └── RetryExhaustedError            .attempts; __cause__ is the last failure (final)
"""

from __future__ import annotations

from typing import Any, ClassVar

from stratarouter_core.encoders.openai_policy import FailureKind
from stratarouter_core.errors import StrataRouterError

__all__ = [
    "CircuitOpenError",
    "MalformedResponseError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RetryExhaustedError",
]


class ProviderError(StrataRouterError, RuntimeError):
    """A model provider call failed.

    Args:
        message: What failed, for humans.
        provider: Name of the provider client that failed (`"openai"`, `"local"`...).
        status: HTTP status of the failed response, or None when there was none.
        retryable: Whether another attempt may succeed; defaults to the class's policy.
        retry_after: Seconds the provider asked to wait before the next attempt, if it said.

    Example:
        >>> error = ProviderServerError("upstream 503", provider="openai", status=503)
        >>> error.retryable, error.status
        (True, 503)
    """

    default_retryable: ClassVar[bool] = False
    kind: ClassVar[FailureKind] = FailureKind.OTHER

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments are not in `args`: rebuild from the instance dict so
        # that errors survive pickling (process pools, multiprocessing queues).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(
    cls: type[ProviderError], args: tuple[Any, ...], state: dict[str, Any]
) -> ProviderError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ProviderTimeoutError(ProviderError):
    """No complete answer within the per-call timeout (or an HTTP 408)."""

    default_retryable = True
    kind = FailureKind.TIMEOUT


class ProviderConnectionError(ProviderError):
    """The connection failed, or dropped before the response was complete."""

    default_retryable = True
    kind = FailureKind.CONNECTION


class RateLimitError(ProviderError):
    """HTTP 429: the provider throttled us; `retry_after` says for how long, when it told."""

    default_retryable = True
    kind = FailureKind.RATE_LIMIT


class ProviderServerError(ProviderError):
    """HTTP 5xx: the provider failed on its side."""

    default_retryable = True
    kind = FailureKind.SERVER


class ProviderRequestError(ProviderError):
    """HTTP 4xx other than 408 and 429 (bad request, auth, unknown model): retrying cannot help."""

    kind = FailureKind.REQUEST


class MalformedResponseError(ProviderError):
    """The provider answered with something that is not a valid response."""

    kind = FailureKind.MALFORMED


class CircuitOpenError(ProviderError):
    """The circuit breaker of the target is open: the call was not attempted.

    `retry_after` holds the seconds until the breaker lets a probe call through.
    """


class RetryExhaustedError(ProviderError):
    """Every allowed attempt failed with a retryable error.

    `attempts` is the number of calls made; `__cause__` is the last failure.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        attempts: int,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, provider=provider, status=status, retryable=False, retry_after=retry_after
        )
        self.attempts = attempts
