"""OpenAI chat completions through the official `openai` SDK (extra `openai`)."""

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
    from openai import AsyncOpenAI
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

__all__ = ["OpenAIClient"]


class OpenAIClient(SDKClient["ChatCompletion", "ChatCompletionChunk"]):
    """Chat completions on OpenAI, or any server that speaks its API, via `openai.AsyncOpenAI`.

    The SDK's own retries are disabled (`max_retries=0`): retrying is the executor's job, with
    one policy for every provider. Optional fields are sent in the request body as they are, so
    `CompletionRequest.params` can carry any parameter the server accepts.

    Args:
        api_key: API key; None lets the SDK read `OPENAI_API_KEY`.
        base_url: API root including the version, e.g. `http://127.0.0.1:8000/v1`; None lets
            the SDK use `OPENAI_BASE_URL` or `https://api.openai.com/v1`.
        organization: OpenAI organization id, if any.
        price_table: Prices for `cost_usd`; default `PriceTable()`.
        client: A ready `AsyncOpenAI` to use instead (it is copied with `max_retries=0`, and
            left open by `aclose`).

    Example:
        >>> import asyncio
        >>> from stratarouter_runtime.testing import FakeProviderServer
        >>> with FakeProviderServer() as server:
        ...     async def main():
        ...         async with OpenAIClient(api_key="k", base_url=server.openai_base_url) as llm:
        ...             request = CompletionRequest.from_text("gpt-4o-mini", "hi")
        ...             return (await llm.complete(request, timeout=10)).text
        ...     asyncio.run(main())
        'echo: hi'
    """

    name = "openai"
    _end_marker = "a finish_reason"
    _max_tokens_field = "max_completion_tokens"
    _stream_usage = True

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        price_table: PriceTable | None = None,
        client: AsyncOpenAI | None = None,
    ) -> None:
        """Create the SDK client (no network I/O happens here)."""
        super().__init__(price_table)
        require("openai", extra="openai")
        import openai

        self._owns_client = client is None
        if client is not None:
            self._client = client.with_options(max_retries=0)
            return
        try:
            self._client = openai.AsyncOpenAI(
                api_key=api_key, base_url=base_url, organization=organization, max_retries=0
            )
        except openai.OpenAIError as exc:
            raise ConfigError(f"{type(self).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP connection pool (not the one of a client passed in)."""
        if self._owns_client:
            await self._client.close()

    def _model(self, request: CompletionRequest) -> str:
        return request.model

    def _messages(self, request: CompletionRequest) -> list[ChatCompletionMessageParam]:
        messages: list[dict[str, str]] = []
        if request.system_prompt:
            messages.append({"role": "system", "content": request.system_prompt})
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        return cast("list[ChatCompletionMessageParam]", messages)

    def _body(self, request: CompletionRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body[self._max_tokens_field] = request.max_tokens
        if stream and self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        body.update(request.params)
        return body

    async def _create(self, request: CompletionRequest, timeout: float) -> ChatCompletion:
        return await self._client.chat.completions.create(
            model=self._model(request),
            messages=self._messages(request),
            stream=False,
            timeout=timeout,
            extra_body=self._body(request, stream=False),
        )

    def _read_response(self, response: ChatCompletion, reported: Reported) -> str:
        choice = response.choices[0]
        text = choice.message.content or ""
        if not isinstance(text, str):
            raise TypeError(f"message content is {type(text).__name__}, not str")
        reported.usage = _usage(response.usage)
        reported.model = text_or_none(response.model)
        reported.finish_reason = normalize_finish_reason(choice.finish_reason)
        return text

    async def _events(
        self, request: CompletionRequest, timeout: float
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        stream = await self._client.chat.completions.create(
            model=self._model(request),
            messages=self._messages(request),
            stream=True,
            timeout=timeout,
            extra_body=self._body(request, stream=True),
        )
        async with stream:
            async for chunk in stream:
                yield chunk

    def _read_event(self, event: ChatCompletionChunk, reported: Reported) -> str | None:
        # With include_usage, a last chunk with no choices carries the totals.
        reported.usage = _usage(event.usage) or reported.usage
        reported.model = text_or_none(event.model) or reported.model
        texts = []
        for choice in event.choices:
            if choice.delta and choice.delta.content:
                texts.append(choice.delta.content)
            if choice.finish_reason is not None:
                reported.ended = True
                reported.finish_reason = normalize_finish_reason(choice.finish_reason)
        return "".join(texts)

    def _map_error(self, exc: Exception) -> ProviderError | None:
        import openai

        return stainless_error(self.name, exc, openai, openai.OpenAIError)


def _usage(usage: CompletionUsage | None) -> Usage | None:
    """Token counts of a completion or of a stream's usage chunk; None when absent."""
    return None if usage is None else Usage.of(usage.prompt_tokens, usage.completion_tokens)
