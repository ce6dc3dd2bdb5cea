"""Execution records, their statuses, and the `StateStore` protocol every backend implements."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

from stratarouter_core.errors import StrataRouterError

__all__ = [
    "UNFINISHED",
    "ExecutionNotFoundError",
    "ExecutionRecord",
    "ExecutionStatus",
    "GradeConflictError",
    "GradeNotifier",
    "GradeRecord",
    "StateError",
    "StateStore",
    "json_safe",
    "new_execution_id",
]

ExecutionStatus = Literal["pending", "running", "succeeded", "failed"]
UNFINISHED: tuple[ExecutionStatus, ...] = ("pending", "running")
_STATUSES = ("pending", "running", "succeeded", "failed")


class StateError(StrataRouterError, RuntimeError):
    """The state store failed, or an execution record does not exist."""


class ExecutionNotFoundError(StateError):
    """No execution with this id (or none the caller may see)."""


class GradeConflictError(StateError):
    """An execution cannot be graded: graded already (once each), or it holds no model answer."""


def new_execution_id() -> str:
    """A new, globally unique execution id (32 hex characters)."""
    return uuid.uuid4().hex


def json_safe(value: Any) -> Any:
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
            target=json_safe(dict(target)),
            context=json_safe(dict(context or {})),
            status=status,
            result=None if result is None else json_safe(dict(result)),
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


@dataclass(frozen=True, kw_only=True, slots=True)
class GradeRecord:
    """Grades of the answers to one query, kept in a state store's grade log.

    The log is what every bridge over one store replays onto its `ModelRouter`, in order, so
    grades given through any of them reach all of them and survive restarts.

    Attributes:
        router: The `ModelRouter.fit_id` of the router the grades were given for: a
            refitted router starts a log of its own.
        query: The graded query.
        scores: Quality of each graded model's answer, in [0, 1].
        execution_id: The execution whose answer was graded (None: grades from elsewhere). An
            execution is graded once.
        tenant: The tenant that gave the grades (the ModelRouter itself is shared).
        created_at: When the grades were given, seconds since the epoch.
        seq: Position in the log, given by the store when appended (0 before).
        embedding: The query's vector in the router's space (float32 bytes), so the bridges
            that learn the grade need not encode the query again (None: they do).

    Example:
        >>> GradeRecord(router="3f2a", query="hi", scores={"gpt-4o-mini": 1.0}).seq
        0
    """

    router: str
    query: str
    scores: Mapping[str, float]
    execution_id: str | None = None
    tenant: str | None = None
    created_at: float = field(default_factory=time.time)
    seq: int = 0
    embedding: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))


@runtime_checkable
class GradeNotifier(Protocol):
    """A store that can say when other processes logged grades (PostgreSQL's LISTEN), so a
    bridge learns them at once instead of at its next poll."""

    def grade_notifications(self) -> AsyncIterator[None]:
        """Yield whenever grades may have been logged; runs until closed."""
        ...


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

    async def append_grades(self, grades: Sequence[GradeRecord]) -> list[GradeRecord]:
        """Append `grades` to the grade log in one atomic write; return them with their
        positions. Positions follow commit order: a reader that has seen position n never
        finds a record before it appear later.

        Raises:
            GradeConflictError: One of the executions was graded already (nothing appended).
        """

    async def grades_after(self, router: str, after: int, limit: int = 1000) -> list[GradeRecord]:
        """Up to `limit` grades of `router` at positions after `after`, in log order."""
