"""The bridge's wiring, and the stages its execute and stream pipelines share."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import ConfigError, InvalidQueryError, StrataRouterError
from stratarouter_core.types import RouteResult

from ..batching import BatchCoordinator
from ..cache import CacheHit, SemanticCache
from ..config import RuntimeConfig, parse_target_spec
from ..executor import Attempt, Executor, Target
from ..observability import Observability
from ..providers.base import ProviderClient
from ..resilience import BreakerRegistry, BreakerState, RetryPolicy
from ..state import (
    ExecutionRecord,
    ExecutionStatus,
    RecoveryReport,
    StateStore,
    open_state_store,
)
from .caching import build_cache, cache_lookup, cache_store
from .grades import GradeFeed
from .handlers import Handler, HandlerRegistry
from .reporting import AttemptLog, count_usage, record_failure
from .results import ExecutionResult, provider_payload
from .targets import Resolved, build_request, providers_from_config, resolve_target

if TYPE_CHECKING:
    from stratarouter_core import ModelChoice, ModelRouter
    from stratarouter_core.encoders.base import BaseEncoder
    from stratarouter_core.router import Router

__all__ = ["BridgeCore", "QueryEmbedding", "check_query"]

logger = logging.getLogger("stratarouter_runtime")
_T = TypeVar("_T")


class QueryEmbedding:
    """One execution's query vector, encoded on first use and then shared (the pool's model
    choice and the cache both need it: one encoding, not two)."""

    def __init__(
        self, embed: Callable[[str], Awaitable[NDArray[np.float32] | None]], query: str
    ) -> None:
        """Encode `query` with `embed` when first asked."""
        self._embed, self._query = embed, query
        self._vector: NDArray[np.float32] | None = None
        self._done = False

    async def get(self) -> NDArray[np.float32] | None:
        """The vector (None when the encoder failed or there is none)."""
        if not self._done:
            self._vector = await self._embed(self._query)
            self._done = True
        return self._vector


def _choice_attributes(choice: ModelChoice, target: Target) -> dict[str, Any]:
    """Span attributes saying why a pool route runs on `target` (the model that runs can be an
    alternative inside the pool when the router's own pick is outside it)."""
    attributes: dict[str, Any] = {
        "stratarouter.model_choice.model": choice.model,
        "stratarouter.model_choice.rule": choice.rule,
        "stratarouter.model_choice.fallback": choice.fallback,
        "stratarouter.model_choice.p_success": choice.p_success[target.model],
        "stratarouter.model_choice.expected_cost_usd": choice.expected_costs_usd[target.model],
    }
    if choice.nearest_graded_similarity is not None:
        similarity = choice.nearest_graded_similarity
        attributes["stratarouter.model_choice.nearest_graded_similarity"] = similarity
    return attributes


class BridgeCore:
    """The parts `CoreRuntimeBridge` wires together and the stages its pipelines share.

    See `CoreRuntimeBridge` for the arguments.
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
        model_router: ModelRouter | None = None,
    ) -> None:
        """Wire the parts; nothing is opened before `start` (or the first `execute`)."""
        if not isinstance(config, RuntimeConfig):
            raise ConfigError(f"config must be a RuntimeConfig, got {type(config).__name__}")
        self.config = config
        self.router = router
        self.model_router = model_router
        self.worker_id = (
            config.state.worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._owned_providers = providers is None
        self.providers: Mapping[str, ProviderClient] = MappingProxyType(
            dict(providers_from_config(config) if providers is None else providers)
        )
        self._encoder = encoder
        self._handlers = HandlerRegistry()
        for route, fn in (handlers or {}).items():
            self.register_handler(route, fn)
        self.observability = observability or Observability(config)
        self.state: StateStore = state or open_state_store(config)
        # grades of served answers, logged in the state store and learned by the ModelRouter
        self.grades = (
            None
            if model_router is None
            else GradeFeed(
                model_router,
                self.state,
                poll_s=config.state.grade_poll_s,
                metrics=self.observability.metrics,
            )
        )
        self.cache = cache if cache is not None else build_cache(config)
        self.batcher = (
            BatchCoordinator(
                window_ms=config.batching.window_ms,
                max_size=config.batching.max_size,
                similarity_threshold=config.batching.similarity_threshold,
            )
            if config.batching.enabled
            else None
        )
        self.breakers = BreakerRegistry(
            failure_threshold=config.breaker.failure_threshold,
            window_s=config.breaker.window_s,
            reset_timeout_s=config.breaker.reset_timeout_s,
            on_state_change=self._breaker_changed,
        )
        self.executor = Executor(
            self.providers,
            retry=RetryPolicy(
                max_retries=config.retries.max_retries,
                base_delay_ms=config.retries.delay_ms,
                max_delay_ms=max(10_000.0, config.retries.delay_ms),
            ),
            timeout_s=config.retries.attempt_timeout_s,
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
        self._sweeper: asyncio.Task[None] | None = None  # periodic recovery, when asked
        self._inflight: set[str] = set()  # executions this bridge is running right now
        self._recover_lock: asyncio.Lock | None = None

    def register_handler(self, route: str, fn: Handler) -> None:
        """Execute `route` by calling ``fn(query, context)`` (an agent, tool or workflow).

        `fn` may be sync (run in a worker thread) or async, and returns the answer text or a
        mapping (its ``"response"`` key, if any, is the answer text; the mapping is kept as
        `ExecutionResult.output`). Handler results are never cached nor de-duplicated.
        """
        self._handlers.register(route, fn)

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

    # -- stages shared by execute and stream ---------------------------------------------------

    @property
    def _query_encoder(self) -> BaseEncoder | None:
        """The encoder of the cache's and the batcher's query vectors."""
        if self._encoder is not None:
            return self._encoder
        return self.router.encoder if self.router is not None else None

    async def _embed(self, query: str) -> NDArray[np.float32] | None:
        """The query's embedding for the cache and batching; None degrades to exact matching.

        Awaits the encoder's `aencode`: an API encoder's async client, or the base class's worker
        thread for a synchronous model, so a slow `encode` never stalls the event loop (other
        executions, lease renewal and batching windows keep running meanwhile).
        """
        encoder = self._query_encoder
        if encoder is None:
            return None
        try:
            vector = np.asarray((await encoder.aencode([query]))[0], dtype=np.float32)
        except StrataRouterError as exc:
            logger.warning("query embedding failed, exact matching only: %s", exc)
            self.observability.metrics.error(type(exc).__name__)
            return None
        norm = float(np.linalg.norm(vector))
        return vector if norm > 0.0 and np.isfinite(norm) else None

    @staticmethod
    def _namespace(config: RuntimeConfig, context: Mapping[str, Any]) -> str:
        tenant = context.get("cache_namespace") or context.get("tenant_id")
        return f"{config.cache.namespace}:{tenant}" if tenant else config.cache.namespace

    async def _route_stage(
        self, decision: RouteResult, query: str
    ) -> tuple[Resolved, QueryEmbedding]:
        """Resolve the target inside a route span that starts when routing started; and the
        query's embedding, computed at most once for the pool's model choice and the cache."""
        embedding = QueryEmbedding(self._embed, query)
        encoder, model_router = self._query_encoder, self.model_router
        # the ModelRouter may reuse the cache's vector only when both encode the same space
        shared = (
            encoder is not None
            and model_router is not None
            and model_router.encoder.fingerprint == encoder.fingerprint
        )
        self.observability.metrics.observe_stage("route", decision.latency_us / 1e6)
        start_ns = time.time_ns() - int(decision.latency_us * 1000)
        attributes = {
            "stratarouter.route_id": decision.route_id or "",
            "stratarouter.confidence": float(decision.confidence),
            "stratarouter.is_fallback": decision.is_fallback,
        }
        with self.observability.span("stratarouter.route", attributes, start_ns=start_ns) as span:
            resolved = await resolve_target(
                decision,
                router=self.router,
                handlers=self._handlers,
                providers=self.providers,
                default=self._default,
                query=query,
                model_router=self.model_router,
                embed=embedding.get if shared else None,
            )
            span.set_attribute("stratarouter.target", resolved.key)
            choice, target = resolved.choice, resolved.target
            if choice is not None and target is not None:
                for name, value in _choice_attributes(choice, target).items():
                    span.set_attribute(name, value)
                self.observability.metrics.model_choice(
                    route=decision.route_id or "",
                    model=target.model,
                    rule=choice.rule,
                    fallback=choice.fallback,
                )
        return resolved, embedding

    async def _cache_stage(
        self,
        query: str,
        embedding: NDArray[np.float32] | None,
        resolved: Resolved,
        namespace: str,
    ) -> CacheHit | None:
        if self.cache is None:
            return None
        with self.observability.stage("cache", {"stratarouter.target": resolved.key}) as stage:
            hit = await cache_lookup(
                self.cache, self.observability.metrics, query, embedding, resolved, namespace
            )
            stage.span.set_attribute("stratarouter.cache_hit", hit is not None)
        return hit

    async def _guarded(self, record: ExecutionRecord, work: Awaitable[_T]) -> _T:
        """Await `work`; on any failure (cancellation included) record it, then re-raise."""
        self._inflight.add(record.id)
        try:
            return await work
        except BaseException as exc:
            await record_failure(self.state, self.observability.metrics, record, exc)
            raise
        finally:
            self._inflight.discard(record.id)

    async def _create(
        self,
        decision: RouteResult,
        query: str,
        resolved: Resolved,
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
            lease_expires_at=time.time() + self.config.state.lease_timeout_s,
        )
        await self.state.create(record)
        return record

    async def _provider_call(
        self, execution_id: str, target: Target, query: str
    ) -> tuple[dict[str, Any], tuple[Attempt, ...]]:
        """Call the executor, then persist the result before anything else sees it."""
        log = AttemptLog(self.state, execution_id, self.observability.metrics.retry)
        try:
            outcome = await self.executor.execute(
                target, build_request(target, query), on_attempt=log
            )
        finally:
            await log.settle()
        payload = provider_payload(outcome)
        await self.state.save_result(execution_id, payload, attempts=log.unsaved)
        count_usage(self.observability.metrics, outcome)
        return payload, outcome.attempts

    async def _run_handler(
        self,
        execution_id: str,
        resolved: Resolved,
        query: str,
        context: Mapping[str, Any],
        *,
        already_running: bool = False,
    ) -> dict[str, Any]:
        assert resolved.handler is not None
        if not already_running:
            await self.state.mark_running(
                execution_id, self.worker_id, time.time() + self.config.state.lease_timeout_s
            )
        with self.observability.stage("handler", {"stratarouter.handler": resolved.handler}):
            payload = await self._handlers.call(
                resolved.handler, query, context, self.config.retries.attempt_timeout_s
            )
        await self.state.mark_succeeded(execution_id, payload)
        return payload

    async def _store(
        self,
        query: str,
        embedding: NDArray[np.float32] | None,
        resolved: Resolved,
        namespace: str,
        payload: Mapping[str, Any],
    ) -> None:
        metrics = self.observability.metrics
        await cache_store(self.cache, metrics, query, embedding, resolved, namespace, payload)

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


def check_query(query: object) -> None:
    """Raise InvalidQueryError unless `query` is a non-blank string."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidQueryError(f"query must be a non-blank string, got {query!r}")
