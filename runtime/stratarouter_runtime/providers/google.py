"""Gemini through the official `google-genai` SDK (extra `google`)."""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from stratarouter_core.errors import ConfigError

from stratarouter_runtime._deps import require

from ..errors import ProviderConnectionError, ProviderError, ProviderRequestError, RateLimitError
from ._sdk import (
    Reported,
    SDKClient,
    error_from_status,
    malformed,
    normalize_finish_reason,
    text_or_none,
    transport_error,
)
from .base import CompletionRequest, Usage
from .pricing import PriceTable

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai.types import (
        Content,
        GenerateContentConfig,
        GenerateContentResponse,
        GenerateContentResponseUsageMetadata,
        HttpOptions,
    )

__all__ = ["GoogleClient"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class GoogleClient(SDKClient["GenerateContentResponse", "GenerateContentResponse"]):
    """Gemini models via `google.genai.Client(...).aio` (Gemini Developer API).

    The SDK's retries are disabled (`HttpRetryOptions(attempts=1)`): the executor retries. The
    system prompt becomes `system_instruction`; `CompletionRequest.params` are fields of
    `GenerateContentConfig` (`top_p`, `stop_sequences`, `seed`...).

    Args:
        api_key: API key; None lets the SDK read `GOOGLE_API_KEY` / `GEMINI_API_KEY`.
        base_url: API root without the version, e.g. `http://127.0.0.1:8080/`.
        price_table: Prices for `cost_usd`; default `PriceTable()`.
        client: A ready `genai.Client` to use instead (left open by `aclose`).
        api_version: API version path segment; None keeps the SDK default (`v1beta`).

    Example:
        >>> import asyncio
        >>> from stratarouter_runtime.testing import FakeProviderServer
        >>> with FakeProviderServer() as server:
        ...     async def main():
        ...         async with GoogleClient(api_key="k", base_url=server.base_url) as llm:
        ...             request = CompletionRequest.from_text("gemini-2.0-flash", "hi")
        ...             return (await llm.complete(request, timeout=10)).usage.total_tokens
        ...     asyncio.run(main())
        3
    """

    name = "google"
    _end_marker = "a finishReason"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        price_table: PriceTable | None = None,
        client: Client | None = None,
        *,
        api_version: str | None = None,
    ) -> None:
        """Create the SDK client (no network I/O happens here)."""
        super().__init__(price_table)
        require("google.genai", extra="google")
        from google import genai
        from google.genai import types

        self._owns_client = client is None
        self._http: Any = None
        if client is not None:
            self._client = client
            return
        options = types.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        # Our own httpx client keeps the SDK off aiohttp (used whenever aiohttp is installed),
        # whose session subclass warns on creation and which retries connection errors itself.
        self._http = _async_http_client(options)
        options.httpx_async_client = self._http
        try:
            self._client = genai.Client(api_key=api_key, vertexai=False, http_options=options)
        except ValueError as exc:  # the SDK's "missing key" error
            raise ConfigError(f"GoogleClient: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP connection pools (not those of a client passed in)."""
        if self._owns_client:
            await self._client.aio.aclose()
            self._client.close()
            await self._http.aclose()

    @staticmethod
    def _contents(request: CompletionRequest) -> list[Content]:
        from google.genai import types

        return [
            types.Content(
                role="model" if m.role == "assistant" else "user",
                parts=[types.Part(text=m.content)],
            )
            for m in request.messages
            if m.role != "system"
        ]

    def _config(self, request: CompletionRequest, timeout: float) -> GenerateContentConfig:
        from google.genai import types

        fields: dict[str, Any] = {
            "http_options": types.HttpOptions(timeout=max(1, round(timeout * 1000))),
            "system_instruction": request.system_text(),
            "temperature": request.temperature,
            "max_output_tokens": request.max_tokens,
        }
        fields.update(request.params)
        try:
            return types.GenerateContentConfig.model_validate(fields)
        except ValueError as exc:  # pydantic.ValidationError: an unknown or invalid param
            raise ProviderRequestError(
                f"{self.name}: invalid generation parameters: {exc}", provider=self.name
            ) from exc

    async def _create(self, request: CompletionRequest, timeout: float) -> GenerateContentResponse:
        return await self._client.aio.models.generate_content(
            model=request.model,
            contents=self._contents(request),
            config=self._config(request, timeout),
        )

    def _read_response(self, response: GenerateContentResponse, reported: Reported) -> str:
        return self._read_event(response, reported)

    async def _events(
        self, request: CompletionRequest, timeout: float
    ) -> AsyncGenerator[GenerateContentResponse, None]:
        chunks = await self._client.aio.models.generate_content_stream(
            model=request.model,
            contents=self._contents(request),
            config=self._config(request, timeout),
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):  # already closed by its own failure
                    await aclose()

    def _read_event(self, event: GenerateContentResponse, reported: Reported) -> str:
        text, finish = _text_and_finish(event)
        # Each chunk's usageMetadata holds running totals: the last one is final.
        reported.usage = _usage(event.usage_metadata) or reported.usage
        reported.model = text_or_none(event.model_version) or reported.model
        if finish is None and not event.candidates and event.prompt_feedback:
            finish = "content_filter"  # the prompt itself was blocked: no answer will follow
        if finish is not None:
            reported.finish_reason, reported.ended = finish, True
        return text

    def _map_error(self, exc: Exception) -> ProviderError | None:
        from google.genai import errors

        interrupted = getattr(errors, "ContinuationInterruptedError", None)
        if interrupted is not None and isinstance(exc, interrupted):
            cause = exc.__cause__
            if isinstance(cause, Exception):
                return self._map_error(cause) or transport_error(self.name, cause)
            return ProviderConnectionError(f"{self.name}: {exc}", provider=self.name)
        if isinstance(exc, errors.APIError):
            return self._status_error(exc)
        if isinstance(exc, errors.UnknownApiResponseError):
            return malformed(self.name, exc)
        return None

    def _status_error(self, exc: Any) -> ProviderError:
        code = exc.code if isinstance(exc.code, int) else 0
        headers = getattr(exc.response, "headers", None)
        message = exc.message or exc
        if not code:
            return ProviderError(f"{self.name}: {message}", provider=self.name)
        error = error_from_status(self.name, code, message, headers)
        if isinstance(error, RateLimitError) and error.retry_after is None:
            error.retry_after = _retry_delay(exc.details)
        return error


def _async_http_client(options: HttpOptions) -> Any:
    """An async client of the HTTP library (httpx2 or httpx) the installed SDK expects."""
    from google.genai import _api_client

    choose = getattr(_api_client, "_get_http_client_backend", None)
    backend = choose(options) if choose is not None else "httpx"
    return importlib.import_module(backend).AsyncClient(follow_redirects=True)


def _text_and_finish(response: GenerateContentResponse) -> tuple[str, str | None]:
    """The answer text (thoughts excluded) and normalised finish reason of the first candidate."""
    if not response.candidates:
        return "", None
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    return text, normalize_finish_reason(candidate.finish_reason)


def _usage(meta: GenerateContentResponseUsageMetadata | None) -> Usage | None:
    """Token counts of a response or chunk (thoughts are billed as output); None if absent."""
    if meta is None:
        return None
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage.of(meta.prompt_token_count, output)


def _retry_delay(details: object) -> float | None:
    """`retryDelay` of a google.rpc.RetryInfo detail in an error body ("23s"), if any."""
    error = details.get("error", details) if isinstance(details, Mapping) else None
    items = error.get("details") if isinstance(error, Mapping) else None
    for item in items if isinstance(items, list) else []:
        delay = item.get("retryDelay") if isinstance(item, Mapping) else None
        match = _DURATION.match(delay) if isinstance(delay, str) else None
        if match:
            return float(match.group(1))
    return None
