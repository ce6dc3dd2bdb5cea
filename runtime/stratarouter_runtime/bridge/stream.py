"""The streaming pipeline: the answer chunk by chunk, checkpointed, recorded once complete."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.types import RouteResult

from ..state import ExecutionRecord, StreamCheckpointer
from .core import check_query
from .lifecycle import BridgeLifecycle
from .reporting import AttemptLog, count_usage, record_failure, report_success
from .results import ExecutionResult, ExecutionStream, provider_payload
from .targets import Resolved, build_request

__all__ = ["StreamPipeline"]


class StreamPipeline(BridgeLifecycle):
    """`CoreRuntimeBridge.stream`: the answer as it is generated."""

    def stream(
        self, decision: RouteResult, query: str, context: Mapping[str, Any] | None = None
    ) -> ExecutionStream:
        """Execute `decision` and yield the answer as it is generated.

        Progress is checkpointed every ``checkpoint_interval`` chunks; the full text is
        persisted and cached only when the stream completes. A cache hit or a handler route
        yields its whole answer as one chunk. Use it as ``async with bridge.stream(...) as s:``
        so an abandoned stream is closed (and recorded as failed).
        """
        check_query(query)
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
        resolved, query_vector = await self._route_stage(decision, query)
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
            embedding = await query_vector.get() if self.cache else None
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
                    await record_failure(self.state, self.observability.metrics, record, exc)
                    raise
                finally:
                    self._inflight.discard(record.id)
        report_success(self.observability.metrics, result, record)
        yield result

    async def _stream_provider(
        self,
        record: ExecutionRecord,
        resolved: Resolved,
        embedding: NDArray[np.float32] | None,
        namespace: str,
        started: float,
    ) -> AsyncIterator[str | ExecutionResult]:
        assert resolved.target is not None
        every = self.config.state.checkpoint_interval
        checkpointer = StreamCheckpointer(self.state, record.id, every)
        log = AttemptLog(self.state, record.id, self.observability.metrics.retry)
        target, provider_started = resolved.target, time.perf_counter()
        try:
            chunks = self.executor.stream(
                target, build_request(target, record.query), on_attempt=log
            )
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
        payload = {**provider_payload(outcome), "streamed": True}
        await self.state.save_result(record.id, payload, attempts=log.unsaved)
        count_usage(self.observability.metrics, outcome)
        await self._store(record.query, embedding, resolved, namespace, payload)
        await self.state.mark_succeeded(record.id)
        yield self._result(payload, record, started, attempts=tuple(log.attempts))
