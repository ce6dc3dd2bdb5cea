"""The runtime bridge: turn a routing decision into a durable, cached, de-duplicated model call.

`CoreRuntimeBridge.execute` takes a `RouteResult` and the query, and runs::

    target (route metadata, a registered handler, or the default target)
      -> execution record created (state store)
      -> semantic cache lookup            (hit: record finished, done)
      -> batch coordinator (single-flight: concurrent equivalent requests share one call)
      -> executor (timeout, retries, circuit breaker, fallbacks; every attempt recorded)
      -> result persisted, then cached, then the record is marked succeeded
      -> metrics, spans and one JSON log line

A bridge restarted after a crash recovers the executions its predecessor left unfinished
(`recover`, run by `start`): a persisted result is finished without calling the provider again;
anything else is re-executed or marked failed, as ``config.state.recovery_policy`` says.

Modules: `targets` (decision -> target or handler, and the request), `handlers` (the handler
registry), `results` (`ExecutionResult`, `ExecutionStream`, payloads), `caching` and `reporting`
(cache use and outcome bookkeeping that never fail an execution), `core` (wiring and the shared
stages), `lifecycle` (start, close, leases, recovery), `pipeline` (`execute`) and `stream`.
"""

from __future__ import annotations

from .handlers import Handler, HandlerError
from .handlers import HandlerOutput as HandlerOutput
from .pipeline import ExecutePipeline
from .results import ExecutionResult, ExecutionStream
from .stream import StreamPipeline
from .targets import providers_from_config as providers_from_config

# HandlerOutput and providers_from_config stay importable from here as before the split,
# without joining __all__ (hence their redundant aliases).
__all__ = ["CoreRuntimeBridge", "ExecutionResult", "ExecutionStream", "Handler", "HandlerError"]


class CoreRuntimeBridge(ExecutePipeline, StreamPipeline):
    """Executes routing decisions against providers or Python handlers, durably and cheaply.

    Args:
        config: Runtime settings.
        router: The router whose routes' metadata name the targets (``provider``, ``model``,
            ``system_prompt``, ``params``); its encoder embeds queries for the cache.
        providers: Clients by provider key; None builds them from the config's API keys
            (`RuntimeConfig.from_env` reads them from the environment).
        encoder: Embeds queries for the semantic cache and batching (default: the router's).
        handlers: ``{route: fn}``; same as calling `register_handler` for each.
        state: State store (default: the one ``config.state.backend`` names).
        cache: Semantic cache (default: built from ``config.cache``).
        observability: Metrics/tracing/logging (default: built from the config).
        model_router: A fitted `stratarouter_core.ModelRouter`; a route whose metadata lists
            ``models`` (a pool) runs on the one it picks for the query (see `pool_target`).

    Example:
        >>> import asyncio
        >>> from stratarouter_runtime.config import RuntimeConfig
        >>> from stratarouter_core.types import RouteResult
        >>> config = RuntimeConfig()
        >>> bridge = CoreRuntimeBridge(config, handlers={"greet": lambda q, ctx: "hello!"})
        >>> decision = RouteResult(route_id="greet", confidence=0.9, candidates=(), latency_us=1)
        >>> async def main():
        ...     async with bridge:
        ...         return (await bridge.execute(decision, "hi there")).response
        >>> asyncio.run(main())
        'hello!'
    """
