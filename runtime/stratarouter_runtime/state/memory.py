"""The in-process state store: fast and ephemeral."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .records import (
    ExecutionRecord,
    GradeConflictError,
    GradeRecord,
    StateError,
    json_safe,
)

__all__ = ["MemoryStateStore"]


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
        self._grades: list[GradeRecord] = []
        self._graded_executions: set[str] = set()

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
        self._update(execution_id, progress=json_safe(dict(progress)))

    async def record_attempt(self, execution_id: str, attempt: Mapping[str, Any]) -> None:
        """Append one attempt."""
        record = self._records.get(execution_id)
        attempts = (*record.attempts, json_safe(dict(attempt))) if record else ()
        self._update(execution_id, attempts=attempts)

    async def save_result(
        self,
        execution_id: str,
        result: Mapping[str, Any],
        attempts: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Persist the provider result (and append `attempts`)."""
        record = self._records.get(execution_id)
        added = tuple(json_safe(dict(a)) for a in attempts)
        changes = {"attempts": record.attempts + added} if record is not None and added else {}
        self._update(execution_id, result=json_safe(dict(result)), **changes)

    async def mark_succeeded(
        self, execution_id: str, result: Mapping[str, Any] | None = None
    ) -> bool:
        """Finish as ``succeeded``."""
        if self._finished(execution_id):
            return False
        changes: dict[str, Any] = {"status": "succeeded", "lease_expires_at": None}
        if result is not None:
            changes["result"] = json_safe(dict(result))
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

    async def append_grades(self, grades: Sequence[GradeRecord]) -> list[GradeRecord]:
        """Append to the grade log (positions 1, 2, ...)."""
        graded = set(self._graded_executions)
        for grade in grades:
            if grade.execution_id in graded:
                raise GradeConflictError(f"execution {grade.execution_id!r} was graded already")
            if grade.execution_id is not None:
                graded.add(grade.execution_id)
        start = len(self._grades)
        added = [dataclasses.replace(g, seq=start + i + 1) for i, g in enumerate(grades)]
        self._grades.extend(added)
        self._graded_executions = graded
        return added

    async def grades_after(self, router: str, after: int, limit: int = 1000) -> list[GradeRecord]:
        """`router`'s grades after position `after`, in log order."""
        return [g for g in self._grades[max(after, 0) :] if g.router == router][:limit]


def _claimable(record: ExecutionRecord, worker_id: str, now: float) -> bool:
    expired = record.lease_expires_at is None or record.lease_expires_at < now
    return expired or record.worker_id == worker_id
