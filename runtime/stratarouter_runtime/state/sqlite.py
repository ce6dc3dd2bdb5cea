"""State in a SQLite file (stdlib `sqlite3`, WAL mode), the default backend."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from stratarouter_core.errors import ConfigError

from .records import GradeConflictError, StateError
from .sql import GRADES_INDEX, GRADES_TABLE, OPEN, SqlStateStore, check_identifier, dumps

__all__ = ["SQLiteStateStore"]

_T = TypeVar("_T")

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
            "CREATE INDEX IF NOT EXISTS {t}_open ON {t} (created_at) WHERE " + OPEN,
            "CREATE INDEX IF NOT EXISTS {t}_updated ON {t} (updated_at)",
        ),
    ),
    (
        2,
        (
            GRADES_TABLE.replace("{serial}", "INTEGER")
            .replace("{json}", "TEXT")
            .replace("{real}", "REAL")
            .replace("{blob}", "BLOB"),
            GRADES_INDEX.replace("{index}", "{g}_router"),
        ),
    ),
)


class SQLiteStateStore(SqlStateStore):
    """State in a SQLite file (stdlib `sqlite3`, WAL mode), the default backend.

    All database work runs on one dedicated thread, so the event loop never blocks on disk.
    With ``synchronous="NORMAL"`` (the default) a commit survives the process being killed;
    use ``"FULL"`` to also survive a power loss, at the price of one fsync per write.
    Several processes may share one file (SQLite serialises their writes).

    Args:
        path: The database file (created with its directory if missing).
        table: Name of the executions table.
        grades_table: Name of the model router's grade log table.
        synchronous: SQLite ``synchronous`` pragma: ``"NORMAL"`` or ``"FULL"``.
        busy_timeout_s: How long to wait for another process's write lock.

    Example:
        >>> import asyncio, tempfile, os
        >>> from stratarouter_runtime.state import ExecutionRecord
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
        return sql, tuple(dumps(a) for a in attempts)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "executions",
        grades_table: str = "model_grades",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 5.0,
    ) -> None:
        """Remember where the database lives; nothing is opened before `start`."""
        check_identifier(table)
        check_identifier(grades_table)
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        super().__init__(table, grades_table)
        self.path = Path(path)
        self.table = table
        self.grades_table = grades_table
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
                        conn.execute(statement.format(t=self.table, g=self.grades_table))
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

    def _append_grades_sync(self, rows: list[tuple[Any, ...]]) -> list[int]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # SQLite writes one at a time: seq is commit order
        try:
            seqs = [self._insert_grade(conn, row) for row in rows]
            conn.execute("COMMIT")
            return seqs
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _insert_grade(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> int:
        try:
            return conn.execute(self._sql["grade_insert"], row).lastrowid or 0
        except sqlite3.IntegrityError:  # the only unique column besides seq: execution_id
            raise GradeConflictError(f"execution {row[3]!r} was graded already") from None

    async def _append_grade_rows(self, rows: list[tuple[Any, ...]]) -> list[int]:
        return await self._call(self._append_grades_sync, rows)

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return await self._call(self._execute_sync, sql, params)

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await self._call(self._fetch_sync, sql, params)

    async def _claim_row(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return await self._call(self._claim_sync, params)
