"""One contract suite for every state backend: memory, SQLite (a file in tmp_path), PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
import uuid

import pytest
from stratarouter_core.errors import ConfigError, MissingDependencyError

from stratarouter_runtime.config import RuntimeConfig, StateConfig
from stratarouter_runtime.state import (
    ExecutionRecord,
    GradeConflictError,
    GradeNotifier,
    GradeRecord,
    MemoryStateStore,
    PostgresStateStore,
    SQLiteStateStore,
    StateError,
    StateStore,
    StreamCheckpointer,
    open_state_store,
    recover_executions,
)


def _drop_schema(dsn: str, schema: str) -> None:
    psycopg = pytest.importorskip("psycopg", reason="PostgreSQL state needs the [postgres] extra (make test installs it)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def pg_schema(postgres_dsn):
    schema = f"sr_state_{uuid.uuid4().hex[:12]}"
    yield schema
    _drop_schema(postgres_dsn, schema)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def make_store(request, tmp_path):
    """A factory of (not yet started) stores that share one database per test."""
    if request.param == "memory":
        shared = MemoryStateStore()
        return lambda: shared
    if request.param == "sqlite":
        return lambda: SQLiteStateStore(tmp_path / "state.db")
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    return lambda: PostgresStateStore(dsn, schema=schema)


@pytest.fixture
async def store(make_store):
    opened = make_store()
    await opened.start()
    yield opened
    await opened.close()


def _record(query: str = "refund my invoice", **kwargs) -> ExecutionRecord:
    return ExecutionRecord.new(
        query=query,
        target_key="openai:gpt-4o-mini",
        target={
            "kind": "provider",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "params": {"temperature": 0.2},
        },
        route_id="billing",
        confidence=0.91,
        context={"user_id": "u1", "nested": {"k": [1, 2]}},
        **kwargs,
    )


async def test_store_satisfies_the_protocol(store):
    assert isinstance(store, StateStore)


async def test_create_and_get_round_trip(store):
    record = _record('préférence ✓ "quoted"')
    await store.create(record)
    loaded = await store.get(record.id)
    assert loaded is not None
    assert loaded.to_dict() == record.to_dict()
    assert loaded.context["nested"] == {"k": [1, 2]}
    assert loaded.status == "pending" and not loaded.is_finished and not loaded.has_result
    assert await store.get("missing") is None


async def test_duplicate_create_is_a_state_error(store):
    record = _record()
    await store.create(record)
    with pytest.raises(StateError):
        await store.create(record)


async def test_full_lifecycle_keeps_attempts_progress_and_result(store):
    record = _record()
    await store.create(record)
    lease = time.time() + 30
    await store.mark_running(record.id, "worker-a", lease)
    await store.record_attempt(record.id, {"n": 1, "error": "ProviderServerError", "status": 500})
    await store.record_attempt(record.id, {"n": 2, "error": None})
    await store.checkpoint(record.id, {"chunks": 10, "text": "partial"})
    await store.save_result(record.id, {"text": "Your refund is on its way.", "cost_usd": 0.0001})

    mid = await store.get(record.id)
    assert mid.status == "running" and mid.worker_id == "worker-a"
    assert mid.lease_expires_at == pytest.approx(lease)
    assert mid.has_result and not mid.is_finished
    assert [a["n"] for a in mid.attempts] == [1, 2]
    assert mid.progress == {"chunks": 10, "text": "partial"}
    assert [r.id for r in await store.list_unfinished()] == [record.id]

    assert await store.mark_succeeded(record.id) is True
    done = await store.get(record.id)
    assert done.status == "succeeded" and done.is_finished
    assert done.result["text"] == "Your refund is on its way."
    assert done.lease_expires_at is None
    assert done.updated_at >= done.created_at
    assert await store.list_unfinished() == []


async def test_save_result_appends_attempts_in_the_same_write(store):
    record = _record()
    await store.create(record)
    await store.record_attempt(record.id, {"n": 1, "outcome": "ProviderServerError"})
    await store.save_result(
        record.id,
        {"text": "ok"},
        attempts=[{"n": 2, "outcome": "ok"}, {"n": 3, "outcome": "extra"}],
    )
    loaded = await store.get(record.id)
    assert loaded.result == {"text": "ok"} and loaded.status == "pending"
    assert [a["n"] for a in loaded.attempts] == [1, 2, 3]
    with pytest.raises(StateError):
        await store.save_result("missing", {"text": "x"}, attempts=[{"n": 1}])


async def test_records_can_start_running_or_already_succeeded(store):
    running = _record("a", status="running", worker_id="w", lease_expires_at=time.time() + 9)
    served = _record("b", status="succeeded", result={"text": "from the cache"})
    await store.create(running)
    await store.create(served)
    assert (await store.get(running.id)).status == "running"
    loaded = await store.get(served.id)
    assert loaded.status == "succeeded" and loaded.result == {"text": "from the cache"}
    assert [r.id for r in await store.list_unfinished()] == [running.id]


async def test_terminal_transitions_happen_once(store):
    first, second = _record("a"), _record("b")
    await store.create(first)
    await store.create(second)
    assert await store.mark_succeeded(first.id, {"text": "ok"}) is True
    assert await store.mark_failed(first.id, "late failure") is False
    assert await store.mark_succeeded(first.id, {"text": "other"}) is False
    kept = await store.get(first.id)
    assert kept.status == "succeeded" and kept.result == {"text": "ok"} and kept.error is None

    assert await store.mark_failed(second.id, "boom") is True
    assert await store.mark_succeeded(second.id, {"text": "late"}) is False
    failed = await store.get(second.id)
    assert failed.status == "failed" and failed.error == "boom" and failed.result is None


async def test_updating_an_unknown_execution_is_a_state_error(store):
    for call in (
        store.mark_running("nope", "w", 1.0),
        store.record_attempt("nope", {"n": 1}),
        store.checkpoint("nope", {"chunks": 1}),
        store.save_result("nope", {"text": "x"}),
        store.mark_succeeded("nope"),
        store.mark_failed("nope", "x"),
    ):
        with pytest.raises(StateError, match="nope"):
            await call


async def test_concurrent_attempts_are_all_kept(store):
    record = _record()
    await store.create(record)
    await asyncio.gather(*(store.record_attempt(record.id, {"n": i}) for i in range(40)))
    loaded = await store.get(record.id)
    assert sorted(a["n"] for a in loaded.attempts) == list(range(40))


async def test_list_unfinished_is_oldest_first_and_limited(store):
    records = [_record(f"q{i}", now=1000.0 + i) for i in range(5)]
    for record in reversed(records):
        await store.create(record)
    await store.mark_failed(records[1].id, "x")
    unfinished = await store.list_unfinished()
    assert [r.query for r in unfinished] == ["q0", "q2", "q3", "q4"]
    assert [r.query for r in await store.list_unfinished(limit=2)] == ["q0", "q2"]


async def test_claim_respects_leases_and_owners(store):
    now = time.time()
    live = _record("live", worker_id="worker-a", lease_expires_at=now + 60)
    expired = _record("expired", worker_id="worker-a", lease_expires_at=now - 1)
    unowned = _record("unowned")
    done = _record("done")
    for record in (live, expired, unowned, done):
        await store.create(record)
    await store.mark_succeeded(done.id, {"text": "x"})

    assert await store.claim(live.id, "worker-b", now, now + 30) is None
    assert await store.claim(done.id, "worker-b", now, now + 30) is None
    assert await store.claim("missing", "worker-b", now, now + 30) is None
    taken = await store.claim(expired.id, "worker-b", now, now + 30)
    assert taken is not None and taken.worker_id == "worker-b"
    assert taken.lease_expires_at == pytest.approx(now + 30)
    assert (await store.claim(unowned.id, "worker-b", now, now + 30)) is not None
    # the same (stable) worker id takes its own executions back at once, lease or not
    mine = await store.claim(live.id, "worker-a", now, now + 30)
    assert mine is not None and mine.query == "live"


async def test_only_one_of_many_concurrent_claimers_wins(store):
    record = _record(worker_id="dead", lease_expires_at=time.time() - 5)
    await store.create(record)
    now = time.time()
    results = await asyncio.gather(
        *(store.claim(record.id, f"worker-{i}", now, now + 30) for i in range(8))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (await store.get(record.id)).worker_id == winners[0].worker_id


async def test_renew_leases_extends_only_the_workers_unfinished_records(store):
    mine, other, finished = _record("a"), _record("b"), _record("c")
    for record in (mine, other, finished):
        await store.create(record)
    await store.mark_running(mine.id, "me", 1.0)
    await store.mark_running(other.id, "you", 1.0)
    await store.mark_running(finished.id, "me", 1.0)
    await store.mark_succeeded(finished.id, {"text": "x"})
    assert await store.renew_leases("me", 500.0) == 1
    assert (await store.get(mine.id)).lease_expires_at == 500.0
    assert (await store.get(other.id)).lease_expires_at == 1.0


async def test_prune_deletes_only_old_finished_records(store):
    old, fresh, running = _record("old"), _record("fresh"), _record("running")
    for record in (old, fresh, running):
        await store.create(record)
    await store.mark_failed(old.id, "x")
    cutoff = time.time() + 0.001
    await asyncio.sleep(0.01)
    await store.mark_succeeded(fresh.id, {"text": "y"})
    assert await store.prune(cutoff) == 1
    assert await store.get(old.id) is None
    assert await store.get(fresh.id) is not None and await store.get(running.id) is not None


async def test_stream_checkpointer_persists_every_interval(store):
    record = _record()
    await store.create(record)
    checkpointer = StreamCheckpointer(store, record.id, interval=3)
    for chunk in "abcdefg":
        await checkpointer.add(chunk)
    assert checkpointer.n_checkpoints == 2 and checkpointer.text == "abcdefg"
    progress = (await store.get(record.id)).progress
    assert progress["chunks"] == 6 and progress["text"] == "abcdef"


async def test_records_survive_reopening_and_start_is_idempotent(make_store):
    first = make_store()
    await first.start()
    await first.start()
    record = _record()
    await first.create(record)
    await first.save_result(record.id, {"text": "persisted"})
    await first.close()

    second = make_store()
    await second.start()
    try:
        loaded = await second.get(record.id)
        assert loaded is not None and loaded.result == {"text": "persisted"}
        assert [r.id for r in await second.list_unfinished()] == [record.id]
    finally:
        await second.close()


async def test_recovery_finishes_resumes_fails_and_skips(store):
    now = time.time()
    with_result = _record("with result", worker_id="dead", lease_expires_at=now - 1)
    to_resume = _record("to resume", worker_id="dead", lease_expires_at=now - 1)
    broken = _record("broken", worker_id="dead", lease_expires_at=now - 1)
    alive = _record("alive", worker_id="alive", lease_expires_at=now + 60)
    for record in (with_result, to_resume, broken, alive):
        await store.create(record)
    await store.save_result(with_result.id, {"text": "already paid for"})

    resumed, finished = [], []

    async def resume(record):
        if record.query == "broken":
            raise RuntimeError("provider gone")
        resumed.append(record.id)
        await store.mark_succeeded(record.id, {"text": "again"})

    async def on_finished(record):
        finished.append(record.result["text"])

    report = await recover_executions(
        store,
        worker_id="new",
        policy="resume",
        lease_timeout_s=30,
        resume=resume,
        on_finished=on_finished,
    )
    assert report.finished == (with_result.id,)
    assert report.resumed == (to_resume.id,) and resumed == [to_resume.id]
    assert report.failed == (broken.id,)
    assert report.skipped == (alive.id,)
    assert report.total == 3 and finished == ["already paid for"]
    assert (await store.get(with_result.id)).status == "succeeded"
    assert "provider gone" in (await store.get(broken.id)).error
    assert [r.id for r in await store.list_unfinished()] == [alive.id]


async def test_recovery_fail_policy_never_resumes(store):
    record = _record(worker_id="dead", lease_expires_at=time.time() - 1)
    await store.create(record)

    async def resume(record):  # pragma: no cover - must not run
        raise AssertionError("resumed under the 'fail' policy")

    report = await recover_executions(
        store, worker_id="new", policy="fail", lease_timeout_s=30, resume=resume
    )
    assert report.failed == (record.id,)
    failed = await store.get(record.id)
    assert failed.status == "failed" and "recovery_policy='fail'" in failed.error


# --- the model router's grade log -------------------------------------------------------------


def _grade(query: str, router: str = "r1", **kwargs) -> GradeRecord:
    return GradeRecord(router=router, query=query, scores={"gpt-4o-mini": 0.25}, **kwargs)


async def test_grades_are_read_back_in_log_order_per_router(store):
    first = await store.append_grades([_grade("a"), _grade("b", router="r2"), _grade("c")])
    second = await store.append_grades(
        [_grade("d", execution_id="e1", tenant="acme", created_at=12.5, embedding=b"\x00\x01")]
    )
    seqs = [g.seq for g in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4 and seqs[0] > 0
    read = await store.grades_after("r1", 0)
    assert [g.query for g in read] == ["a", "c", "d"]
    assert read[-1] == second[0]  # every field round-trips
    assert dict(read[-1].scores) == {"gpt-4o-mini": 0.25}
    assert (read[-1].execution_id, read[-1].tenant, read[-1].created_at) == ("e1", "acme", 12.5)
    assert read[-1].embedding == b"\x00\x01" and read[0].embedding is None
    assert [g.query for g in await store.grades_after("r1", first[0].seq)] == ["c", "d"]
    assert [g.query for g in await store.grades_after("r1", 0, limit=1)] == ["a"]
    assert [g.query for g in await store.grades_after("r2", 0)] == ["b"]
    assert await store.grades_after("r1", second[0].seq) == []
    assert await store.append_grades([]) == []


async def test_an_execution_is_graded_once_and_a_refused_batch_appends_nothing(store):
    await store.append_grades([_grade("a", execution_id="e1")])
    with pytest.raises(GradeConflictError, match="'e1' was graded already"):
        await store.append_grades([_grade("b"), _grade("c", execution_id="e1")])
    with pytest.raises(GradeConflictError, match="'e2' was graded already"):
        await store.append_grades([_grade("d", execution_id="e2"), _grade("e", execution_id="e2")])
    assert [g.query for g in await store.grades_after("r1", 0)] == ["a"]
    await store.append_grades([_grade("f", execution_id="e2")])  # the store still works
    assert [g.query for g in await store.grades_after("r1", 0)] == ["a", "f"]


async def test_the_grade_log_survives_reopening(make_store):
    store = make_store()
    await store.start()
    await store.append_grades([_grade("a"), _grade("b")])
    await store.close()
    reopened = make_store()
    await reopened.start()
    try:
        assert [g.query for g in await reopened.grades_after("r1", 0)] == ["a", "b"]
    finally:
        await reopened.close()


async def test_a_reader_following_the_log_misses_no_grade_of_concurrent_writers(make_store):
    writers = [make_store() for _ in range(3)]
    reader = make_store()
    for s in {id(s): s for s in [*writers, reader]}.values():
        await s.start()
    seen: list[int] = []
    done = asyncio.Event()

    async def write(s, w):
        for i in range(15):
            await s.append_grades([_grade(f"w{w}-{i}-{k}") for k in range(2)])
        return w

    async def follow():
        position = 0
        while True:
            finished = done.is_set()
            for g in await reader.grades_after("r1", position):
                seen.append(g.seq)
                position = g.seq
            if finished:
                return
            await asyncio.sleep(0)

    follower = asyncio.ensure_future(follow())
    await asyncio.gather(*(write(s, w) for w, s in enumerate(writers)))
    done.set()
    await follower
    logged = [g.seq for g in await reader.grades_after("r1", 0, limit=1000)]
    try:
        assert len(logged) == 90 and seen == logged  # every grade once, in log order
    finally:
        for s in {id(s): s for s in [*writers, reader]}.values():
            await s.close()


async def test_only_postgresql_notifies_grades_and_it_does_on_another_stores_commit(
    postgres_dsn, pg_schema, tmp_path
):
    assert not isinstance(MemoryStateStore(), GradeNotifier)
    assert not isinstance(SQLiteStateStore(tmp_path / "s.db"), GradeNotifier)
    listening, writing = (PostgresStateStore(postgres_dsn, schema=pg_schema) for _ in range(2))
    assert isinstance(listening, GradeNotifier)
    await listening.start()
    await writing.start()
    notes = listening.grade_notifications()
    try:
        await asyncio.wait_for(anext(notes), 5)  # connected: catch up
        waiting = asyncio.ensure_future(anext(notes))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # nothing committed yet
        await writing.append_grades([_grade("a")])
        await asyncio.wait_for(waiting, 5)
    finally:
        await notes.aclose()
        await listening.close()
        await writing.close()


async def test_an_older_sqlite_database_gets_the_grade_log(tmp_path):
    path = tmp_path / "state.db"
    store = SQLiteStateStore(path)
    await store.start()
    await store.close()
    with sqlite3.connect(path) as conn:  # as the version before the grade log left it
        conn.execute("DROP TABLE model_grades")
        conn.execute("UPDATE schema_version SET version = 1")
    store = SQLiteStateStore(path)
    await store.start()
    try:
        await store.append_grades([_grade("a")])
        assert [g.query for g in await store.grades_after("r1", 0)] == ["a"]
    finally:
        await store.close()


# --- backend specifics ------------------------------------------------------------------------


async def test_sqlite_uses_wal_and_records_the_schema_version(tmp_path):
    store = SQLiteStateStore(tmp_path / "deep" / "dir" / "state.db")
    await store.start()
    await store.close()
    with sqlite3.connect(tmp_path / "deep" / "dir" / "state.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


async def test_sqlite_store_must_be_started(tmp_path):
    store = SQLiteStateStore(tmp_path / "state.db")
    with pytest.raises(StateError, match="before start"):
        await store.get("x")


def test_invalid_identifiers_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        SQLiteStateStore(tmp_path / "x.db", table="executions; DROP TABLE x")
    with pytest.raises(ConfigError):
        PostgresStateStore("postgresql://x", schema="1bad")
    with pytest.raises(ConfigError):
        SQLiteStateStore(tmp_path / "x.db", synchronous="OFF")


async def test_postgres_migrations_are_recorded_and_concurrent_starts_are_safe(
    postgres_dsn, pg_schema
):
    stores = [PostgresStateStore(postgres_dsn, schema=pg_schema) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        psycopg = pytest.importorskip("psycopg", reason="PostgreSQL state needs the [postgres] extra (make test installs it)")
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
            sql = f"SELECT component, version FROM {pg_schema}.schema_version"
            cursor = await conn.execute(sql)
            assert await cursor.fetchall() == [("executions", 2)]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_postgres_store_reports_an_unreachable_server():
    store = PostgresStateStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=1)
    with pytest.raises(StateError, match="cannot connect"):
        await store.start()


async def test_postgres_without_psycopg_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    store = PostgresStateStore("postgresql://postgres@127.0.0.1:5432/test")
    with pytest.raises(MissingDependencyError, match=r"stratarouter-runtime\[postgres\]"):
        await store.start()


def test_open_state_store_follows_the_config(tmp_path):
    assert isinstance(open_state_store(RuntimeConfig()), MemoryStateStore)
    sqlite = StateConfig(backend="sqlite", sqlite_path=str(tmp_path / "s.db"))
    sqlite_store = open_state_store(RuntimeConfig(state=sqlite))
    assert isinstance(sqlite_store, SQLiteStateStore) and sqlite_store.path == tmp_path / "s.db"
    postgres = StateConfig(backend="postgresql", database_url="postgresql://h/d", schema="tenant_a")
    pg = open_state_store(RuntimeConfig(state=postgres))
    assert isinstance(pg, PostgresStateStore) and pg.schema == "tenant_a"
