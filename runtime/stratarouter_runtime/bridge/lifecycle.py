"""The bridge's lifecycle: start, close, keep its leases alive, and recover what a crash left."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from stratarouter_core.errors import ConfigError, StrataRouterError

from ..state import (
    ExecutionNotFoundError,
    ExecutionRecord,
    GradeRecord,
    RecoveryReport,
    recover_executions,
)
from .core import BridgeCore
from .grades import GradeFeed
from .targets import Resolved

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BridgeLifecycle"]

logger = logging.getLogger("stratarouter_runtime")


class BridgeLifecycle(BridgeCore):
    """Opening and closing the bridge's resources, lease renewal and crash recovery."""

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
            if self.grades is not None:  # the logged grades are learned before serving
                await self.grades.start()
            self.observability.start()
            self._heartbeat = asyncio.ensure_future(self._renew_leases())
            if self.config.state.recovery_interval_s > 0:
                self._sweeper = asyncio.ensure_future(self._recover_periodically())
            self._started = True
        return await self.recover() if self.config.state.recover_on_start else None

    async def aclose(self) -> None:
        """Stop the lease renewal and close what the bridge opened (not providers passed in)."""
        for task in (self._heartbeat, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._heartbeat = self._sweeper = None
        if self.grades is not None:
            await self.grades.close()
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
        lease = self.config.state.lease_timeout_s
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await self.state.renew_leases(self.worker_id, time.time() + lease)
            except StrataRouterError as exc:  # keep renewing: the store may come back
                logger.warning(
                    "lease renewal failed: %s", exc, extra={"error_type": type(exc).__name__}
                )

    async def _recover_periodically(self) -> None:
        """Take over, every ``recovery_interval_s``, what other (dead) bridges left behind."""
        while True:
            await asyncio.sleep(self.config.state.recovery_interval_s)
            try:
                await self.recover()
            except StrataRouterError as exc:  # keep sweeping: the store may come back
                logger.warning(
                    "periodic recovery failed: %s", exc, extra={"error_type": type(exc).__name__}
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
                policy=self.config.state.recovery_policy,
                lease_timeout_s=self.config.state.lease_timeout_s,
                resume=self._resume,
                on_finished=self._cache_recovered,
                exclude=self._inflight,
            )
        for outcome in ("finished", "resumed", "failed"):
            for _ in getattr(report, outcome):
                self.observability.metrics.recovered(outcome)
        self.last_recovery = report
        return report

    async def _resume(self, record: ExecutionRecord) -> None:
        """Run a recovered execution again (its earlier run left no persisted result)."""
        self._inflight.add(record.id)
        try:
            await self._rerun(record)
        finally:
            self._inflight.discard(record.id)

    async def _rerun(self, record: ExecutionRecord) -> None:
        resolved = Resolved.from_json(record.target)
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
            record.id, self.worker_id, time.time() + self.config.state.lease_timeout_s
        )
        payload, _ = await self._provider_call(record.id, resolved.target, record.query)
        namespace = self._namespace(self.config, record.context)
        embedding = await self._embed(record.query)
        await self._store(record.query, embedding, resolved, namespace, payload)
        await self.state.mark_succeeded(record.id)

    async def _cache_recovered(self, record: ExecutionRecord) -> None:
        """Cache the persisted result of an execution finished by recovery."""
        resolved = Resolved.from_json(record.target)
        if record.result is None or resolved.kind != "provider":
            return
        namespace = self._namespace(self.config, record.context)
        await self._store(
            record.query, await self._embed(record.query), resolved, namespace, dict(record.result)
        )

    async def add_grades(
        self,
        queries: Sequence[str],
        scores: Sequence[Mapping[str, float | None]],
        *,
        tenant: str | None = None,
    ) -> list[GradeRecord]:
        """Teach the ModelRouter how good models' answers to `queries` were (`scores`: per
        query, ``{model: quality in [0, 1]}``); logged in the state store first, so every
        bridge over the store learns them, and a restarted one again (`GradeFeed`).

        Returns:
            The grades as logged (queries with no score are left out).

        Raises:
            ConfigError: The bridge has no ModelRouter.
            InvalidScoresError, UnknownModelError, NoGradedDataError: As
                `ModelRouter.add_graded` (nothing is logged).
        """
        return await (await self._grade_feed()).add(queries, scores, tenant=tenant)

    async def grade_execution(
        self, execution_id: str, score: float, *, tenant: str | None = None
    ) -> GradeRecord:
        """Grade an execution's answer: `score` in [0, 1] for the model that gave it, learned
        as `add_grades` learns grades. Each execution is graded once.

        Args:
            execution_id: `ExecutionResult.execution_id`.
            score: How good the answer was (1: fully right).
            tenant: The caller's tenant: another tenant's execution is not found.

        Raises:
            ExecutionNotFoundError: No such execution (for this tenant).
            GradeConflictError: Graded already, or no model answer (a handler's, a failure).
            UnknownModelError: The answering model is not one of the ModelRouter's.
            InvalidScoresError: `score` is not a number in [0, 1].
        """
        feed = await self._grade_feed()
        record = await self.state.get(execution_id)
        if record is None or record.context.get("tenant_id") != tenant:
            raise ExecutionNotFoundError(f"no execution {execution_id!r}")
        return await feed.grade_execution(record, score, tenant=tenant)

    async def _grade_feed(self) -> GradeFeed:
        if self.grades is None:
            raise ConfigError(
                "this bridge has no ModelRouter to learn grades: give model_router=... "
                "(the server: model_router_dir)"
            )
        if not self._started:
            await self.start()
        return self.grades

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """The durable record of an execution (None when unknown)."""
        if not self._started:
            await self.start()
        return await self.state.get(execution_id)
