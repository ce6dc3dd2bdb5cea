"""State in PostgreSQL (psycopg 3, async), shared by any number of bridges."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from stratarouter_core.errors import ConfigError

from stratarouter_runtime._deps import require

from .records import GradeConflictError, StateError
from .sql import (
    COLUMNS,
    GRADES_INDEX,
    GRADES_TABLE,
    OPEN,
    SqlStateStore,
    check_identifier,
    dumps,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["PostgresStateStore"]

logger = logging.getLogger("stratarouter_runtime")

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
            "CREATE INDEX IF NOT EXISTS executions_open ON {t} (created_at) WHERE " + OPEN,
            "CREATE INDEX IF NOT EXISTS executions_updated ON {t} (updated_at)",
        ),
    ),
    (
        2,
        (
            GRADES_TABLE.replace("{serial}", "BIGSERIAL")
            .replace("{json}", "JSONB")
            .replace("{real}", "DOUBLE PRECISION")
            .replace("{blob}", "BYTEA"),
            GRADES_INDEX.replace("{index}", "model_grades_router"),
        ),
    ),
)


class PostgresStateStore(SqlStateStore):
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
        return sql, (dumps(attempts),)

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "stratarouter",
        pool_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        """Remember the DSN; psycopg is imported and connections opened in `start`."""
        check_identifier(schema)
        if pool_size < 1:
            raise ConfigError(f"pool_size must be >= 1, got {pool_size}")
        super().__init__(f"{schema}.executions", f"{schema}.model_grades")
        self.schema = schema
        self._sql["claim"] += " RETURNING " + ", ".join(COLUMNS)
        self._sql["grade_insert"] += " RETURNING seq"
        self._grades_channel = f"{schema}_model_grades"
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
                        await conn.execute(
                            statement.format(
                                t=f"{self.schema}.executions", g=f"{self.schema}.model_grades"
                            )
                        )
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

    async def _append_grade_rows(self, rows: list[tuple[Any, ...]]) -> list[int]:
        seqs: list[int] = []
        graded_already: str | None = None
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    # Appenders take turns (readers do not wait): a sequence value drawn by a
                    # transaction that commits later would otherwise land behind a reader's
                    # position and never be read.
                    await conn.execute(
                        f"LOCK TABLE {self.schema}.model_grades IN SHARE ROW EXCLUSIVE MODE"
                    )
                    for row in rows:
                        graded_already = row[3]
                        cursor = await conn.execute(self._sql["grade_insert"], row)
                        found = await cursor.fetchone()
                        seqs.append(int(found[0]) if found else 0)
                    graded_already = None
                    # delivered at commit, to every store listening (`grade_notifications`)
                    await conn.execute("SELECT pg_notify(%s, '')", (self._grades_channel,))
            except self._psycopg.errors.UniqueViolation:
                pass  # rolled back; raised below, once the connection is back in the pool
        if graded_already is not None:
            raise GradeConflictError(f"execution {graded_already!r} was graded already")
        return seqs

    async def grade_notifications(self) -> AsyncIterator[None]:
        """Yield whenever grades were committed to the log by any store over this schema
        (LISTEN ``<schema>_model_grades``), and once after each (re)connection, since grades
        may have been committed while nobody listened. A lost connection is logged and
        reopened a second later; the iterator ends only when closed."""
        if self._psycopg is None:
            raise StateError("PostgresStateStore used before start() or after close()")
        psycopg = self._psycopg
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=self._connect_timeout
                )
                async with conn:
                    await conn.execute(f"LISTEN {self._grades_channel}")
                    yield
                    async for _ in conn.notifies():
                        yield
            except psycopg.Error as exc:  # the database may come back: keep listening
                logger.warning("grade notifications stopped (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
