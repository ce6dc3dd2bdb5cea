"""Durable execution state: every execution is a record that survives a crash of its process.

An execution moves ``pending -> running -> succeeded | failed``. The provider's result is
persisted with `StateStore.save_result` *before* anything else is done with it (cache store,
metrics, the reply to the caller), and only then is the record marked succeeded. A bridge
restarted after its process was killed calls `recover_executions`, which for each unfinished
record either finishes it (its result was persisted: the provider is never called again),
re-executes it (``recovery_policy="resume"``) or marks it failed (``"fail"``).

Ownership uses leases: the bridge that runs an execution writes its `worker_id` and a lease
expiry, and renews the leases of all its unfinished executions periodically. Recovery takes over
only records whose lease expired, or that carry the recovering bridge's own (stable) worker id.

Backends: `MemoryStateStore` (tests, ephemeral), `SQLiteStateStore` (default; stdlib sqlite3 in
WAL mode, driven from one dedicated thread) and `PostgresStateStore` (psycopg 3, async; schema
migrations applied on start, tracked in a ``schema_version`` table).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from .._deps import require
from ..errors import ConfigError, StrataRouterError

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from .config import RuntimeConfig

__all__ = [
    "ExecutionRecord",
    "ExecutionStatus",
    "MemoryStateStore",
    "PostgresStateStore",
    "RecoveryReport",
    "SQLiteStateStore",
    "StateError",
    "StateStore",
    "StreamCheckpointer",
    "new_execution_id",
    "open_state_store",
    "recover_executions",
]

logger = logging.getLogger("stratarouter_core.runtime.state")

ExecutionStatus = Literal["pending", "running", "succeeded", "failed"]
UNFINISHED: tuple[ExecutionStatus, ...] = ("pending", "running")
_STATUSES = ("pending", "running", "succeeded", "failed")
_T = TypeVar("_T")


class StateError(StrataRouterError, RuntimeError):
    """The state store failed, or an execution record does not exist."""


def new_execution_id() -> str:
    """A new, globally unique execution id (32 hex characters)."""
    return uuid.uuid4().hex


def _json_safe(value: Any) -> Any:
    """`value` after a JSON round trip; values JSON cannot hold are stored as their `str`."""
    return json.loads(json.dumps(value, default=str))


def _freeze(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value))


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionRecord:
    """One execution of a routing decision, as persisted.

    Attributes:
        id: Unique execution id.
        query: The user's query.
        route_id: The route the decision chose (None: no route).
        confidence: The decision's confidence.
        target_key: Identifies the target (``"openai:gpt-4o-mini"``, ``"handler:tools"``).
        target: Everything needed to run the execution again (provider, model, prompt, params).
        context: The caller's context (JSON; non-JSON values are kept as their `str`).
        status: ``pending``, ``running``, ``succeeded`` or ``failed``.
        attempts: One JSON object per provider attempt, in order.
        result: The persisted result; set before the record is marked succeeded.
        error: Why the execution failed.
        progress: Last checkpoint of a long execution (e.g. chunks streamed so far).
        created_at: Creation time, seconds since the epoch.
        updated_at: Time of the last change, seconds since the epoch.
        worker_id: The bridge that owns the execution.
        lease_expires_at: Until when the owner's claim holds, seconds since the epoch.

    Example:
        >>> record = ExecutionRecord.new(query="hi", target_key="openai:gpt-4o-mini",
        ...                              target={"provider": "openai", "model": "gpt-4o-mini"})
        >>> record.status, record.is_finished, len(record.id)
        ('pending', False, 32)
    """

    id: str
    query: str
    route_id: str | None = None
    confidence: float | None = None
    target_key: str
    target: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    status: ExecutionStatus = "pending"
    attempts: tuple[Mapping[str, Any], ...] = ()
    result: Mapping[str, Any] | None = None
    error: str | None = None
    progress: Mapping[str, Any] | None = None
    created_at: float
    updated_at: float
    worker_id: str | None = None
    lease_expires_at: float | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise StateError(f"unknown execution status {self.status!r}")
        set_ = object.__setattr__
        set_(self, "target", _freeze(self.target))
        set_(self, "context", _freeze(self.context))
        set_(self, "attempts", tuple(_freeze(a) for a in self.attempts))
        set_(self, "result", _freeze(self.result))
        set_(self, "progress", _freeze(self.progress))

    @classmethod
    def new(
        cls,
        *,
        query: str,
        target_key: str,
        target: Mapping[str, Any],
        route_id: str | None = None,
        confidence: float | None = None,
        context: Mapping[str, Any] | None = None,
        status: ExecutionStatus = "pending",
        result: Mapping[str, Any] | None = None,
        worker_id: str | None = None,
        lease_expires_at: float | None = None,
        execution_id: str | None = None,
        now: float | None = None,
    ) -> ExecutionRecord:
        """A fresh record (``pending`` unless told); target, context and result made JSON-safe.

        A record can start ``running`` (created when its work starts) or even ``succeeded``
        with its `result` (an execution served without work, e.g. from a cache): one write.
        """
        stamp = time.time() if now is None else now
        return cls(
            id=execution_id or new_execution_id(),
            query=query,
            route_id=route_id,
            confidence=confidence,
            target_key=target_key,
            target=_json_safe(dict(target)),
            context=_json_safe(dict(context or {})),
            status=status,
            result=None if result is None else _json_safe(dict(result)),
            created_at=stamp,
            updated_at=stamp,
            worker_id=worker_id,
            lease_expires_at=lease_expires_at,
        )

    @property
    def is_finished(self) -> bool:
        """True once the record is ``succeeded`` or ``failed``."""
        return self.status not in UNFINISHED

    @property
    def has_result(self) -> bool:
        """True when a provider result was persisted (the provider must not be called again)."""
        return self.result is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (the inverse of `ExecutionRecord.from_dict`)."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = dict(value) if isinstance(value, Mapping) else value
        data["attempts"] = [dict(a) for a in self.attempts]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """Rebuild a record from `to_dict` output (or a database row mapping)."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        for name in ("target", "context", "attempts", "result", "progress"):
            if isinstance(values.get(name), str):
                values[name] = json.loads(values[name])
        values["target"] = values.get("target") or {}
        values["context"] = values.get("context") or {}
        values["attempts"] = tuple(values.get("attempts") or ())
        return cls(**values)


@runtime_checkable
class StateStore(Protocol):
    """Where execution records live. Every method is safe to call from one event loop."""

    async def start(self) -> None:
        """Open connections and apply migrations (idempotent)."""

    async def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    async def create(self, record: ExecutionRecord) -> None:
        """Insert a new record (any status; normally ``pending``)."""

    async def mark_running(self, execution_id: str, worker_id: str, lease_until: float) -> None:
        """Set status ``running``, owned by `worker_id` until `lease_until`."""

    async def renew_leases(self, worker_id: str, lease_until: float) -> int:
        """Extend the lease of every unfinished record of `worker_id`; return how many."""

    async def checkpoint(self, execution_id: str, progress: Mapping[str, Any]) -> None:
        """Replace the record's progress."""

    async def record_attempt(self, execution_id: str, attempt: Mapping[str, Any]) -> None:
        """Append one attempt to the record's attempts."""

    async def save_result(
        self,
        execution_id: str,
        result: Mapping[str, Any],
        attempts: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Persist the provider result (and append `attempts`) in one atomic write.

        The status is unchanged until `mark_succeeded`.
        """

    async def mark_succeeded(
        self, execution_id: str, result: Mapping[str, Any] | None = None
    ) -> bool:
        """Finish an unfinished record as ``succeeded`` (storing `result` if given).

        Returns False when the record was already finished (nothing changed).
        """

    async def mark_failed(self, execution_id: str, error: str) -> bool:
        """Finish an unfinished record as ``failed``; False when it was already finished."""

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        """The record, or None when there is none with this id."""

    async def list_unfinished(self, limit: int = 1000) -> list[ExecutionRecord]:
        """Unfinished records, oldest first."""

    async def claim(
        self, execution_id: str, worker_id: str, now: float, lease_until: float
    ) -> ExecutionRecord | None:
        """Take over an unfinished record whose lease expired (or that `worker_id` owns).

        Atomic: of several bridges claiming one record, one gets it and the others get None.
        """

    async def prune(self, finished_before: float) -> int:
        """Delete finished records last updated before `finished_before`; return how many."""


class MemoryStateStore:
    """In-process store: fast and ephemeral (nothing survives the process).

    Example:
        >>> import asyncio
        >>> store = MemoryStateStore()
        >>> record = ExecutionRecord.new(query="hi", target_key="t", target={})
        >>> async def demo():
        ...     await store.create(record)
        ...     await store.save_result(record.id, {"text": "hello"})
        ...     await store.mark_succeeded(record.id)
        ...     return (await store.get(record.id)).status
        >>> asyncio.run(demo())
        'succeeded'
    """

    def __init__(self) -> None:
        """Start empty."""
        self._records: dict[str, ExecutionRecord] = {}

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release (the records stay readable)."""

    def _update(self, execution_id: str, **changes: Any) -> ExecutionRecord:
        try:
            record = self._records[execution_id]
        except KeyError:
            raise StateError(f"no execution with id {execution_id!r}") from None
        updated = dataclasses.replace(record, updated_at=time.time(), **changes)
        self._records[execution_id] = updated
        return updated

    async def create(self, record: ExecutionRecord) -> None:
        """Insert a new record."""
        if record.id in self._records:
            raise StateError(f"execution {record.id!r} already exists")
        self._records[record.id] = record

    async def mark_running(self, execution_id: str, worker_id: str, lease_until: float) -> None:
        """Set status ``running``, owned by `worker_id`."""
        self._update(
            execution_id, status="running", worker_id=worker_id, lease_expires_at=lease_until
        )

    async def renew_leases(self, worker_id: str, lease_until: float) -> int:
        """Extend the leases of `worker_id`'s unfinished records."""
        owned = [
            r.id for r in self._records.values() if r.worker_id == worker_id and not r.is_finished
        ]
        for execution_id in owned:
            self._update(execution_id, lease_expires_at=lease_until)
        return len(owned)

    async def checkpoint(self, execution_id: str, progress: Mapping[str, Any]) -> None:
        """Replace the record's progress."""
        self._update(execution_id, progress=_json_safe(dict(progress)))

    async def record_attempt(self, execution_id: str, attempt: Mapping[str, Any]) -> None:
        """Append one attempt."""
        record = self._records.get(execution_id)
        attempts = (*record.attempts, _json_safe(dict(attempt))) if record else ()
        self._update(execution_id, attempts=attempts)

    async def save_result(
        self,
        execution_id: str,
        result: Mapping[str, Any],
        attempts: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Persist the provider result (and append `attempts`)."""
        record = self._records.get(execution_id)
        added = tuple(_json_safe(dict(a)) for a in attempts)
        changes = {"attempts": record.attempts + added} if record is not None and added else {}
        self._update(execution_id, result=_json_safe(dict(result)), **changes)

    async def mark_succeeded(
        self, execution_id: str, result: Mapping[str, Any] | None = None
    ) -> bool:
        """Finish as ``succeeded``."""
        if self._finished(execution_id):
            return False
        changes: dict[str, Any] = {"status": "succeeded", "lease_expires_at": None}
        if result is not None:
            changes["result"] = _json_safe(dict(result))
        self._update(execution_id, **changes)
        return True

    async def mark_failed(self, execution_id: str, error: str) -> bool:
        """Finish as ``failed``."""
        if self._finished(execution_id):
            return False
        self._update(execution_id, status="failed", error=error, lease_expires_at=None)
        return True

    def _finished(self, execution_id: str) -> bool:
        record = self._records.get(execution_id)
        if record is None:
            raise StateError(f"no execution with id {execution_id!r}")
        return record.is_finished

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        """The record, or None."""
        return self._records.get(execution_id)

    async def list_unfinished(self, limit: int = 1000) -> list[ExecutionRecord]:
        """Unfinished records, oldest first."""
        unfinished = [r for r in self._records.values() if not r.is_finished]
        return sorted(unfinished, key=lambda r: r.created_at)[:limit]

    async def claim(
        self, execution_id: str, worker_id: str, now: float, lease_until: float
    ) -> ExecutionRecord | None:
        """Take over an abandoned record."""
        record = self._records.get(execution_id)
        if record is None or record.is_finished or not _claimable(record, worker_id, now):
            return None
        return self._update(execution_id, worker_id=worker_id, lease_expires_at=lease_until)

    async def prune(self, finished_before: float) -> int:
        """Delete old finished records."""
        old = [
            r.id for r in self._records.values() if r.is_finished and r.updated_at < finished_before
        ]
        for execution_id in old:
            del self._records[execution_id]
        return len(old)


def _claimable(record: ExecutionRecord, worker_id: str, now: float) -> bool:
    expired = record.lease_expires_at is None or record.lease_expires_at < now
    return expired or record.worker_id == worker_id


class StreamCheckpointer:
    """Accumulates a stream's chunks and persists progress every `interval` chunks.

    Args:
        store: Where to checkpoint.
        execution_id: The streaming execution.
        interval: Chunks between two checkpoints (`RuntimeConfig.checkpoint_interval`).
    """

    def __init__(self, store: StateStore, execution_id: str, interval: int) -> None:
        """Start with no chunks."""
        self._store = store
        self._execution_id = execution_id
        self._interval = max(1, interval)
        self._parts: list[str] = []
        self.n_checkpoints = 0

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._parts)

    @property
    def n_chunks(self) -> int:
        """Chunks received so far."""
        return len(self._parts)

    async def add(self, chunk: str) -> None:
        """Record one chunk; checkpoint when `interval` chunks arrived since the last one."""
        self._parts.append(chunk)
        if len(self._parts) % self._interval == 0:
            await self.flush()

    async def flush(self) -> None:
        """Persist the progress now."""
        progress = {"chunks": len(self._parts), "text": self.text, "at": time.time()}
        await self._store.checkpoint(self._execution_id, progress)
        self.n_checkpoints += 1


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
    if report.total or report.skipped:
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


# --- SQL backends ----------------------------------------------------------------------------

_COLUMNS = (
    "id",
    "query",
    "route_id",
    "confidence",
    "target_key",
    "target",
    "context",
    "status",
    "attempts",
    "result",
    "error",
    "progress",
    "created_at",
    "updated_at",
    "worker_id",
    "lease_expires_at",
)
_JSON_COLUMNS = frozenset({"target", "context", "attempts", "result", "progress"})
_OPEN = "status IN ('pending', 'running')"
# Statement templates: {t} table, {p} parameter, {j} JSON parameter, {cols} the columns.
_SQL = {
    "insert": "INSERT INTO {t} ({cols}) VALUES ({values})",
    "running": "UPDATE {t} SET status = 'running', worker_id = {p}, lease_expires_at = {p}, "
    "updated_at = {p} WHERE id = {p} AND " + _OPEN,
    "renew": "UPDATE {t} SET lease_expires_at = {p} WHERE worker_id = {p} AND " + _OPEN,
    "checkpoint": "UPDATE {t} SET progress = {j}, updated_at = {p} WHERE id = {p}",
    "result": "UPDATE {t} SET result = {j}, updated_at = {p} WHERE id = {p}",
    "succeed": "UPDATE {t} SET status = 'succeeded', result = COALESCE({j}, result), "
    "lease_expires_at = NULL, updated_at = {p} WHERE id = {p} AND " + _OPEN,
    "fail": "UPDATE {t} SET status = 'failed', error = {p}, lease_expires_at = NULL, "
    "updated_at = {p} WHERE id = {p} AND " + _OPEN,
    "get": "SELECT {cols} FROM {t} WHERE id = {p}",
    "unfinished": "SELECT {cols} FROM {t} WHERE " + _OPEN + " ORDER BY created_at LIMIT {p}",
    "claim": "UPDATE {t} SET worker_id = {p}, lease_expires_at = {p}, updated_at = {p} "
    "WHERE id = {p} AND " + _OPEN + " AND (lease_expires_at IS NULL "
    "OR lease_expires_at < {p} OR worker_id = {p})",
    "prune": "DELETE FROM {t} WHERE status IN ('succeeded', 'failed') AND updated_at < {p}",
}


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, separators=(",", ":"))


def _record_params(record: ExecutionRecord) -> tuple[Any, ...]:
    data = record.to_dict()
    return tuple(_dumps(data[c]) if c in _JSON_COLUMNS else data[c] for c in _COLUMNS)


def _record_from_row(row: tuple[Any, ...]) -> ExecutionRecord:
    return ExecutionRecord.from_dict(dict(zip(_COLUMNS, row, strict=True)))


class _SqlStateStore:
    """The statements and record logic shared by the SQLite and PostgreSQL stores."""

    _placeholder = "?"
    _json_placeholder = "?"
    _append_attempt = ""

    def __init__(self, table: str) -> None:
        placeholders = {"p": self._placeholder, "j": self._json_placeholder}
        values = ", ".join(
            self._json_placeholder if c in _JSON_COLUMNS else self._placeholder for c in _COLUMNS
        )
        self._sql = {
            name: sql.format(t=table, cols=", ".join(_COLUMNS), values=values, **placeholders)
            for name, sql in _SQL.items()
        }
        self._sql["attempt"] = self._append_attempt.format(t=table, **placeholders)

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _claim_row(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    async def _must_update(self, name: str, execution_id: str, *params: Any) -> None:
        if await self._execute(self._sql[name], (*params, execution_id)) == 0:
            raise StateError(f"no execution with id {execution_id!r} to update ({name})")

    async def create(self, record: ExecutionRecord) -> None:
        """Insert a new record."""
        await self._execute(self._sql["insert"], _record_params(record))

    async def mark_running(self, execution_id: str, worker_id: str, lease_until: float) -> None:
        """Set status ``running``, owned by `worker_id`."""
        await self._must_update("running", execution_id, worker_id, lease_until, time.time())

    async def renew_leases(self, worker_id: str, lease_until: float) -> int:
        """Extend the leases of `worker_id`'s unfinished records."""
        return await self._execute(self._sql["renew"], (lease_until, worker_id))

    async def checkpoint(self, execution_id: str, progress: Mapping[str, Any]) -> None:
        """Replace the record's progress."""
        await self._must_update("checkpoint", execution_id, _dumps(dict(progress)), time.time())

    async def record_attempt(self, execution_id: str, attempt: Mapping[str, Any]) -> None:
        """Append one attempt."""
        await self._must_update("attempt", execution_id, _dumps(dict(attempt)), time.time())

    async def save_result(
        self,
        execution_id: str,
        result: Mapping[str, Any],
        attempts: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Persist the provider result (and append `attempts`) in one statement."""
        if not attempts:
            await self._must_update("result", execution_id, _dumps(dict(result)), time.time())
            return
        sql, attempt_params = self._result_with_attempts([dict(a) for a in attempts])
        params = (_dumps(dict(result)), *attempt_params, time.time(), execution_id)
        if await self._execute(sql, params) == 0:
            raise StateError(f"no execution with id {execution_id!r} to update (result)")

    def _result_with_attempts(self, attempts: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
        """The statement setting the result and appending `attempts`, and its attempt params."""
        raise NotImplementedError

    async def mark_succeeded(
        self, execution_id: str, result: Mapping[str, Any] | None = None
    ) -> bool:
        """Finish as ``succeeded``."""
        payload = None if result is None else _dumps(dict(result))
        params = (payload, time.time(), execution_id)
        return await self._finish(self._sql["succeed"], params, execution_id)

    async def mark_failed(self, execution_id: str, error: str) -> bool:
        """Finish as ``failed``."""
        params = (error, time.time(), execution_id)
        return await self._finish(self._sql["fail"], params, execution_id)

    async def _finish(self, sql: str, params: tuple[Any, ...], execution_id: str) -> bool:
        if await self._execute(sql, params):
            return True
        if await self.get(execution_id) is None:
            raise StateError(f"no execution with id {execution_id!r}")
        return False

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        """The record, or None."""
        rows = await self._fetch(self._sql["get"], (execution_id,))
        return _record_from_row(rows[0]) if rows else None

    async def list_unfinished(self, limit: int = 1000) -> list[ExecutionRecord]:
        """Unfinished records, oldest first."""
        return [_record_from_row(r) for r in await self._fetch(self._sql["unfinished"], (limit,))]

    async def claim(
        self, execution_id: str, worker_id: str, now: float, lease_until: float
    ) -> ExecutionRecord | None:
        """Take over an abandoned record (atomically)."""
        row = await self._claim_row((worker_id, lease_until, now, execution_id, now, worker_id))
        return None if row is None else _record_from_row(row)

    async def prune(self, finished_before: float) -> int:
        """Delete old finished records."""
        return await self._execute(self._sql["prune"], (finished_before,))


_SQLITE_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            "CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, query TEXT NOT NULL, "
            "route_id TEXT, confidence REAL, target_key TEXT NOT NULL, target TEXT NOT NULL, "
            "context TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN "
            "('pending', 'running', 'succeeded', 'failed')), attempts TEXT NOT NULL DEFAULT '[]', "
            "result TEXT, error TEXT, progress TEXT, created_at REAL NOT NULL, "
            "updated_at REAL NOT NULL, worker_id TEXT, lease_expires_at REAL)",
            "CREATE INDEX IF NOT EXISTS {t}_open ON {t} (created_at) WHERE " + _OPEN,
            "CREATE INDEX IF NOT EXISTS {t}_updated ON {t} (updated_at)",
        ),
    ),
)


class SQLiteStateStore(_SqlStateStore):
    """State in a SQLite file (stdlib `sqlite3`, WAL mode), the default backend.

    All database work runs on one dedicated thread, so the event loop never blocks on disk.
    With ``synchronous="NORMAL"`` (the default) a commit survives the process being killed;
    use ``"FULL"`` to also survive a power loss, at the price of one fsync per write.
    Several processes may share one file (SQLite serialises their writes).

    Args:
        path: The database file (created with its directory if missing).
        table: Name of the executions table.
        synchronous: SQLite ``synchronous`` pragma: ``"NORMAL"`` or ``"FULL"``.
        busy_timeout_s: How long to wait for another process's write lock.

    Example:
        >>> import asyncio, tempfile, os
        >>> async def demo(path):
        ...     store = SQLiteStateStore(path)
        ...     await store.start()
        ...     record = ExecutionRecord.new(query="hi", target_key="t", target={})
        ...     await store.create(record)
        ...     await store.close()
        ...     return len(await _reopen(path))
        >>> async def _reopen(path):
        ...     store = SQLiteStateStore(path)
        ...     await store.start()
        ...     try:
        ...         return await store.list_unfinished()
        ...     finally:
        ...         await store.close()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     asyncio.run(demo(os.path.join(tmp, "state.db")))
        1
    """

    _append_attempt = (
        "UPDATE {t} SET attempts = json_insert(attempts, '$[#]', json({p})), updated_at = {p} "
        "WHERE id = {p}"
    )

    def _result_with_attempts(self, attempts: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
        # json_insert applies its (path, value) edits left to right: each '$[#]' appends
        inserts = ", ".join(["'$[#]', json(?)"] * len(attempts))
        sql = (
            f"UPDATE {self.table} SET result = ?, attempts = json_insert(attempts, {inserts}), "
            "updated_at = ? WHERE id = ?"
        )
        return sql, tuple(_dumps(a) for a in attempts)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "executions",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 5.0,
    ) -> None:
        """Remember where the database lives; nothing is opened before `start`."""
        _check_identifier(table)
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        super().__init__(table)
        self.path = Path(path)
        self.table = table
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._thread: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def start(self) -> None:
        """Open the file on the store's thread, enable WAL and apply migrations."""
        if self._thread is not None:
            return
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stratarouter-sqlite")
        await self._call(self._open)

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        if self._thread is None:
            return
        await self._call(self._close)
        self._thread.shutdown(wait=True)
        self._thread = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        self._conn = conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = ?", (self.table,)
            ).fetchone()
            current = row[0] if row else 0
            for version, statements in _SQLITE_MIGRATIONS:
                if version > current:
                    for statement in statements:
                        conn.execute(statement.format(t=self.table))
                    conn.execute(
                        "INSERT OR REPLACE INTO schema_version VALUES (?, ?)", (self.table, version)
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._thread is None:
            raise StateError("SQLiteStateStore used before start() or after close()")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, fn, *args)
        except sqlite3.Error as exc:
            raise StateError(f"SQLite state store {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError("SQLiteStateStore is not open")
        return self._conn

    def _execute_sync(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._connection().execute(sql, params).rowcount

    def _fetch_sync(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, params).fetchall()

    def _claim_sync(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute(self._sql["claim"], params).rowcount == 0:
                conn.execute("COMMIT")
                return None
            row: tuple[Any, ...] = conn.execute(self._sql["get"], (params[3],)).fetchone()
            conn.execute("COMMIT")
            return row
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return await self._call(self._execute_sync, sql, params)

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await self._call(self._fetch_sync, sql, params)

    async def _claim_row(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return await self._call(self._claim_sync, params)


_POSTGRES_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            "CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, query TEXT NOT NULL, "
            "route_id TEXT, confidence DOUBLE PRECISION, target_key TEXT NOT NULL, "
            "target JSONB NOT NULL, context JSONB NOT NULL, status TEXT NOT NULL CHECK (status IN "
            "('pending', 'running', 'succeeded', 'failed')), "
            "attempts JSONB NOT NULL DEFAULT '[]'::jsonb, result JSONB, error TEXT, "
            "progress JSONB, "
            "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
            "worker_id TEXT, lease_expires_at DOUBLE PRECISION)",
            "CREATE INDEX IF NOT EXISTS executions_open ON {t} (created_at) WHERE " + _OPEN,
            "CREATE INDEX IF NOT EXISTS executions_updated ON {t} (updated_at)",
        ),
    ),
)


class PostgresStateStore(_SqlStateStore):
    """State in PostgreSQL (psycopg 3, async), shared by any number of bridges.

    `start` creates the schema and applies pending migrations under an advisory lock, so many
    bridges may start at once; the applied version is kept in ``<schema>.schema_version``.
    Connections come from a small built-in pool and are opened on demand.

    Args:
        dsn: Connection string, e.g. ``postgresql://user@127.0.0.1:5432/db``.
        schema: Schema holding the tables (created if missing).
        pool_size: Most connections used at the same time.
        connect_timeout_s: Timeout of one connection attempt.
    """

    _placeholder = "%s"
    _json_placeholder = "%s::jsonb"
    _append_attempt = (
        "UPDATE {t} SET attempts = attempts || jsonb_build_array({j}), updated_at = {p} "
        "WHERE id = {p}"
    )

    def _result_with_attempts(self, attempts: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
        sql = (
            f"UPDATE {self.schema}.executions SET result = %s::jsonb, "
            "attempts = attempts || %s::jsonb, updated_at = %s WHERE id = %s"
        )
        return sql, (_dumps(attempts),)

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "stratarouter",
        pool_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        """Remember the DSN; psycopg is imported and connections opened in `start`."""
        _check_identifier(schema)
        if pool_size < 1:
            raise ConfigError(f"pool_size must be >= 1, got {pool_size}")
        super().__init__(f"{schema}.executions")
        self.schema = schema
        self._sql["claim"] += " RETURNING " + ", ".join(_COLUMNS)
        self._dsn = dsn
        self._connect_timeout = max(1, round(connect_timeout_s))
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[AsyncConnection[Any]] = []
        self._psycopg: Any = None

    async def start(self) -> None:
        """Import psycopg, connect, and apply migrations (idempotent)."""
        if self._psycopg is not None:
            return
        self._psycopg = require("psycopg", extra="postgres")
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"stratarouter:{self.schema}",)
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.schema}.schema_version "
                "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            cursor = await conn.execute(
                f"SELECT version FROM {self.schema}.schema_version WHERE component = 'executions'"
            )
            row = await cursor.fetchone()
            current = row[0] if row else 0
            for version, statements in _POSTGRES_MIGRATIONS:
                if version > current:
                    for statement in statements:
                        await conn.execute(statement.format(t=f"{self.schema}.executions"))
                    await conn.execute(
                        f"INSERT INTO {self.schema}.schema_version VALUES ('executions', %s) "
                        "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                        (version,),
                    )

    async def close(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
        self._psycopg = None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        if self._psycopg is None:
            raise StateError("PostgresStateStore used before start() or after close()")
        psycopg = self._psycopg
        async with self._slots:
            try:
                conn = (
                    self._idle.pop()
                    if self._idle
                    else await psycopg.AsyncConnection.connect(
                        self._dsn, autocommit=True, connect_timeout=self._connect_timeout
                    )
                )
            except psycopg.Error as exc:
                raise StateError(f"cannot connect to PostgreSQL: {exc}") from exc
            try:
                yield conn
            except psycopg.Error as exc:
                await self._release(conn)
                raise StateError(f"PostgreSQL state store: {exc}") from exc
            except BaseException:  # cancelled mid-query: the connection state is unknown
                await conn.close()
                raise
            await self._release(conn)

    async def _release(self, conn: AsyncConnection[Any]) -> None:
        """Return a healthy connection to the pool; close a broken one."""
        if conn.closed or conn.broken or self._psycopg is None:
            await conn.close()
        else:
            self._idle.append(conn)

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

    async def _claim_row(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with self._connection() as conn:
            cursor = await conn.execute(self._sql["claim"], params)
            return await cursor.fetchone()


def _check_identifier(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or not name.replace("_", "").isalnum()
        or name[0].isdigit()
    ):
        raise ConfigError(f"invalid SQL identifier {name!r}: use letters, digits and underscores")


def open_state_store(config: RuntimeConfig) -> StateStore:
    """The store `config.state_backend` asks for (not started yet).

    Example:
        >>> from stratarouter_core.runtime.config import RuntimeConfig
        >>> type(open_state_store(RuntimeConfig(state_backend="memory"))).__name__
        'MemoryStateStore'
    """
    if config.state_backend == "memory":
        return MemoryStateStore()
    if config.state_backend == "sqlite":
        return SQLiteStateStore(config.sqlite_path)
    if config.database_url is None:  # RuntimeConfig already refuses this; keep mypy informed
        raise ConfigError("RuntimeConfig.database_url is required when state_backend='postgresql'")
    return PostgresStateStore(config.database_url, schema=config.database_schema)
