"""Anthropic Messages API through the official `anthropic` SDK (extra `anthropic`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from stratarouter_core.errors import ConfigError

from stratarouter_runtime._deps import require

from ..errors import ProviderError
from ._sdk import Reported, SDKClient, normalize_finish_reason, stainless_error, text_or_none
from .base import CompletionRequest, Usage
from .pricing import PriceTable

if TYPE_CHECKING:
    from anthropic import APIStatusError, AsyncAnthropic
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


class AnthropicClient(SDKClient["Message", "RawMessageStreamEvent"]):
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
        >>> from stratarouter_runtime.testing import FakeProviderServer
        >>> with FakeProviderServer() as server:
        ...     async def main():
        ...         async with AnthropicClient(api_key="k", base_url=server.base_url) as llm:
        ...             request = CompletionRequest.from_text("claude-haiku-4-5", "hi")
        ...             return (await llm.complete(request, timeout=10)).finish_reason
        ...     asyncio.run(main())
        'stop'
    """

    name = "anthropic"
    _end_marker = "message_stop"

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

    async def _create(self, request: CompletionRequest, timeout: float) -> Message:
        return await self._client.messages.create(
            model=request.model,
            messages=self._messages(request),
            max_tokens=request.max_tokens or self.default_max_tokens,
            stream=False,
            timeout=timeout,
            extra_body=self._body(request),
        )

    def _read_response(self, response: Message, reported: Reported) -> str:
        reported.usage = _count_tokens(response.usage, reported.tokens)
        reported.model = text_or_none(response.model)
        reported.finish_reason = normalize_finish_reason(response.stop_reason)
        return "".join(block.text for block in response.content if block.type == "text")

    async def _events(
        self, request: CompletionRequest, timeout: float
    ) -> AsyncGenerator[RawMessageStreamEvent, None]:
        stream = await self._client.messages.create(
            model=request.model,
            messages=self._messages(request),
            max_tokens=request.max_tokens or self.default_max_tokens,
            stream=True,
            timeout=timeout,
            extra_body=self._body(request),
        )
        async with stream:
            async for event in stream:
                yield event

    def _read_event(self, event: RawMessageStreamEvent, reported: Reported) -> str | None:
        # message_start holds the input counts, message_delta the stop reason and running totals.
        if event.type == "message_start":
            reported.model = text_or_none(event.message.model) or reported.model
            reported.usage = _count_tokens(event.message.usage, reported.tokens)
        elif event.type == "message_delta":
            reported.usage = _count_tokens(event.usage, reported.tokens) or reported.usage
            if event.delta.stop_reason is not None:
                reported.finish_reason = normalize_finish_reason(event.delta.stop_reason)
        elif event.type == "message_stop":
            reported.ended = True
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            return event.delta.text
        return None

    def _map_error(self, exc: Exception) -> ProviderError | None:
        import anthropic

        return stainless_error(
            self.name, exc, anthropic, anthropic.AnthropicError, status=_status_code
        )


def _status_code(exc: APIStatusError) -> int:
    """The HTTP status of `exc`, or for an `error` event in a stream begun with 200, its type's."""
    if exc.status_code < 400:
        return _STREAM_ERROR_STATUS.get(_error_type(exc.body), 500)
    return exc.status_code


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
