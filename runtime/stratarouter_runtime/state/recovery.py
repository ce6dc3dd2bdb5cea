"""Crash recovery: take over the executions a dead bridge left unfinished, by policy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Literal

from .records import ExecutionRecord, StateStore

__all__ = ["FinishFn", "RecoveryReport", "ResumeFn", "recover_executions"]

logger = logging.getLogger("stratarouter_runtime.state")


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What a recovery pass did, by execution id.

    Attributes:
        finished: Records whose result was persisted, now marked succeeded (no provider call).
        resumed: Records executed again under ``recovery_policy="resume"``.
        failed: Records marked failed (``"fail"`` policy, or the resumed run failed).
        skipped: Unfinished records still leased by a live bridge.
    """

    finished: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Records taken over by this pass."""
        return len(self.finished) + len(self.resumed) + len(self.failed)


ResumeFn = Callable[[ExecutionRecord], Awaitable[object]]
FinishFn = Callable[[ExecutionRecord], Awaitable[None]]


async def recover_executions(
    store: StateStore,
    *,
    worker_id: str,
    policy: Literal["resume", "fail"],
    lease_timeout_s: float,
    resume: ResumeFn,
    on_finished: FinishFn | None = None,
    exclude: Collection[str] = (),
    concurrency: int = 8,
    limit: int = 1000,
) -> RecoveryReport:
    """Take over the executions a crashed bridge left unfinished, and complete each one.

    A record with a persisted result is marked succeeded (and `on_finished` sees it, e.g. to
    fill the cache): its provider is never called again. Any other record is re-executed with
    `resume` (which must finish the record itself) or, under the ``"fail"`` policy, marked
    failed. Records still leased by a live bridge, and those in `exclude`, are skipped.

    Args:
        store: The state store.
        worker_id: The recovering bridge's id; it becomes the records' owner.
        policy: ``"resume"`` or ``"fail"``.
        lease_timeout_s: Lease taken on each claimed record (renewed by the bridge).
        resume: Runs a claimed record again and finishes it.
        on_finished: Called for each record finished from its persisted result.
        exclude: Ids the recovering bridge is running itself right now (its own worker id
            would otherwise let it claim them).
        concurrency: Records resumed at the same time.
        limit: Most records handled in one pass.

    Returns:
        What happened to each record.
    """
    outcome: dict[str, list[str]] = {"finished": [], "resumed": [], "failed": [], "skipped": []}
    gate = asyncio.Semaphore(max(1, concurrency))

    async def handle(record: ExecutionRecord) -> None:
        async with gate:
            now = time.time()
            claimed = None
            if record.id not in exclude:
                claimed = await store.claim(record.id, worker_id, now, now + lease_timeout_s)
            if claimed is None:
                outcome["skipped"].append(record.id)
                return
            kind = await _complete(store, claimed, policy, resume, on_finished)
            outcome[kind].append(record.id)

    await asyncio.gather(*(handle(r) for r in await store.list_unfinished(limit)))
    report = RecoveryReport(**{k: tuple(sorted(v)) for k, v in outcome.items()})
    if report.total:  # a periodic pass that only skips live records says nothing
        logger.info(
            "recovery: %d finished, %d resumed, %d failed, %d skipped",
            len(report.finished),
            len(report.resumed),
            len(report.failed),
            len(report.skipped),
        )
    return report


async def _complete(
    store: StateStore,
    record: ExecutionRecord,
    policy: Literal["resume", "fail"],
    resume: ResumeFn,
    on_finished: FinishFn | None,
) -> str:
    """Finish one claimed record; return the `RecoveryReport` field it belongs to."""
    if record.has_result:
        await store.mark_succeeded(record.id)
        if on_finished is not None:
            await on_finished(record)
        return "finished"
    if policy == "fail":
        await store.mark_failed(
            record.id,
            "abandoned: its worker stopped before the provider result was persisted "
            "(recovery_policy='fail')",
        )
        return "failed"
    try:
        await resume(record)
    except Exception as exc:  # one bad record must not stop the recovery of the others
        logger.warning("recovery: resuming execution %s failed: %r", record.id, exc)
        await store.mark_failed(record.id, f"resume failed: {type(exc).__name__}: {exc}")
        return "failed"
    current = await store.get(record.id)
    return "resumed" if current is not None and current.status == "succeeded" else "failed"
