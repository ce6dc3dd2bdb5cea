"""Runtime: execute routing decisions against LLM providers, safely and cheaply.

The core router never imports this package. Provider SDKs are imported only when a client that
needs them is built, so `import stratarouter_runtime` works with no extra installed.

Like any library it prints nothing by itself: its logger (``stratarouter_runtime``) has only a
`logging.NullHandler`, so warnings such as a failed execution or an opening breaker reach your
handlers when you configure logging (or `ObservabilityConfig(json_logs=True)`), and otherwise
go nowhere, instead of to Python's last-resort stderr handler.
"""

from __future__ import annotations

import logging

from .bridge import CoreRuntimeBridge, ExecutionResult, ExecutionStream, HandlerError
from .config import (
    BatchingConfig,
    BreakerConfig,
    CacheConfig,
    ObservabilityConfig,
    ProviderConfig,
    RetryConfig,
    RuntimeConfig,
    StateConfig,
)
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
from .observability import Observability
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
from .state import (
    ExecutionRecord,
    MemoryStateStore,
    PostgresStateStore,
    RecoveryReport,
    SQLiteStateStore,
    StateError,
    StateStore,
)

# The standard library's advice for libraries: a NullHandler on the top-level logger, so that an
# application without logging configuration does not get our warnings on stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AnthropicClient",
    "Attempt",
    "BatchingConfig",
    "BreakerConfig",
    "BreakerRegistry",
    "CacheConfig",
    "ChatMessage",
    "CircuitBreaker",
    "CircuitOpenError",
    "CompletionRequest",
    "CompletionResponse",
    "CoreRuntimeBridge",
    "CostEstimate",
    "ExecutionOutcome",
    "ExecutionRecord",
    "ExecutionResult",
    "ExecutionStream",
    "Executor",
    "GoogleClient",
    "HandlerError",
    "LocalClient",
    "MalformedResponseError",
    "MemoryStateStore",
    "ModelPrice",
    "Observability",
    "ObservabilityConfig",
    "OpenAIClient",
    "PostgresStateStore",
    "PriceTable",
    "ProviderClient",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RecoveryReport",
    "RetryConfig",
    "RetryExhaustedError",
    "RetryPolicy",
    "RuntimeConfig",
    "SQLiteStateStore",
    "StateConfig",
    "StateError",
    "StateStore",
    "Target",
    "Usage",
]
