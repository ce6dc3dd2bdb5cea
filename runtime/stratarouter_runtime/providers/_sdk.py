"""What the SDK-backed clients share: timeouts, error mapping, finish reasons, costs, streams."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import operator
from abc import abstractmethod
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

from stratarouter_core.encoders.openai_policy import (
    Failure,
    FailureKind,
    classify_sdk_error,
    classify_status,
    parse_retry_after,
)

from ..errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
)
from .base import (
    CompletionRequest,
    CompletionResponse,
    ProviderClient,
    TextStream,
    Usage,
    check_timeout,
    iterate_with_timeout,
)
from .pricing import CostEstimate, PriceTable

__all__ = [
    "Reported",
    "SDKClient",
    "error_for",
    "error_from_status",
    "normalize_finish_reason",
    "parse_retry_after",
    "stainless_error",
    "text_or_none",
    "transport_error",
]

_ResponseT = TypeVar("_ResponseT")
_EventT = TypeVar("_EventT")

_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "refusal": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
}
_MAX_MESSAGE = 300


def normalize_finish_reason(reason: object) -> str | None:
    """Map a provider's stop reason onto OpenAI's words; unknown ones pass through lower-cased."""
    if reason is None:
        return None
    text = str(getattr(reason, "value", reason)).lower()
    if not text or text == "finish_reason_unspecified":
        return None
    return _FINISH_REASONS.get(text, text)


def _short(message: object) -> str:
    text = str(message)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


_ERROR_FOR_KIND: dict[FailureKind, type[ProviderError]] = {
    FailureKind.RATE_LIMIT: RateLimitError,
    FailureKind.TIMEOUT: ProviderTimeoutError,
    FailureKind.CONNECTION: ProviderConnectionError,
    FailureKind.SERVER: ProviderServerError,
    FailureKind.REQUEST: ProviderRequestError,
    FailureKind.MALFORMED: MalformedResponseError,
    FailureKind.OTHER: ProviderError,
}
"""The ProviderError class for each kind of the core's one API failure policy."""


def error_for(provider: str, failure: Failure) -> ProviderError:
    """The ProviderError of a classified failure (`openai_policy.classify_*`)."""
    where = f"HTTP {failure.status}: " if failure.status is not None else ""
    return _ERROR_FOR_KIND[failure.kind](
        f"{provider}: {where}{_short(failure.message)}",
        provider=provider,
        status=failure.status,
        retry_after=failure.retry_after,
    )


def error_from_status(
    provider: str, status: int, message: object, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The ProviderError for an HTTP error status (429, 408, 5xx, other 4xx)."""
    failure = Failure(classify_status(status), str(message), status, parse_retry_after(headers))
    return error_for(provider, failure)


def _exception_classes(name: str) -> tuple[type[BaseException], ...]:
    classes: list[type[BaseException]] = []
    for module_name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            classes.append(cls)
    return tuple(classes)


_TIMEOUTS = _exception_classes("TimeoutException")
_TRANSPORT = _exception_classes("TransportError")
_DECODING = _exception_classes("DecodingError")


def transport_error(provider: str, exc: BaseException) -> ProviderError | None:
    """Map httpx/httpx2 transport failures (raised mid-stream, outside SDK wrapping), else None."""
    if isinstance(exc, _TIMEOUTS):
        return ProviderTimeoutError(f"{provider}: timed out: {_short(exc)}", provider=provider)
    if isinstance(exc, _DECODING):
        return MalformedResponseError(
            f"{provider}: undecodable body: {_short(exc)}", provider=provider
        )
    if isinstance(exc, _TRANSPORT):
        return ProviderConnectionError(
            f"{provider}: connection failed or dropped: {type(exc).__name__}: {_short(exc)}",
            provider=provider,
        )
    return None


def malformed(provider: str, exc: BaseException) -> MalformedResponseError:
    """The error for a response that could not be parsed."""
    return MalformedResponseError(
        f"{provider}: malformed response: {type(exc).__name__}: {_short(exc)}", provider=provider
    )


# What extracting fields from a response built without validation raises when the body was wrong;
# caught around the clients' readers only, never around the rest of their logic.
_PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
)


def _body_errors() -> tuple[type[Exception], ...]:
    classes: list[type[Exception]] = [json.JSONDecodeError]
    with contextlib.suppress(ImportError):  # every supported SDK depends on pydantic
        classes.append(importlib.import_module("pydantic").ValidationError)
    return tuple(classes)


# What SDKs raise while decoding a broken body (they do not wrap these).
_BODY_ERRORS = _body_errors()


@dataclass(slots=True)
class Reported:
    """What a provider reported besides the text, filled in as its response or events are read.

    Attributes:
        model: The model that answered, as the provider reported it.
        usage: The token counts reported so far; providers that send running totals replace
            them, so after the last event they are the call's final counts. None until reported.
        finish_reason: The normalised finish reason, once reported.
        ended: Whether a stream's end-of-answer marker arrived.
        tokens: Running per-field token counts, for providers that report them field by field.
    """

    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    ended: bool = False
    tokens: dict[str, int] = field(default_factory=dict)


def text_or_none(value: object) -> str | None:
    """`value` if the SDK gave a string (a model name...), else None."""
    return value if isinstance(value, str) else None


def stainless_error(
    provider: str,
    exc: Exception,
    sdk: ModuleType,
    root: type[Exception],
    *,
    status: Callable[[Any], int] = operator.attrgetter("status_code"),
) -> ProviderError | None:
    """The ProviderError for an exception of `openai` or `anthropic`, or None for any other.

    The classification is the core's (`openai_policy.classify_sdk_error`), the one
    `OpenAIEncoder` uses, so a 429, a 5xx or a timeout means the same on both sides.
    """
    failure = classify_sdk_error(exc, sdk, root, status=status)
    if failure is None:
        return None
    if failure.kind is FailureKind.MALFORMED:
        return malformed(provider, exc)
    return error_for(provider, failure)


class SDKClient(ProviderClient, Generic[_ResponseT, _EventT]):
    """Base of the SDK-backed clients: bounds every call and turns every failure into ProviderError.

    A subclass only speaks its wire format: `_create` (one call) and `_read_response` (its text,
    recording the model, usage and finish reason in a `Reported`), `_events` (an async
    generator of stream events) and `_read_event` (an event's text delta, recording what it
    reports, `ended` included), `_map_error` and `aclose`. Parsing errors in the readers become
    MalformedResponseError; a stream that stops before its end marker (`_end_marker`) is a
    ProviderConnectionError. The SDK timeout is set per call, and `asyncio.wait_for` bounds it
    again, so a stalled connection cannot outlive `timeout` whatever the SDK does.
    """

    _end_marker: str

    def __init__(self, price_table: PriceTable | None) -> None:
        self._prices = PriceTable() if price_table is None else price_table

    @property
    def price_table(self) -> PriceTable:
        """Prices used for `CompletionResponse.cost_usd`."""
        return self._prices

    async def complete(self, request: CompletionRequest, *, timeout: float) -> CompletionResponse:
        """Return the whole answer within `timeout` seconds, or raise a ProviderError."""
        timeout = check_timeout(timeout)
        with self._errors_mapped(timeout):
            return await asyncio.wait_for(self._complete(request, timeout), timeout)

    def stream(
        self, request: CompletionRequest, *, timeout: float
    ) -> TextStream[CompletionResponse]:
        """Yield text deltas; `timeout` bounds the wait for each one.

        Once the stream has completed, its `result` is the whole answer with the usage, finish
        reason and cost the provider reported (usage None if it reported none).
        """
        return TextStream(self._stream_items(request, check_timeout(timeout)))

    async def _complete(self, request: CompletionRequest, timeout: float) -> CompletionResponse:
        raw = await self._create(request, timeout)
        reported = Reported()
        with self._parsing():
            text = self._read_response(raw, reported)
        return self._response_of(request, text, reported)

    async def _stream_items(
        self, request: CompletionRequest, timeout: float
    ) -> AsyncGenerator[str | CompletionResponse, None]:
        reported = Reported()
        parts: list[str] = []
        chunks = iterate_with_timeout(
            self._stream_text(request, timeout, reported), timeout, provider=self.name
        )
        try:
            with self._errors_mapped(timeout):
                async for chunk in chunks:
                    parts.append(chunk)
                    yield chunk
        finally:
            await chunks.aclose()
        yield self._response_of(request, "".join(parts), reported)

    async def _stream_text(
        self, request: CompletionRequest, timeout: float, reported: Reported
    ) -> AsyncGenerator[str, None]:
        """The non-empty text deltas of the stream's events; SDK exceptions may escape."""
        events = self._events(request, timeout)
        try:
            async for event in events:
                with self._parsing():
                    text = self._read_event(event, reported)
                if text:
                    yield text
        finally:
            await events.aclose()
        if not reported.ended:
            raise ProviderConnectionError(
                f"{self.name}: stream ended before {self._end_marker}", provider=self.name
            )

    def _response_of(
        self, request: CompletionRequest, text: str, reported: Reported
    ) -> CompletionResponse:
        """The response, priced by the model the provider reported, else the one requested."""
        cost = self._cost(reported.usage, reported.model, request.model)
        return CompletionResponse(
            text=text,
            provider=self.name,
            model=reported.model or request.model,
            usage=reported.usage,
            finish_reason=reported.finish_reason,
            cost_usd=cost.usd,
            cost_known=cost.known,
        )

    @contextlib.contextmanager
    def _parsing(self) -> Iterator[None]:
        """Reading fields of a body built without validation: its errors mean a bad body."""
        try:
            yield
        except _PARSE_ERRORS as exc:
            raise malformed(self.name, exc) from exc

    @contextlib.contextmanager
    def _errors_mapped(self, timeout: float) -> Iterator[None]:
        """Raise the ProviderError of any failure inside (others as they are)."""
        try:
            yield
        except Exception as exc:
            error = self._translate(exc, timeout)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: Exception, timeout: float) -> ProviderError | None:
        """The ProviderError for `exc`, or None to re-raise it as it is."""
        if isinstance(exc, ProviderError):
            return None
        if isinstance(exc, asyncio.TimeoutError):
            return ProviderTimeoutError(
                f"{self.name}: no answer within {timeout:g}s", provider=self.name
            )
        mapped = self._map_error(exc) or transport_error(self.name, exc)
        if mapped is not None:
            return mapped
        if isinstance(exc, _BODY_ERRORS):
            return malformed(self.name, exc)
        return None

    def _cost(self, usage: Usage | None, *models: str | None) -> CostEstimate:
        estimate = CostEstimate(0.0, known=False)
        if usage is None:  # no token counts, no price: unknown rather than a made-up 0
            return estimate
        for model in models:
            if model:
                estimate = self._prices.cost(model, usage)
                if estimate.known:
                    break
        return estimate

    @abstractmethod
    async def _create(self, request: CompletionRequest, timeout: float) -> _ResponseT:
        """Call the SDK once, not streaming; SDK exceptions may escape (`complete` maps them)."""

    @abstractmethod
    def _read_response(self, response: _ResponseT, reported: Reported) -> str:
        """The answer text of `response`; records its model, usage and finish reason."""

    @abstractmethod
    def _events(self, request: CompletionRequest, timeout: float) -> AsyncGenerator[_EventT, None]:
        """The SDK's stream events (an async generator that closes the stream when closed)."""

    @abstractmethod
    def _read_event(self, event: _EventT, reported: Reported) -> str | None:
        """The text delta of `event`, if any; records what it reports, its end marker too."""

    @abstractmethod
    def _map_error(self, exc: Exception) -> ProviderError | None:
        """The ProviderError for an SDK exception, or None if `exc` is not an SDK error."""
