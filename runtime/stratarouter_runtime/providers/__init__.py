"""Model providers behind one interface; each SDK is imported only when its client is built."""

from __future__ import annotations

from .anthropic import AnthropicClient
from .base import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    ProviderClient,
    Role,
    TextStream,
    Usage,
)
from .google import GoogleClient
from .local import LocalClient
from .openai import OpenAIClient
from .pricing import DEFAULT_PRICES, CostEstimate, ModelPrice, PriceTable

__all__ = [
    "DEFAULT_PRICES",
    "AnthropicClient",
    "ChatMessage",
    "CompletionRequest",
    "CompletionResponse",
    "CostEstimate",
    "GoogleClient",
    "LocalClient",
    "ModelPrice",
    "OpenAIClient",
    "PriceTable",
    "ProviderClient",
    "Role",
    "TextStream",
    "Usage",
]
