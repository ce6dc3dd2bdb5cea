"""Anthropic Messages API through the official `anthropic` SDK (extra `anthropic`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from ..._deps import require
from ...errors import ConfigError
from ..errors import ProviderConnectionError, ProviderError, ProviderTimeoutError
from ._sdk import (
    PARSE_ERRORS,
    SDKClient,
    StreamState,
    error_from_status,
    malformed,
    normalize_finish_reason,
)
from .base import CompletionRequest, CompletionResponse, Usage
from .pricing import PriceTable

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import Message, MessageParam, RawMessageStreamEvent

__all__ = ["AnthropicClient"]

# HTTP status equivalent of the error types the API sends as `error` events mid-stream.
_STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def _error_type(body: object) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else ""


class AnthropicClient(SDKClient):
    """Claude models via `anthropic.AsyncAnthropic`.

    The system prompt (with any `system` messages) is sent as the top-level `system` field;
    `max_tokens`, which the API requires, defaults to `default_max_tokens`. The SDK's retries
    are disabled: the executor retries.

    Args:
        api_key: API key; None lets the SDK find credentials (`ANTHROPIC_API_KEY`...).
        base_url: API root without the version, e.g. `http://127.0.0.1:8080`.
        price_table: Prices for `cost_usd`; default `PriceTable()`.
        client: A ready `AsyncAnthropic` to use instead (copied with `max_retries=0`, left open).
        default_max_tokens: `max_tokens` for requests that set none.

    Example:
        >>> import asyncio
        >>> from stratarouter_core.runtime.testing import FakeProviderServer
        >>> with FakeProviderServer() as server:
        ...     async def main():
        ...         async with AnthropicClient(api_key="k", base_url=server.base_url) as llm:
        ...             request = CompletionRequest.from_text("claude-haiku-4-5", "hi")
        ...             return (await llm.complete(request, timeout=10)).finish_reason
        ...     asyncio.run(main())
        'stop'
    """

    name = "anthropic"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        price_table: PriceTable | None = None,
        client: AsyncAnthropic | None = None,
        *,
        default_max_tokens: int = 1024,
    ) -> None:
        """Create the SDK client (no network I/O happens here)."""
        super().__init__(price_table)
        if default_max_tokens < 1:
            raise ConfigError(f"default_max_tokens must be >= 1, got {default_max_tokens}")
        self.default_max_tokens = default_max_tokens
        require("anthropic", extra="anthropic")
        import anthropic

        self._owns_client = client is None
        if client is not None:
            self._client = client.with_options(max_retries=0)
            return
        try:
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, max_retries=0
            )
        except anthropic.AnthropicError as exc:
            raise ConfigError(f"AnthropicClient: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP connection pool (not the one of a client passed in)."""
        if self._owns_client:
            await self._client.close()

    @staticmethod
    def _messages(request: CompletionRequest) -> list[MessageParam]:
        messages = [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ]
        return cast("list[MessageParam]", messages)

    @staticmethod
    def _body(request: CompletionRequest) -> dict[str, Any]:
        # Optional fields go in the body as they are: no SDK-version-specific sentinels needed.
        body: dict[str, Any] = {}
        system = request.system_text()
        if system is not None:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        body.update(request.params)
        return body

    async def _complete(self, request: CompletionRequest, timeout: float) -> CompletionResponse:
        message = await self._client.messages.create(
            model=request.model,
            messages=self._messages(request),
            max_tokens=request.max_tokens or self.default_max_tokens,
            stream=False,
            timeout=timeout,
            extra_body=self._body(request),
        )
        return self._response(request, message)

    def _response(self, request: CompletionRequest, message: Message) -> CompletionResponse:
        try:
            text = "".join(block.text for block in message.content if block.type == "text")
            usage = _count_tokens(message.usage, {})
            model = message.model if isinstance(message.model, str) else None
            finish_reason = normalize_finish_reason(message.stop_reason)
        except PARSE_ERRORS as exc:
            raise malformed(self.name, exc) from exc
        return self._response_of(request, text, model, usage, finish_reason)

    async def _stream(
        self, request: CompletionRequest, timeout: float, state: StreamState
    ) -> AsyncIterator[str]:
        stream = await self._client.messages.create(
            model=request.model,
            messages=self._messages(request),
            max_tokens=request.max_tokens or self.default_max_tokens,
            stream=True,
            timeout=timeout,
            extra_body=self._body(request),
        )
        finished = False
        tokens: dict[str, int] = {}
        async with stream:
            async for event in stream:
                try:
                    text = _delta_text(event)
                    _track(event, state, tokens)
                except PARSE_ERRORS as exc:
                    raise malformed(self.name, exc) from exc
                if text:
                    yield text
                finished = finished or event.type == "message_stop"
        if not finished:
            raise ProviderConnectionError(
                f"{self.name}: stream ended before message_stop", provider=self.name
            )

    def _map_error(self, exc: Exception) -> ProviderError | None:
        import anthropic

        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderTimeoutError(f"{self.name}: {exc}", provider=self.name)
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderConnectionError(f"{self.name}: {exc}", provider=self.name)
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            if status < 400:  # an `error` event inside a stream that began with 200
                status = _STREAM_ERROR_STATUS.get(_error_type(exc.body), 500)
            return error_from_status(self.name, status, exc.message, exc.response.headers)
        if isinstance(exc, anthropic.APIResponseValidationError):
            return malformed(self.name, exc)
        if isinstance(exc, anthropic.AnthropicError):
            return ProviderError(f"{self.name}: {exc}", provider=self.name)
        return None


_TOKEN_FIELDS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def _count_tokens(usage: object, tokens: dict[str, int]) -> Usage | None:
    """Merge the counts `usage` reports into `tokens`; the Usage once input and output are known.

    Fields a later event leaves out keep their earlier value, and the ones it sends are running
    totals that replace it, as the SDK's own accumulator does. Billed input is the sum of the
    uncached, cache-creation and cache-read input tokens.
    """
    for name in _TOKEN_FIELDS:
        value = getattr(usage, name, None)
        if isinstance(value, int):
            tokens[name] = value
    if "input_tokens" not in tokens or "output_tokens" not in tokens:
        return None
    prompt = sum(tokens.get(name, 0) for name in _TOKEN_FIELDS[:3])
    return Usage.of(prompt, tokens["output_tokens"])


def _track(event: RawMessageStreamEvent, state: StreamState, tokens: dict[str, int]) -> None:
    """Record the model, usage and stop reason of `message_start` and `message_delta` events."""
    if event.type == "message_start":
        if isinstance(event.message.model, str):
            state.model = event.message.model
        state.usage = _count_tokens(event.message.usage, tokens)
    elif event.type == "message_delta":
        state.usage = _count_tokens(event.usage, tokens) or state.usage
        if event.delta.stop_reason is not None:
            state.finish_reason = normalize_finish_reason(event.delta.stop_reason)


def _delta_text(event: RawMessageStreamEvent) -> str | None:
    """The text of a `text_delta` event, None for every other event."""
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return event.delta.text
    return None
