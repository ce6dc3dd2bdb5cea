"""Runtime: execute routing decisions against LLM providers, safely and cheaply.

The core router never imports this package. Provider SDKs are imported only when a client that
needs them is built, so `import stratarouter_core.runtime` works with no extra installed.
"""

from __future__ import annotations

from .errors import (
    CircuitOpenError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    RetryExhaustedError,
)
from .executor import Attempt, ExecutionOutcome, Executor, Target
from .providers import (
    AnthropicClient,
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    CostEstimate,
    GoogleClient,
    LocalClient,
    ModelPrice,
    OpenAIClient,
    PriceTable,
    ProviderClient,
    Usage,
)
from .resilience import BreakerRegistry, CircuitBreaker, RetryPolicy

__all__ = [
    "AnthropicClient",
    "Attempt",
    "BreakerRegistry",
    "ChatMessage",
    "CircuitBreaker",
    "CircuitOpenError",
    "CompletionRequest",
    "CompletionResponse",
    "CostEstimate",
    "ExecutionOutcome",
    "Executor",
    "GoogleClient",
    "LocalClient",
    "MalformedResponseError",
    "ModelPrice",
    "OpenAIClient",
    "PriceTable",
    "ProviderClient",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RetryExhaustedError",
    "RetryPolicy",
    "Target",
    "Usage",
]
