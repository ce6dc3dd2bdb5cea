"""Bookkeeping of an execution's outcome: attempts persisted, metrics counted, one log line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from stratarouter_core.errors import StrataRouterError

from ..executor import Attempt, ExecutionOutcome
from ..observability import Metrics
from ..state import ExecutionRecord, StateStore
from .results import ExecutionResult

__all__ = ["AttemptLog", "count_usage", "record_failure", "report_success"]

logger = logging.getLogger("stratarouter_runtime")


class AttemptLog:
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


def count_usage(metrics: Metrics, outcome: ExecutionOutcome) -> None:
    """Add a provider response's tokens and cost to the metrics, or count it as unknown."""
    usage = outcome.response.usage
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


def report_success(metrics: Metrics, result: ExecutionResult, record: ExecutionRecord) -> None:
    """Count a finished execution and log it."""
    status = "cached" if result.cached else "deduplicated" if result.deduplicated else "succeeded"
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


async def record_failure(
    state: StateStore, metrics: Metrics, record: ExecutionRecord, exc: BaseException
) -> None:
    """Mark the record failed (cancellation included), count the failure and log it."""
    cancelled = isinstance(exc, (asyncio.CancelledError, GeneratorExit))
    message = "cancelled before completion" if cancelled else f"{type(exc).__name__}: {exc}"
    try:
        await state.mark_failed(record.id, message)
    except StrataRouterError as state_exc:  # keep the original error for the caller
        logger.error("could not record the failure of %s: %s", record.id, state_exc)
    kind = "Cancelled" if cancelled else type(exc).__name__
    metrics.error(kind)
    provider, _, model = record.target_key.partition(":")
    metrics.request(route=record.route_id or "", provider=provider, model=model, status="failed")
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
