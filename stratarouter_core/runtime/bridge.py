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
anything else is re-executed or marked failed, as ``recovery_policy`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, InvalidQueryError, RouteNotFoundError, StrataRouterError
from ..types import RouteResult
from .batching import BatchCoordinator
from .cache import (
    CacheBackendError,
    CacheHit,
    MemoryCacheBackend,
    RedisCacheBackend,
    SemanticCache,
    UncacheableResponseError,
    params_digest,
)
from .config import RuntimeConfig, parse_target_spec
from .executor import Attempt, ExecutionOutcome, Executor, Target
from .observability import Observability
from .providers.base import CompletionRequest, ProviderClient, TextStream, Usage
from .resilience import BreakerRegistry, BreakerState, RetryPolicy
from .state import (
    ExecutionRecord,
    ExecutionStatus,
    RecoveryReport,
    StateStore,
    StreamCheckpointer,
    open_state_store,
    recover_executions,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..encoders.base import BaseEncoder
    from ..router import Router

__all__ = ["CoreRuntimeBridge", "ExecutionResult", "ExecutionStream", "Handler", "HandlerError"]

logger = logging.getLogger("stratarouter_core.runtime")
_T = TypeVar("_T")

HandlerOutput = str | Mapping[str, Any]
Handler = Callable[[str, Mapping[str, Any]], HandlerOutput | Awaitable[HandlerOutput]]
"""A route executed by Python code: ``fn(query, context) -> str | Mapping`` (sync or async)."""

_ENV_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}
_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class HandlerError(StrataRouterError, RuntimeError):
    """A registered handler raised, returned something unusable, or timed out."""


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What one execution produced.

    Attributes:
        response: The answer text.
        provider: The provider key that answered (``"handler"`` for a handler route).
        model: The model that answered, as the provider reported it (the route for a handler).
        cached: True when the semantic cache served the answer (no provider call).
        latency_ms: Time spent in the bridge, the provider call included.
        cost_usd: What this execution cost (0.0 for cache hits and shared calls, and when the
            cost is not known).
        usage: Tokens this execution consumed (zero for cache hits and shared calls); None
            when the provider did not report them, as some OpenAI-compatible servers do not
            in streams.
        execution_id: Id of the durable execution record.
        route_id: The decision's route.
        attempts: Every provider attempt made for this execution (empty when none was needed).
        finish_reason: Why generation stopped (``"stop"``, ``"length"``...).
        deduplicated: True when another concurrent request's provider call served this one.
        output: The mapping a handler returned, if it returned one.
        cost_known: False when `cost_usd` is not the real cost: the model has no price, or
            the usage is unknown.
    """

    response: str
    provider: str
    model: str
    cached: bool
    latency_ms: float
    cost_usd: float
    usage: Usage | None
    execution_id: str
    route_id: str | None
    attempts: tuple[Attempt, ...] = ()
    finish_reason: str | None = None
    deduplicated: bool = False
    output: Mapping[str, Any] | None = None
    cost_known: bool = True

    @classmethod
    def from_payload(
        cls,
        payload: Mapping[str, Any],
        *,
        execution_id: str,
        route_id: str | None,
        latency_ms: float,
        cached: bool = False,
        deduplicated: bool = False,
        attempts: tuple[Attempt, ...] = (),
    ) -> ExecutionResult:
        """Rebuild a result from the persisted (or cached) payload."""
        spent = not (cached or deduplicated)
        usage = payload.get("usage") if spent else _NO_USAGE
        output = payload.get("output")
        return cls(
            response=str(payload["response"]),
            provider=str(payload.get("provider", "")),
            model=str(payload.get("model", "")),
            cached=cached,
            latency_ms=latency_ms,
            cost_usd=float(payload.get("cost_usd") or 0.0) if spent else 0.0,
            usage=(
                None
                if usage is None
                else Usage.of(usage.get("prompt_tokens"), usage.get("completion_tokens"))
            ),
            execution_id=execution_id,
            route_id=route_id,
            attempts=attempts,
            finish_reason=payload.get("finish_reason"),
            deduplicated=deduplicated,
            output=None if output is None else MappingProxyType(dict(output)),
            cost_known=bool(payload.get("cost_known", True)) if spent else True,
        )


@dataclass(frozen=True, slots=True)
class _Resolved:
    """Where an execution goes: a provider target or a handler, plus its cache/batch keys."""

    kind: Literal["provider", "handler"]
    key: str
    target: Target | None = None
    handler: str | None = None
    cache_params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_target(cls, target: Target) -> _Resolved:
        params = {"system_prompt": target.system_prompt, "params": dict(target.params)}
        return cls("provider", target.key, target=target, cache_params=params)

    @classmethod
    def for_handler(cls, route: str) -> _Resolved:
        return cls("handler", f"handler:{route}", handler=route)

    def to_json(self) -> dict[str, Any]:
        if self.target is None:
            return {"kind": "handler", "route": self.handler}
        return {
            "kind": "provider",
            "provider": self.target.provider,
            "model": self.target.model,
            "system_prompt": self.target.system_prompt,
            "params": dict(self.target.params),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Resolved:
        if data.get("kind") == "handler":
            return cls.for_handler(str(data["route"]))
        return cls.for_target(
            Target(
                provider=str(data["provider"]),
                model=str(data["model"]),
                system_prompt=data.get("system_prompt"),
                params=data.get("params") or {},
            )
        )


class ExecutionStream(TextStream[ExecutionResult]):
    """The chunks of a streamed execution (async iterator); `result` is set once it completes.

    A stream that fails or is closed early is recorded as failed and is never cached.
    """

    def __init__(
        self, produce: Callable[[ExecutionStream], AsyncGenerator[str | ExecutionResult, None]]
    ) -> None:
        """Created by `CoreRuntimeBridge.stream`; `produce` fills in `execution_id`."""
        self.execution_id: str | None = None
        super().__init__(produce(self))

    async def collect(self) -> ExecutionResult:
        """Consume the remaining chunks and return the result."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result


def providers_from_config(config: RuntimeConfig) -> dict[str, ProviderClient]:
    """Provider clients for the API keys the config holds (a missing key: no such provider)."""
    providers: dict[str, ProviderClient] = {}
    if config.openai_api_key:
        from .providers.openai import OpenAIClient

        providers["openai"] = OpenAIClient(config.openai_api_key, config.openai_base_url)
    if config.anthropic_api_key:
        from .providers.anthropic import AnthropicClient

        providers["anthropic"] = AnthropicClient(
            config.anthropic_api_key, config.anthropic_base_url
        )
    if config.google_api_key:
        from .providers.google import GoogleClient

        providers["google"] = GoogleClient(config.google_api_key, config.google_base_url)
    return providers


def _payload(outcome: ExecutionOutcome) -> dict[str, Any]:
    response, usage = outcome.response, outcome.response.usage
    return {
        "response": response.text,
        "provider": outcome.target.provider,
        "model": response.model or outcome.target.model,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "cost_usd": response.cost_usd,
        "cost_known": response.cost_known,
        "finish_reason": response.finish_reason,
        "target_key": outcome.target.key,
    }


def _request(target: Target, query: str) -> CompletionRequest:
    """The request for `query`; ``temperature``/``max_tokens`` in the params get their fields."""
    params = dict(target.params)
    temperature, max_tokens = params.pop("temperature", None), params.pop("max_tokens", None)
    return CompletionRequest.from_text(
        target.model,
        query,
        system_prompt=target.system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        params=params,
    )


class _AttemptLog:
    """Collects a call's attempts: failures are persisted at once (in the background, while the
    executor backs off), the successful one goes with the result in a single write."""

    def __init__(self, state: StateStore, execution_id: str, metrics_retry: Callable[..., None]):
        self.attempts: list[Attempt] = []
        self.unsaved: list[dict[str, Any]] = []
        self._state, self._id, self._retry = state, execution_id, metrics_retry
        self._writes: list[asyncio.Task[None]] = []

    def __call__(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        if attempt.number > 1:
            provider, _, model = attempt.target_key.partition(":")
            self._retry(provider=provider, model=model)
        data = {
            "target_key": attempt.target_key,
            "number": attempt.number,
            "started_at": attempt.started_at,
            "duration_ms": attempt.duration_ms,
            "outcome": attempt.outcome,
            "error": attempt.error,
            "status": attempt.status,
        }
        if attempt.ok:
            self.unsaved.append(data)
        else:
            self._writes.append(asyncio.ensure_future(self._state.record_attempt(self._id, data)))

    async def settle(self) -> None:
        """Wait until every failed attempt is persisted."""
        if self._writes:
            writes, self._writes = self._writes, []
            await asyncio.gather(*writes)


class CoreRuntimeBridge:
    """Executes routing decisions against providers or Python handlers, durably and cheaply.

    Args:
        config: Runtime settings.
        router: The router whose routes' metadata name the targets (``provider``, ``model``,
            ``system_prompt``, ``params``); its encoder embeds queries for the cache.
        providers: Clients by provider key; None builds them from the config's API keys
            (`RuntimeConfig.from_env` reads them from the environment).
        encoder: Embeds queries for the semantic cache and batching (default: the router's).
        handlers: ``{route: fn}``; same as calling `register_handler` for each.
        state: State store (default: the one ``config.state_backend`` names).
        cache: Semantic cache (default: built from the ``cache_*`` settings).
        observability: Metrics/tracing/logging (default: built from the config).

    Example:
        >>> import asyncio
        >>> from stratarouter_core.types import RouteResult
        >>> config = RuntimeConfig(state_backend="memory", log_level="warning")
        >>> bridge = CoreRuntimeBridge(config, handlers={"greet": lambda q, ctx: "hello!"})
        >>> decision = RouteResult(route_id="greet", confidence=0.9, candidates=(), latency_us=1)
        >>> async def main():
        ...     async with bridge:
        ...         return (await bridge.execute(decision, "hi there")).response
        >>> asyncio.run(main())
        'hello!'
    """

    def __init__(
        self,
        config: RuntimeConfig,
        router: Router | None = None,
        providers: Mapping[str, ProviderClient] | None = None,
        *,
        encoder: BaseEncoder | None = None,
        handlers: Mapping[str, Handler] | None = None,
        state: StateStore | None = None,
        cache: SemanticCache | None = None,
        observability: Observability | None = None,
    ) -> None:
        """Wire the parts; nothing is opened before `start` (or the first `execute`)."""
        if not isinstance(config, RuntimeConfig):
            raise ConfigError(f"config must be a RuntimeConfig, got {type(config).__name__}")
        self.config = config
        self.router = router
        self.worker_id = (
            config.worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._owned_providers = providers is None
        self.providers: Mapping[str, ProviderClient] = MappingProxyType(
            dict(providers_from_config(config) if providers is None else providers)
        )
        self._encoder = encoder
        self._handlers: dict[str, Handler] = {}
        for route, fn in (handlers or {}).items():
            self.register_handler(route, fn)
        self.observability = observability or Observability(config)
        self.state: StateStore = state or open_state_store(config)
        self.cache = cache if cache is not None else self._build_cache()
        self.batcher = (
            BatchCoordinator(
                window_ms=config.batch_window_ms,
                max_size=config.batch_max_size,
                similarity_threshold=config.batch_similarity_threshold,
            )
            if config.batch_enabled
            else None
        )
        self.breakers = BreakerRegistry(
            failure_threshold=config.breaker_failure_threshold,
            window_s=config.breaker_window_s,
            reset_timeout_s=config.breaker_reset_timeout_s,
            on_state_change=self._breaker_changed,
        )
        self.executor = Executor(
            self.providers,
            retry=RetryPolicy(
                max_retries=config.max_retries,
                base_delay_ms=config.retry_delay_ms,
                max_delay_ms=max(10_000.0, config.retry_delay_ms),
            ),
            timeout_s=config.execution_timeout,
            breakers=self.breakers,
            fallbacks={
                source: [Target(*parse_target_spec(spec)) for spec in chain]
                for source, chain in config.fallbacks.items()
            },
        )
        self._default = (
            None
            if config.default_target is None
            else Target(*parse_target_spec(config.default_target))
        )
        self.last_recovery: RecoveryReport | None = None
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._inflight: set[str] = set()  # executions this bridge is running right now
        self._recover_lock: asyncio.Lock | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def _build_cache(self) -> SemanticCache | None:
        config = self.config
        if not config.cache_enabled:
            return None
        backend = (
            MemoryCacheBackend()
            if config.cache_backend == "memory"
            else RedisCacheBackend(str(config.redis_url))
        )
        return SemanticCache(
            backend,
            similarity_threshold=config.cache_similarity_threshold,
            ttl_s=float(config.cache_ttl),
            namespace=config.cache_namespace,
        )

    async def start(self) -> RecoveryReport | None:
        """Open the state store, serve metrics, keep leases alive and recover (idempotent).

        Returns:
            The recovery report, when recovery ran.
        """
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return None
            await self.state.start()
            self.observability.start()
            self._heartbeat = asyncio.ensure_future(self._renew_leases())
            self._started = True
        return await self.recover() if self.config.recover_on_start else None

    async def aclose(self) -> None:
        """Stop the lease renewal and close what the bridge opened (not providers passed in)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._owned_providers:
            for client in self.providers.values():
                await client.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        await self.state.close()
        self.observability.close()
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _renew_leases(self) -> None:
        lease = self.config.lease_timeout_s
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await self.state.renew_leases(self.worker_id, time.time() + lease)
            except StrataRouterError as exc:  # keep renewing: the store may come back
                logger.warning(
                    "lease renewal failed: %s", exc, extra={"error_type": type(exc).__name__}
                )

    async def recover(self) -> RecoveryReport:
        """Finish, resume or fail the executions a crashed bridge left unfinished."""
        if not self._started:
            await self.start()
        if self._recover_lock is None:
            self._recover_lock = asyncio.Lock()
        async with self._recover_lock:  # one pass at a time: a record is never taken twice
            report = await recover_executions(
                self.state,
                worker_id=self.worker_id,
                policy=self.config.recovery_policy,
                lease_timeout_s=self.config.lease_timeout_s,
                resume=self._resume,
                on_finished=self._cache_recovered,
                exclude=self._inflight,
            )
        for outcome in ("finished", "resumed", "failed"):
            for _ in getattr(report, outcome):
                self.observability.metrics.recovered(outcome)
        self.last_recovery = report
        return report

    # -- configuration -------------------------------------------------------------------------

    def register_handler(self, route: str, fn: Handler) -> None:
        """Execute `route` by calling ``fn(query, context)`` (an agent, tool or workflow).

        `fn` may be sync (run in a worker thread) or async, and returns the answer text or a
        mapping (its ``"response"`` key, if any, is the answer text; the mapping is kept as
        `ExecutionResult.output`). Handler results are never cached nor de-duplicated.
        """
        if not isinstance(route, str) or not route.strip():
            raise ConfigError(f"handler route must be a non-blank string, got {route!r}")
        if not callable(fn):
            raise ConfigError(f"handler for route {route!r} must be callable, got {fn!r}")
        self._handlers[route] = fn

    def _resolve(self, decision: RouteResult) -> _Resolved:
        route_id = decision.route_id
        if route_id is not None and route_id in self._handlers:
            return _Resolved.for_handler(route_id)
        metadata: Mapping[str, Any] = {}
        if route_id is not None and self.router is not None:
            with contextlib.suppress(RouteNotFoundError):  # e.g. a fallback route name
                metadata = self.router.get_route(route_id).metadata
        if metadata.get("provider") or metadata.get("model"):
            target = Target.from_metadata(metadata)
        elif self._default is not None:
            target = self._default
        elif route_id is None:
            raise RouteNotFoundError(
                f"the decision has no route (confidence {decision.confidence:.2f}) and "
                "RuntimeConfig.default_target is not set"
            )
        else:
            raise ConfigError(
                f"route {route_id!r} has no 'provider'/'model' in its metadata and no handler "
                "is registered for it; set RuntimeConfig.default_target or register a handler"
            )
        if target.provider not in self.providers:
            hint = f"set {_ENV_KEYS[target.provider]}" if target.provider in _ENV_KEYS else "add it"
            raise ConfigError(
                f"route {route_id!r} needs provider {target.provider!r}, which is not configured: "
                f"{hint} (or pass providers={{{target.provider!r}: ...}})"
            )
        return _Resolved.for_target(target)

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        provider, _, model = name.partition(":")
        self.observability.metrics.breaker_state(provider=provider, model=model, state=new)
        logger.warning(
            "circuit breaker %s: %s -> %s",
            name,
            old,
            new,
            extra={"breaker": name, "breaker_state": new},
        )

    # -- helpers -------------------------------------------------------------------------------

    def _embed(self, query: str) -> NDArray[np.float32] | None:
        """The query's embedding for the cache and batching; None degrades to exact matching."""
        encode = (
            self._encoder.encode
            if self._encoder is not None
            else (self.router.encode if self.router is not None else None)
        )
        if encode is None:
            return None
        try:
            vector = np.asarray(encode([query])[0], dtype=np.float32)
        except StrataRouterError as exc:
            logger.warning("query embedding failed, exact matching only: %s", exc)
            self.observability.metrics.error(type(exc).__name__)
            return None
        norm = float(np.linalg.norm(vector))
        return vector if norm > 0.0 and np.isfinite(norm) else None

    @staticmethod
    def _namespace(config: RuntimeConfig, context: Mapping[str, Any]) -> str:
        tenant = context.get("cache_namespace") or context.get("tenant_id")
        return f"{config.cache_namespace}:{tenant}" if tenant else config.cache_namespace

    # -- execution -----------------------------------------------------------------------------

    async def execute(
        self, decision: RouteResult, query: str, context: Mapping[str, Any] | None = None
    ) -> ExecutionResult:
        """Execute `decision` for `query` and return the answer.

        Args:
            decision: What the router decided for `query`.
            query: The user's query.
            context: Caller data (persisted with the record, passed to handlers). Its
                ``tenant_id`` (or ``cache_namespace``) isolates cache entries per tenant.

        Raises:
            RouteNotFoundError: The decision has no route and there is no default target.
            ConfigError: The route names no target, or a provider that is not configured.
            ProviderError: The provider call failed (after retries and fallbacks).
            HandlerError: A handler route's function failed.
            StateError: The state store failed.
        """
        _check_query(query)
        if not self._started:
            await self.start()
        started, ctx = time.perf_counter(), dict(context or {})
        root_attributes = {"stratarouter.route_id": decision.route_id or ""}
        with self.observability.span("stratarouter.execute", root_attributes) as root:
            resolved = self._route_stage(decision)
            if resolved.kind == "handler":
                record = await self._create(decision, query, resolved, ctx, status="running")
                root.set_attribute("stratarouter.execution_id", record.id)
                payload = await self._guarded(
                    record, self._run_handler(record.id, resolved, query, ctx, already_running=True)
                )
                result = self._result(payload, record, started)
            else:
                namespace = self._namespace(self.config, ctx)
                embedding = self._embed(query) if self.cache or self.batcher else None
                hit = await self._cache_stage(query, embedding, resolved, namespace)
                if hit is not None:  # served: one write, already finished
                    record = await self._create(
                        decision, query, resolved, ctx, status="succeeded", result=hit.response
                    )
                    result = self._result(hit.response, record, started, cached=True)
                else:
                    record = await self._create(decision, query, resolved, ctx, status="running")
                    result = await self._guarded(
                        record, self._run_provider(record, resolved, embedding, namespace, started)
                    )
                root.set_attribute("stratarouter.execution_id", record.id)
            root.set_attribute("stratarouter.cached", result.cached)
        self._succeeded(result, record)
        return result

    async def _guarded(self, record: ExecutionRecord, work: Awaitable[_T]) -> _T:
        """Await `work`; on any failure (cancellation included) record it, then re-raise."""
        self._inflight.add(record.id)
        try:
            return await work
        except BaseException as exc:
            await self._failed(record, exc)
            raise
        finally:
            self._inflight.discard(record.id)

    async def _create(
        self,
        decision: RouteResult,
        query: str,
        resolved: _Resolved,
        context: Mapping[str, Any],
        *,
        status: ExecutionStatus,
        result: Mapping[str, Any] | None = None,
    ) -> ExecutionRecord:
        record = ExecutionRecord.new(
            query=query,
            target_key=resolved.key,
            target=resolved.to_json(),
            route_id=decision.route_id,
            confidence=decision.confidence,
            context=context,
            status=status,
            result=result,
            worker_id=self.worker_id,
            lease_expires_at=time.time() + self.config.lease_timeout_s,
        )
        await self.state.create(record)
        return record

    async def _cache_stage(
        self,
        query: str,
        embedding: NDArray[np.float32] | None,
        resolved: _Resolved,
        namespace: str,
    ) -> CacheHit | None:
        if self.cache is None:
            return None
        with self.observability.stage("cache", {"stratarouter.target": resolved.key}) as stage:
            hit = await self._lookup(query, embedding, resolved, namespace)
            stage.span.set_attribute("stratarouter.cache_hit", hit is not None)
        return hit

    async def run(self, query: str, context: Mapping[str, Any] | None = None) -> ExecutionResult:
        """Route `query` with the bridge's router, then execute the decision."""
        if self.router is None:
            raise ConfigError("CoreRuntimeBridge.run needs a router; use execute(decision, ...)")
        return await self.execute(await self.router.aroute(query), query, context)

    def _route_stage(self, decision: RouteResult) -> _Resolved:
        """Resolve the target inside a route span that starts when routing started."""
        self.observability.metrics.observe_stage("route", decision.latency_us / 1e6)
        start_ns = time.time_ns() - int(decision.latency_us * 1000)
        attributes = {
            "stratarouter.route_id": decision.route_id or "",
            "stratarouter.confidence": float(decision.confidence),
            "stratarouter.is_fallback": decision.is_fallback,
        }
        with self.observability.span("stratarouter.route", attributes, start_ns=start_ns) as span:
            resolved = self._resolve(decision)
            span.set_attribute("stratarouter.target", resolved.key)
        return resolved

    async def _run_provider(
        self,
        record: ExecutionRecord,
        resolved: _Resolved,
        embedding: NDArray[np.float32] | None,
        namespace: str,
        started: float,
    ) -> ExecutionResult:
        assert resolved.target is not None
        attributes = {
            "gen_ai.system": resolved.target.provider,
            "gen_ai.request.model": resolved.target.model,
        }
        with self.observability.stage("provider", attributes) as stage:
            payload, attempts, shared = await self._call(record, resolved, embedding, namespace)
            stage.span.set_attribute("stratarouter.deduplicated", shared)
        if shared:  # another request's call: persist this record's copy of the result
            await self.state.mark_succeeded(record.id, payload)
        else:
            await self._store(record.query, embedding, resolved, namespace, payload)
            await self.state.mark_succeeded(record.id)
        return self._result(payload, record, started, deduplicated=shared, attempts=attempts)

    async def _call(
        self,
        record: ExecutionRecord,
        resolved: _Resolved,
        embedding: NDArray[np.float32] | None,
        namespace: str,
    ) -> tuple[dict[str, Any], tuple[Attempt, ...], bool]:
        """The provider call, through the batch coordinator when batching is on."""
        assert resolved.target is not None
        target = resolved.target
        if self.batcher is None:
            payload, attempts = await self._provider_call(record.id, target, record.query)
            return payload, attempts, False
        done: list[tuple[Attempt, ...]] = []

        async def call() -> dict[str, Any]:
            payload, attempts = await self._provider_call(record.id, target, record.query)
            done.append(attempts)
            return payload

        key = f"{namespace}|{resolved.key}|{_digest(resolved.cache_params)}"
        outcome = await self.batcher.run(record.query, embedding, key, call)
        if outcome.shared:
            self.observability.metrics.deduplicated()
        return outcome.value, (done[0] if done else ()), outcome.shared

    async def _provider_call(
        self, execution_id: str, target: Target, query: str
    ) -> tuple[dict[str, Any], tuple[Attempt, ...]]:
        """Call the executor, then persist the result before anything else sees it."""
        log = _AttemptLog(self.state, execution_id, self.observability.metrics.retry)
        try:
            outcome = await self.executor.execute(target, _request(target, query), on_attempt=log)
        finally:
            await log.settle()
        payload = _payload(outcome)
        await self.state.save_result(execution_id, payload, attempts=log.unsaved)
        self._count_usage(outcome)
        return payload, outcome.attempts

    def _count_usage(self, outcome: ExecutionOutcome) -> None:
        """Add a provider response's tokens and cost to the metrics, or count it as unknown."""
        metrics, usage = self.observability.metrics, outcome.response.usage
        provider, model = outcome.target.provider, outcome.target.model
        if usage is None:
            metrics.usage_unknown(provider=provider, model=model)
            return
        metrics.usage(
            provider=provider,
            model=model,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cost_usd=outcome.response.cost_usd,
        )

    async def _run_handler(
        self,
        execution_id: str,
        resolved: _Resolved,
        query: str,
        context: Mapping[str, Any],
        *,
        already_running: bool = False,
    ) -> dict[str, Any]:
        assert resolved.handler is not None
        if not already_running:
            await self.state.mark_running(
                execution_id, self.worker_id, time.time() + self.config.lease_timeout_s
            )
        with self.observability.stage("handler", {"stratarouter.handler": resolved.handler}):
            payload = await self._call_handler(resolved.handler, query, context)
        await self.state.mark_succeeded(execution_id, payload)
        return payload

    async def _call_handler(
        self, route: str, query: str, context: Mapping[str, Any]
    ) -> dict[str, Any]:
        fn = self._handlers.get(route)
        if fn is None:
            raise ConfigError(f"no handler is registered for route {route!r}")
        frozen = MappingProxyType(dict(context))
        try:
            if inspect.iscoroutinefunction(fn):
                call: Awaitable[Any] = fn(query, frozen)
            else:
                call = asyncio.to_thread(fn, query, frozen)
            output = await asyncio.wait_for(call, self.config.execution_timeout)
            if inspect.isawaitable(output):
                output = await asyncio.wait_for(output, self.config.execution_timeout)
        except asyncio.TimeoutError as exc:
            raise HandlerError(
                f"handler for route {route!r} timed out after {self.config.execution_timeout:g}s"
            ) from exc
        except StrataRouterError:
            raise
        except Exception as exc:  # the user's code: any failure becomes a HandlerError
            raise HandlerError(f"handler for route {route!r} failed: {exc!r}") from exc
        return _handler_payload(route, output)

    # -- cache ---------------------------------------------------------------------------------

    async def _lookup(
        self,
        query: str,
        embedding: NDArray[np.float32] | None,
        resolved: _Resolved,
        namespace: str,
    ) -> CacheHit | None:
        if self.cache is None:
            return None
        try:
            hit = await self.cache.lookup(
                query,
                embedding,
                target_key=resolved.key,
                params=resolved.cache_params,
                namespace=namespace,
            )
        except StrataRouterError as exc:  # a cache outage must not fail the execution
            self._cache_trouble("lookup", exc)
            return None
        self.observability.metrics.cache_lookup(hit=hit is not None)
        return hit

    async def _store(
        self,
        query: str,
        embedding: NDArray[np.float32] | None,
        resolved: _Resolved,
        namespace: str,
        payload: Mapping[str, Any],
    ) -> None:
        if self.cache is None or resolved.kind != "provider":
            return
        try:
            await self.cache.store(
                query,
                embedding,
                target_key=resolved.key,
                params=resolved.cache_params,
                response=payload,
                namespace=namespace,
            )
        except StrataRouterError as exc:
            self._cache_trouble("store", exc)

    def _cache_trouble(self, operation: str, exc: StrataRouterError) -> None:
        kind = type(exc).__name__
        self.observability.metrics.error(kind)
        level = logging.DEBUG if isinstance(exc, UncacheableResponseError) else logging.WARNING
        logger.log(
            level,
            "cache %s skipped: %s",
            operation,
            exc,
            extra={"error_type": kind, "backend_error": isinstance(exc, CacheBackendError)},
        )

    # -- outcome bookkeeping -------------------------------------------------------------------

    def _result(
        self,
        payload: Mapping[str, Any],
        record: ExecutionRecord,
        started: float,
        *,
        cached: bool = False,
        deduplicated: bool = False,
        attempts: tuple[Attempt, ...] = (),
    ) -> ExecutionResult:
        return ExecutionResult.from_payload(
            payload,
            execution_id=record.id,
            route_id=record.route_id,
            latency_ms=(time.perf_counter() - started) * 1000,
            cached=cached,
            deduplicated=deduplicated,
            attempts=attempts,
        )

    def _succeeded(self, result: ExecutionResult, record: ExecutionRecord) -> None:
        metrics = self.observability.metrics
        status = (
            "cached" if result.cached else "deduplicated" if result.deduplicated else "succeeded"
        )
        metrics.request(
            route=record.route_id or "", provider=result.provider, model=result.model, status=status
        )
        metrics.observe_stage("total", result.latency_ms / 1000)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "execution %s",
                status,
                extra={
                    "execution_id": result.execution_id,
                    "route": result.route_id,
                    "target": record.target_key,
                    "provider": result.provider,
                    "model": result.model,
                    "cached": result.cached,
                    "deduplicated": result.deduplicated,
                    "attempts": len(result.attempts),
                    "latency_ms": round(result.latency_ms, 3),
                    "cost_usd": result.cost_usd,
                    "tokens": None if result.usage is None else result.usage.total_tokens,
                },
            )

    async def _failed(self, record: ExecutionRecord, exc: BaseException) -> None:
        cancelled = isinstance(exc, (asyncio.CancelledError, GeneratorExit))
        message = "cancelled before completion" if cancelled else f"{type(exc).__name__}: {exc}"
        try:
            await self.state.mark_failed(record.id, message)
        except StrataRouterError as state_exc:  # keep the original error for the caller
            logger.error("could not record the failure of %s: %s", record.id, state_exc)
        kind = "Cancelled" if cancelled else type(exc).__name__
        self.observability.metrics.error(kind)
        provider, _, model = record.target_key.partition(":")
        self.observability.metrics.request(
            route=record.route_id or "", provider=provider, model=model, status="failed"
        )
        logger.warning(
            "execution failed",
            extra={
                "execution_id": record.id,
                "route": record.route_id,
                "target": record.target_key,
                "error_type": kind,
                "error": message,
            },
        )

    # -- streaming -----------------------------------------------------------------------------

    def stream(
        self, decision: RouteResult, query: str, context: Mapping[str, Any] | None = None
    ) -> ExecutionStream:
        """Execute `decision` and yield the answer as it is generated.

        Progress is checkpointed every ``checkpoint_interval`` chunks; the full text is
        persisted and cached only when the stream completes. A cache hit or a handler route
        yields its whole answer as one chunk. Use it as ``async with bridge.stream(...) as s:``
        so an abandoned stream is closed (and recorded as failed).
        """
        _check_query(query)
        ctx = dict(context or {})
        return ExecutionStream(lambda stream: self._stream_chunks(stream, decision, query, ctx))

    async def _stream_chunks(
        self,
        stream: ExecutionStream,
        decision: RouteResult,
        query: str,
        context: Mapping[str, Any],
    ) -> AsyncGenerator[str | ExecutionResult, None]:
        if not self._started:
            await self.start()
        started = time.perf_counter()
        resolved = self._route_stage(decision)
        if resolved.kind == "handler":
            record = await self._create(decision, query, resolved, context, status="running")
            stream.execution_id = record.id
            payload = await self._guarded(
                record, self._run_handler(record.id, resolved, query, context, already_running=True)
            )
            result = self._result(payload, record, started)
            yield result.response
        else:
            namespace = self._namespace(self.config, context)
            embedding = self._embed(query) if self.cache else None
            hit = await self._cache_stage(query, embedding, resolved, namespace)
            if hit is not None:
                record = await self._create(
                    decision, query, resolved, context, status="succeeded", result=hit.response
                )
                stream.execution_id = record.id
                result = self._result(hit.response, record, started, cached=True)
                yield result.response
            else:
                record = await self._create(decision, query, resolved, context, status="running")
                stream.execution_id = record.id
                self._inflight.add(record.id)
                try:
                    async for item in self._stream_provider(
                        record, resolved, embedding, namespace, started
                    ):
                        if isinstance(item, ExecutionResult):
                            result = item
                        else:
                            yield item
                except BaseException as exc:
                    await self._failed(record, exc)
                    raise
                finally:
                    self._inflight.discard(record.id)
        self._succeeded(result, record)
        yield result

    async def _stream_provider(
        self,
        record: ExecutionRecord,
        resolved: _Resolved,
        embedding: NDArray[np.float32] | None,
        namespace: str,
        started: float,
    ) -> AsyncIterator[str | ExecutionResult]:
        assert resolved.target is not None
        checkpointer = StreamCheckpointer(self.state, record.id, self.config.checkpoint_interval)
        log = _AttemptLog(self.state, record.id, self.observability.metrics.retry)
        target, provider_started = resolved.target, time.perf_counter()
        try:
            chunks = self.executor.stream(target, _request(target, record.query), on_attempt=log)
            async with chunks:
                async for chunk in chunks:
                    await checkpointer.add(chunk)
                    yield chunk
        finally:
            await log.settle()
        # Only a stream that completed has an outcome: a partial one raised above.
        outcome = chunks.result
        assert outcome is not None
        self.observability.metrics.observe_stage("provider", time.perf_counter() - provider_started)
        payload = {**_payload(outcome), "streamed": True}
        await self.state.save_result(record.id, payload, attempts=log.unsaved)
        self._count_usage(outcome)
        await self._store(record.query, embedding, resolved, namespace, payload)
        await self.state.mark_succeeded(record.id)
        yield self._result(payload, record, started, attempts=tuple(log.attempts))

    # -- recovery ------------------------------------------------------------------------------

    async def _resume(self, record: ExecutionRecord) -> None:
        """Run a recovered execution again (its earlier run left no persisted result)."""
        self._inflight.add(record.id)
        try:
            await self._rerun(record)
        finally:
            self._inflight.discard(record.id)

    async def _rerun(self, record: ExecutionRecord) -> None:
        resolved = _Resolved.from_json(record.target)
        if resolved.kind == "handler":
            await self._run_handler(record.id, resolved, record.query, record.context)
            return
        assert resolved.target is not None
        if resolved.target.provider not in self.providers:
            raise ConfigError(
                f"cannot resume {record.id}: provider "
                f"{resolved.target.provider!r} is not configured"
            )
        await self.state.mark_running(
            record.id, self.worker_id, time.time() + self.config.lease_timeout_s
        )
        payload, _ = await self._provider_call(record.id, resolved.target, record.query)
        namespace = self._namespace(self.config, record.context)
        await self._store(record.query, self._embed(record.query), resolved, namespace, payload)
        await self.state.mark_succeeded(record.id)

    async def _cache_recovered(self, record: ExecutionRecord) -> None:
        """Cache the persisted result of an execution finished by recovery."""
        resolved = _Resolved.from_json(record.target)
        if record.result is None or resolved.kind != "provider":
            return
        namespace = self._namespace(self.config, record.context)
        await self._store(
            record.query, self._embed(record.query), resolved, namespace, dict(record.result)
        )

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """The durable record of an execution (None when unknown)."""
        if not self._started:
            await self.start()
        return await self.state.get(execution_id)


def _check_query(query: object) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidQueryError(f"query must be a non-blank string, got {query!r}")


def _digest(params: Mapping[str, Any]) -> str:
    try:
        return params_digest(params)
    except StrataRouterError:  # unserialisable params: never merge with anything else
        return uuid.uuid4().hex


def _handler_payload(route: str, output: object) -> dict[str, Any]:
    """The persisted form of a handler's return value."""
    base = {
        "provider": "handler",
        "model": route,
        "usage": dict(_NO_USAGE),
        "cost_usd": 0.0,
        "finish_reason": "stop",
        "target_key": f"handler:{route}",
    }
    if isinstance(output, str):
        return {"response": output, **base}
    if isinstance(output, Mapping):
        text = output.get("response")
        if text is None:
            text = json.dumps(dict(output), default=str, ensure_ascii=False)
        return {"response": str(text), "output": dict(output), **base}
    raise HandlerError(
        f"handler for route {route!r} returned {type(output).__name__}; expected str or a mapping"
    )
