"""What the SQL backends share: the columns, the statements and the record logic."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from stratarouter_core.errors import ConfigError

from .records import ExecutionRecord, GradeRecord, StateError

__all__ = [
    "COLUMNS",
    "GRADES_INDEX",
    "GRADES_TABLE",
    "OPEN",
    "SqlStateStore",
    "check_identifier",
    "dumps",
]

COLUMNS = (
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
OPEN = "status IN ('pending', 'running')"
# Statement templates: {t} table, {p} parameter, {j} JSON parameter, {cols} the columns.
_SQL = {
    "insert": "INSERT INTO {t} ({cols}) VALUES ({values})",
    "running": "UPDATE {t} SET status = 'running', worker_id = {p}, lease_expires_at = {p}, "
    "updated_at = {p} WHERE id = {p} AND " + OPEN,
    "renew": "UPDATE {t} SET lease_expires_at = {p} WHERE worker_id = {p} AND " + OPEN,
    "checkpoint": "UPDATE {t} SET progress = {j}, updated_at = {p} WHERE id = {p}",
    "result": "UPDATE {t} SET result = {j}, updated_at = {p} WHERE id = {p}",
    "succeed": "UPDATE {t} SET status = 'succeeded', result = COALESCE({j}, result), "
    "lease_expires_at = NULL, updated_at = {p} WHERE id = {p} AND " + OPEN,
    "fail": "UPDATE {t} SET status = 'failed', error = {p}, lease_expires_at = NULL, "
    "updated_at = {p} WHERE id = {p} AND " + OPEN,
    "get": "SELECT {cols} FROM {t} WHERE id = {p}",
    "unfinished": "SELECT {cols} FROM {t} WHERE " + OPEN + " ORDER BY created_at LIMIT {p}",
    "claim": "UPDATE {t} SET worker_id = {p}, lease_expires_at = {p}, updated_at = {p} "
    "WHERE id = {p} AND " + OPEN + " AND (lease_expires_at IS NULL "
    "OR lease_expires_at < {p} OR worker_id = {p})",
    "prune": "DELETE FROM {t} WHERE status IN ('succeeded', 'failed') AND updated_at < {p}",
    "grade_insert": "INSERT INTO {g} (router, query, scores, execution_id, tenant, created_at, "
    "embedding) VALUES ({p}, {p}, {j}, {p}, {p}, {p}, {p})",
    "grades_after": "SELECT seq, router, query, scores, execution_id, tenant, created_at, "
    "embedding FROM {g} WHERE router = {p} AND seq > {p} ORDER BY seq LIMIT {p}",
}
# The grade log of the model router: positions (seq) are given in commit order.
GRADES_TABLE = (
    "CREATE TABLE IF NOT EXISTS {g} (seq {serial} PRIMARY KEY, router TEXT NOT NULL, "
    "query TEXT NOT NULL, scores {json} NOT NULL, execution_id TEXT UNIQUE, tenant TEXT, "
    "created_at {real} NOT NULL, embedding {blob})"
)
GRADES_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON {g} (router, seq)"


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, separators=(",", ":"))


def _record_params(record: ExecutionRecord) -> tuple[Any, ...]:
    data = record.to_dict()
    return tuple(dumps(data[c]) if c in _JSON_COLUMNS else data[c] for c in COLUMNS)


def _record_from_row(row: tuple[Any, ...]) -> ExecutionRecord:
    return ExecutionRecord.from_dict(dict(zip(COLUMNS, row, strict=True)))


def _grade_params(grade: GradeRecord) -> tuple[Any, ...]:
    """The parameters of the ``grade_insert`` statement for `grade`."""
    scores = dumps(dict(grade.scores))
    g = grade
    return (g.router, g.query, scores, g.execution_id, g.tenant, g.created_at, g.embedding)


def _grade_from_row(row: tuple[Any, ...]) -> GradeRecord:
    seq, router, query, scores, execution_id, tenant, created_at, embedding = row
    if isinstance(scores, str):
        scores = json.loads(scores)
    return GradeRecord(
        router=router,
        query=query,
        scores=scores,
        execution_id=execution_id,
        tenant=tenant,
        created_at=created_at,
        seq=seq,
        embedding=None if embedding is None else bytes(embedding),
    )


class SqlStateStore:
    """The statements and record logic shared by the SQLite and PostgreSQL stores."""

    _placeholder = "?"
    _json_placeholder = "?"
    _append_attempt = ""

    def __init__(self, table: str, grades_table: str) -> None:
        placeholders = {"p": self._placeholder, "j": self._json_placeholder}
        values = ", ".join(
            self._json_placeholder if c in _JSON_COLUMNS else self._placeholder for c in COLUMNS
        )
        self._sql = {
            name: sql.format(
                t=table, g=grades_table, cols=", ".join(COLUMNS), values=values, **placeholders
            )
            for name, sql in _SQL.items()
        }
        self._sql["attempt"] = self._append_attempt.format(t=table, **placeholders)

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _claim_row(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        raise NotImplementedError

    async def _append_grade_rows(self, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert grade rows in one transaction, in order; their positions."""
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
        await self._must_update("checkpoint", execution_id, dumps(dict(progress)), time.time())

    async def record_attempt(self, execution_id: str, attempt: Mapping[str, Any]) -> None:
        """Append one attempt."""
        await self._must_update("attempt", execution_id, dumps(dict(attempt)), time.time())

    async def save_result(
        self,
        execution_id: str,
        result: Mapping[str, Any],
        attempts: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Persist the provider result (and append `attempts`) in one statement."""
        if not attempts:
            await self._must_update("result", execution_id, dumps(dict(result)), time.time())
            return
        sql, attempt_params = self._result_with_attempts([dict(a) for a in attempts])
        params = (dumps(dict(result)), *attempt_params, time.time(), execution_id)
        if await self._execute(sql, params) == 0:
            raise StateError(f"no execution with id {execution_id!r} to update (result)")

    def _result_with_attempts(self, attempts: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
        """The statement setting the result and appending `attempts`, and its attempt params."""
        raise NotImplementedError

    async def mark_succeeded(
        self, execution_id: str, result: Mapping[str, Any] | None = None
    ) -> bool:
        """Finish as ``succeeded``."""
        payload = None if result is None else dumps(dict(result))
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

    async def append_grades(self, grades: Sequence[GradeRecord]) -> list[GradeRecord]:
        """Append to the grade log in one transaction."""
        if not grades:
            return []
        seqs = await self._append_grade_rows([_grade_params(g) for g in grades])
        return [dataclasses.replace(g, seq=seq) for g, seq in zip(grades, seqs, strict=True)]

    async def grades_after(self, router: str, after: int, limit: int = 1000) -> list[GradeRecord]:
        """`router`'s grades after position `after`, in log order."""
        rows = await self._fetch(self._sql["grades_after"], (router, after, limit))
        return [_grade_from_row(r) for r in rows]


def check_identifier(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or not name.replace("_", "").isalnum()
        or name[0].isdigit()
    ):
        raise ConfigError(f"invalid SQL identifier {name!r}: use letters, digits and underscores")
