"""Route sets shared by many servers through PostgreSQL: persisted, versioned, notified.

Every `stratarouter serve` process pointed at one database keeps each tenant's route set in
``<schema>.route_sets`` (tenant, version, routes document). A ``PUT /v1/routes`` (or a
``DELETE``) through any server builds the new set aside, then publishes it in one statement
that gives it the next version (a compare-and-set when the caller names the version it
replaces) and sends ``NOTIFY <schema>_route_sets`` in the same transaction. Every server
listens; on a notification it reads the document, builds the router aside and swaps it in
with `RouteStore.install`, which never goes back to an older version. A version poll every
``poll_s`` seconds catches anything a dropped listener connection missed, and a server
starting later loads the latest set of every tenant before it serves.

Versions are the database's: two concurrent PUTs on two servers get two versions, v and
v + 1, and every server ends on v + 1. Tenants are rows: a tenant's change never reaches
another tenant's set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stratarouter_core.errors import ConfigError, StrataRouterError

from .._deps import require
from ..state.records import StateError
from ..state.sql import check_identifier
from .routeset import RouteSetConflictError, parse_routes_document

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from .routeset import RouteStore

__all__ = ["RouteSetSync"]

logger = logging.getLogger("stratarouter_runtime.server")

_DEFAULT_TENANT = ""  # the tenant-less set (a primary key cannot be NULL)


def _key(tenant: str | None) -> str:
    return _DEFAULT_TENANT if tenant is None else tenant


class RouteSetSync:
    """Keeps a `RouteStore` in step with the route sets in PostgreSQL (see the module doc).

    Args:
        dsn: PostgreSQL connection string (the servers' ``DATABASE_URL``).
        schema: Schema holding the ``route_sets`` table (created if missing); the
            notification channel is ``<schema>_route_sets``.
        poll_s: Seconds between two version polls (the safety net of the notifications).
        connect_timeout_s: Timeout of one connection attempt.

    Attributes:
        n_applied: Route sets of other servers installed here (for tests and metrics).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "stratarouter",
        poll_s: float = 5.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        """Remember the settings; nothing is opened before `start`."""
        check_identifier(schema)
        if not poll_s > 0:
            raise ConfigError(f"RouteSetSync.poll_s must be > 0, got {poll_s!r}")
        self.table = f"{schema}.route_sets"
        self.channel = f"{schema}_route_sets"
        self.schema = schema
        self.poll_s = poll_s
        self.n_applied = 0
        self._dsn = dsn
        self._connect_timeout = max(1, round(connect_timeout_s))
        self._store: RouteStore | None = None
        self._conn: AsyncConnection[Any] | None = None
        self._conn_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._schema_ready = False
        self._psycopg: Any = None

    async def start(self, store: RouteStore) -> None:
        """Publish through this sync, load the latest sets, then listen and poll.

        A database that does not answer now is logged, not raised: the listener keeps
        reconnecting and catches up as soon as it answers.
        """
        self._psycopg = require("psycopg", extra="postgres")
        self._store = store
        store.publisher = self.publish
        try:
            await self.refresh()
        except StateError as exc:
            logger.warning("route sets: cannot load the shared route sets yet: %s", exc)
        self._tasks = [
            asyncio.ensure_future(self._listen()),
            asyncio.ensure_future(self._poll()),
        ]

    async def close(self) -> None:
        """Stop listening and polling, and close the connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._store is not None:
            self._store.publisher = None

    async def publish(
        self, tenant: str | None, document: Mapping[str, Any], expected: int | None
    ) -> int:
        """Store `document` as the tenant's next version and notify every server.

        Args:
            tenant: The tenant (None: the tenant-less set).
            document: The routes document (`RouteSet.to_json`).
            expected: The version being replaced (compare-and-set), or None to replace
                whatever is current.

        Returns:
            The new version.

        Raises:
            RouteSetConflictError: `expected` is not the current version.
            StateError: The database failed.
        """
        key, body = _key(tenant), json.dumps(document, separators=(",", ":"))
        t = self.table
        if expected is None:
            sql = (
                f"INSERT INTO {t} AS r (tenant, version, document) VALUES (%s, 2, %s::jsonb) "
                "ON CONFLICT (tenant) DO UPDATE SET version = r.version + 1, "
                "document = EXCLUDED.document, updated_at = now() RETURNING version"
            )
            params: tuple[Any, ...] = (key, body)
        elif expected <= 1:  # the set every server starts with: no row yet
            sql = (
                f"INSERT INTO {t} (tenant, version, document) VALUES (%s, 2, %s::jsonb) "
                "ON CONFLICT (tenant) DO NOTHING RETURNING version"
            )
            params = (key, body)
        else:
            sql = (
                f"UPDATE {t} SET version = version + 1, document = %s::jsonb, "
                "updated_at = now() WHERE tenant = %s AND version = %s RETURNING version"
            )
            params = (body, key, expected)
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(sql, params)).fetchone()
            if row is None:
                current = await (
                    await conn.execute(f"SELECT version FROM {t} WHERE tenant = %s", (key,))
                ).fetchone()
                raise RouteSetConflictError(
                    f"the route set changed concurrently: version {expected} was replaced by "
                    f"version {current[0] if current else 1}; read it again and retry"
                )
            version = int(row[0])
            payload = json.dumps({"tenant": key, "version": version})
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
        return version

    async def refresh(self) -> int:
        """Install every tenant's set that is newer than the local one; how many were."""
        async with self._connection() as conn:
            rows = await (
                await conn.execute(f"SELECT tenant, version FROM {self.table}")
            ).fetchall()
        applied = 0
        for key, version in rows:
            applied += await self._apply(str(key), int(version))
        return applied

    async def _apply(self, key: str, version: int) -> bool:
        """Build and install the tenant's stored set if it is newer than the live one."""
        store = self._store
        assert store is not None
        tenant = key or None
        if store.version_of(tenant) >= version:
            return False
        async with store.lock:  # one build at a time, local PUTs included
            if store.version_of(tenant) >= version:
                return False  # installed while this waited (e.g. this server's own PUT)
            async with self._connection() as conn:
                row = await (
                    await conn.execute(
                        f"SELECT version, document FROM {self.table} WHERE tenant = %s", (key,)
                    )
                ).fetchone()
            if row is None:
                return False
            stored, document = int(row[0]), row[1]
            body = (document if isinstance(document, str) else json.dumps(document)).encode()
            try:
                routes, config = parse_routes_document(body, json_format=True)
                router = await asyncio.to_thread(store.build, routes, config)
            except StrataRouterError as exc:  # validated before publishing: should not happen
                logger.error("route sets: version %d of %r does not build: %s", stored, key, exc)
                return False
            installed = store.install(tenant, router, stored)
        if installed:
            self.n_applied += 1
            logger.info("route set installed", extra={"tenant": tenant, "version": stored})
        return installed

    async def _listen(self) -> None:
        """Apply every notification; on a lost connection, reconnect and catch up."""
        psycopg = self._psycopg
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=self._connect_timeout
                )
                async with conn:
                    await conn.execute(f"LISTEN {self.channel}")
                    await self.refresh()  # what was published while nobody listened
                    async for note in conn.notifies():
                        data = json.loads(note.payload)
                        await self._apply(str(data["tenant"]), int(data["version"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a listener failure must never stop the server
                logger.warning("route sets: listener stopped (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.refresh()
            except StrataRouterError as exc:
                logger.warning("route sets: version poll failed: %s", exc)

    @contextlib.asynccontextmanager
    async def _connection(self) -> Any:
        """The one query connection (publish, refresh, reads), opened on demand."""
        psycopg = self._psycopg
        if psycopg is None:
            raise StateError("RouteSetSync used before start()")
        async with self._conn_lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._dsn, autocommit=True, connect_timeout=self._connect_timeout
                    )
                if not self._schema_ready:
                    await self._create_schema(self._conn)
                yield self._conn
            except psycopg.Error as exc:
                raise StateError(f"route sets in PostgreSQL: {exc}") from exc

    async def _create_schema(self, conn: AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"stratarouter:{self.schema}",)
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (tenant TEXT PRIMARY KEY, "
                "version BIGINT NOT NULL, document JSONB NOT NULL, "
                "updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
        self._schema_ready = True
