"""Self-hosted models behind an OpenAI-compatible server: Ollama, vLLM, TGI, llama.cpp."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from .base import CompletionRequest, Usage
from .openai import OpenAIClient
from .pricing import CostEstimate, PriceTable

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["LocalClient"]


class LocalClient(OpenAIClient):
    """An OpenAI-compatible server you run yourself; calls cost nothing, whatever their usage.

    Args:
        base_url: API root including the version, e.g. `http://127.0.0.1:11434/v1` for Ollama
            or `http://127.0.0.1:8000/v1` for vLLM.
        model_aliases: Names your routes use -> names the server knows
            (`{"small": "llama3.2:3b-instruct-q4_K_M"}`); other names pass through.
        api_key: Sent as a bearer token; most local servers ignore it.
        client: A ready `AsyncOpenAI` to use instead.
        stream_usage: Ask for token usage in streams (`stream_options.include_usage`); turn it
            off for servers that reject the field. A stream whose server sent no usage (this
            off, or a server that ignores the field) completes with `usage` None: unknown.

    Example:
        >>> LocalClient("http://127.0.0.1:11434/v1", model_aliases={"small": "llama3.2"}).name
        'local'
    """

    name = "local"
    _max_tokens_field = "max_tokens"  # what every OpenAI-compatible server understands

    def __init__(
        self,
        base_url: str,
        model_aliases: Mapping[str, str] | None = None,
        api_key: str = "not-needed",
        *,
        client: AsyncOpenAI | None = None,
        stream_usage: bool = True,
    ) -> None:
        """Create the SDK client for `base_url` (no network I/O happens here)."""
        super().__init__(
            api_key=api_key, base_url=base_url, price_table=PriceTable({}), client=client
        )
        self.model_aliases: Mapping[str, str] = MappingProxyType(dict(model_aliases or {}))
        self._stream_usage = stream_usage

    def _model(self, request: CompletionRequest) -> str:
        return self.model_aliases.get(request.model, request.model)

    def _cost(self, usage: Usage | None, *models: str | None) -> CostEstimate:
        return CostEstimate(0.0, known=True, priced_as="local")
