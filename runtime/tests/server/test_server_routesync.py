"""`RouteSetSync` in one process: two route stores (two "servers") over the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from server_helpers import make_router, make_routes
from stratarouter_core import RouterConfig

from stratarouter_runtime.server.routeset import RouteSetConflictError, RouteStore
from stratarouter_runtime.server.routesync import RouteSetSync

pytest.importorskip("psycopg", reason="needs stratarouter-runtime[postgres]")


async def _drop(dsn: str, schema: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
async def pair(postgres_dsn: str) -> AsyncIterator[tuple[RouteStore, RouteStore, str]]:
    schema = f"sr_sync_{uuid.uuid4().hex[:10]}"
    stores, syncs = [], []
    for _ in range(2):
        router = make_router()
        store = RouteStore(router, router.encoder)
        sync = RouteSetSync(postgres_dsn, schema=schema, poll_s=0.2)
        await sync.start(store)
        stores.append(store)
        syncs.append(sync)
    try:
        yield stores[0], stores[1], schema
    finally:
        for sync in syncs:
            await sync.close()
        await _drop(postgres_dsn, schema)


async def _until(condition: object, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_a_replacement_reaches_the_other_store_with_its_version(
    pair: tuple[RouteStore, RouteStore, str],
) -> None:
    a, b, _ = pair
    published = await a.replace("t1", make_routes("new_"), RouterConfig(threshold=0.0))
    assert published.version == 2 and a.get("t1").version == 2
    await _until(lambda: b.get("t1").version == 2)
    assert b.get("t1").router.route_names == published.router.route_names
    assert b.get("t1").router.route("refund my invoice").route_id == "new_billing"
    assert b.get("t2").version == 1 and b.get(None).version == 1  # other tenants untouched


async def test_concurrent_replacements_converge_on_one_version(
    pair: tuple[RouteStore, RouteStore, str],
) -> None:
    a, b, _ = pair
    config = RouterConfig(threshold=0.0)
    first, second = await asyncio.gather(
        a.replace(None, make_routes("a_"), config), b.replace(None, make_routes("b_"), config)
    )
    assert {first.version, second.version} == {2, 3}
    winner = first if first.version == 3 else second
    await _until(lambda: a.get(None).version == 3 and b.get(None).version == 3)
    for store in (a, b):
        assert store.get(None).router.route_names == winner.router.route_names


async def test_compare_and_set_refuses_a_stale_version(
    pair: tuple[RouteStore, RouteStore, str],
) -> None:
    a, b, _ = pair
    config = RouterConfig(threshold=0.0)
    await a.replace("t", make_routes("x_"), config, expected_version=1)
    await _until(lambda: b.get("t").version == 2)
    with pytest.raises(RouteSetConflictError, match="version 1 was replaced by version 2"):
        await a.replace("t", make_routes("y_"), config, expected_version=1)
    assert a.get("t").router.route_names[0] == "x_billing"  # nothing changed
    deleted = await b.delete("t", "x_weather")  # a delete is a compare-and-set too
    await _until(lambda: a.get("t").version == deleted.version == 3)
    assert "x_weather" not in a.get("t").router.route_names


async def test_a_store_started_later_loads_the_latest_sets(
    pair: tuple[RouteStore, RouteStore, str], postgres_dsn: str
) -> None:
    a, _, schema = pair
    await a.replace("late", make_routes("late_"), RouterConfig(threshold=0.0))
    router = make_router()
    store = RouteStore(router, router.encoder)
    sync = RouteSetSync(postgres_dsn, schema=schema, poll_s=10)
    await sync.start(store)
    try:  # loaded during start, before any notification or poll
        assert store.get("late").version == 2
        assert store.get("late").router.route_names[0] == "late_billing"
    finally:
        await sync.close()


async def test_the_version_poll_catches_a_missed_notification(
    pair: tuple[RouteStore, RouteStore, str], postgres_dsn: str
) -> None:
    import psycopg

    a, b, schema = pair
    document = {"config": {"threshold": 0.0}, "routes": [r.to_dict() for r in make_routes("p_")]}
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute(  # written behind the servers' back: no NOTIFY
            f"INSERT INTO {schema}.route_sets (tenant, version, document) VALUES (%s, 7, %s)",
            ("quiet", json.dumps(document)),
        )
    await _until(lambda: a.get("quiet").version == 7 and b.get("quiet").version == 7)
    assert b.get("quiet").router.route_names[0] == "p_billing"
