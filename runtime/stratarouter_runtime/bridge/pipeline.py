"""The execute pipeline: route -> record -> cache -> single-flight batch -> executor -> result."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import ConfigError, StrataRouterError
from stratarouter_core.types import RouteResult

from ..cache import params_digest
from ..executor import Attempt
from ..state import ExecutionRecord
from .core import check_query
from .lifecycle import BridgeLifecycle
from .reporting import report_success
from .results import ExecutionResult
from .targets import Resolved

__all__ = ["ExecutePipeline"]


class ExecutePipeline(BridgeLifecycle):
    """`CoreRuntimeBridge.execute` and `run`: one complete answer per call."""

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
        check_query(query)
        if not self._started:
            await self.start()
        started, ctx = time.perf_counter(), dict(context or {})
        root_attributes = {"stratarouter.route_id": decision.route_id or ""}
        with self.observability.span("stratarouter.execute", root_attributes) as root:
            resolved, query_vector = await self._route_stage(decision, query)
            if resolved.kind == "handler":
                record = await self._create(decision, query, resolved, ctx, status="running")
                root.set_attribute("stratarouter.execution_id", record.id)
                payload = await self._guarded(
                    record, self._run_handler(record.id, resolved, query, ctx, already_running=True)
                )
                result = self._result(payload, record, started)
            else:
                namespace = self._namespace(self.config, ctx)
                embedding = await query_vector.get() if self.cache or self.batcher else None
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
        report_success(self.observability.metrics, result, record)
        return result

    async def run(self, query: str, context: Mapping[str, Any] | None = None) -> ExecutionResult:
        """Route `query` with the bridge's router, then execute the decision."""
        if self.router is None:
            raise ConfigError("CoreRuntimeBridge.run needs a router; use execute(decision, ...)")
        return await self.execute(await self.router.aroute(query), query, context)

    async def _run_provider(
        self,
        record: ExecutionRecord,
        resolved: Resolved,
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
        resolved: Resolved,
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


def _digest(params: Mapping[str, Any]) -> str:
    try:
        return params_digest(params)
    except StrataRouterError:  # unserialisable params: never merge with anything else
        return uuid.uuid4().hex
