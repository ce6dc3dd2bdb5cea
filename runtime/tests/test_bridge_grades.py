"""Grades of served answers: logged in the state store, learned by every bridge's ModelRouter."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from stratarouter_core import ModelRouter, ModelSpec, Route, Router, RouterConfig
from stratarouter_core.errors import ConfigError, EncoderError
from stratarouter_core.model_routing import InvalidScoresError, UnknownModelError
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime.bridge import CoreRuntimeBridge
from stratarouter_runtime.config import RetryConfig, RuntimeConfig, StateConfig
from stratarouter_runtime.state import (
    ExecutionNotFoundError,
    GradeConflictError,
    GradeRecord,
    MemoryStateStore,
)
from stratarouter_runtime.testing import FakeProviderServer

pytest.importorskip(
    "openai", reason="the OpenAI client needs the [openai] extra (make test installs it)"
)

from stratarouter_runtime.providers import OpenAIClient

HARD = [f"prove theorem {i} about primes" for i in range(40)]
EASY = [f"say hello to friend {i}" for i in range(40)]
POOL = {"provider": "openai", "models": ["gpt-4o", "gpt-4o-mini"], "min_quality": 0.8}
QUERY = "say hello to friend 99"  # gpt-4o-mini until its answer is graded wrong


def _model_router(easy_grade: float = 1.0) -> ModelRouter:
    mr = ModelRouter(
        [ModelSpec("gpt-4o", 2.5, 10.0), ModelSpec("gpt-4o-mini", 0.15, 0.6)],
        encoder=HashingEncoder(dimension=64),
    )
    scores = [{"gpt-4o": 1.0, "gpt-4o-mini": 0.0}] * 40
    scores += [{"gpt-4o": 1.0, "gpt-4o-mini": easy_grade}] * 40
    mr.fit(HARD + EASY, scores)
    return mr


def _load(path: Path) -> ModelRouter:
    return ModelRouter.load(path, HashingEncoder(dimension=64))


@pytest.fixture(scope="module")
def saved_model_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model-router")
    _model_router().save(path)
    return path


@pytest.fixture(scope="module")
def router() -> Router:
    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.0))
    router.add_routes(
        [
            Route(name="assistant", examples=["prove a theorem", "say hello"], metadata=POOL),
            Route(name="tools", examples=["run the tool"]),
        ]
    )
    router.build_index()
    return router


@pytest.fixture
async def openai_client():
    with FakeProviderServer() as server:
        client = OpenAIClient(api_key="test", base_url=server.openai_base_url)
        yield server, client
        await client.aclose()


def _config(tmp_path: Path, **state) -> RuntimeConfig:
    db = str(tmp_path / "state.db")
    return RuntimeConfig(
        retries=RetryConfig(delay_ms=1.0),
        state=StateConfig(backend="sqlite", sqlite_path=db, **state),
    )


def _bridge(config, router, client, model_router, **kwargs) -> CoreRuntimeBridge:
    return CoreRuntimeBridge(
        config, router, {"openai": client}, model_router=model_router, **kwargs
    )


async def test_a_graded_answer_moves_the_next_choice_and_a_restart_keeps_it(
    tmp_path, router, openai_client, saved_model_router
):
    server, client = openai_client
    config = _config(tmp_path, grade_poll_s=0)
    decision = router.route(QUERY)
    async with _bridge(config, router, client, _load(saved_model_router)) as bridge:
        first = await bridge.execute(decision, QUERY)
        grade = await bridge.grade_execution(first.execution_id, 0.0)
        second = await bridge.execute(decision, QUERY)
    assert (first.model, second.model) == ("gpt-4o-mini", "gpt-4o")
    assert dict(grade.scores) == {"gpt-4o-mini": 0.0} and grade.seq == 1
    assert grade.query == QUERY and grade.execution_id == first.execution_id
    # a new process loads the same saved router: it learns the logged grade before serving
    restarted = _load(saved_model_router)
    assert restarted.route(QUERY, min_quality=0.8).model == "gpt-4o-mini"
    async with _bridge(config, router, client, restarted) as bridge:
        assert bridge.grades is not None and bridge.grades.n_learned == 1
        third = await bridge.execute(decision, QUERY)
    assert third.model == "gpt-4o"
    assert [r.body["model"] for r in server.requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o"]


async def test_grades_given_through_one_bridge_reach_the_others(tmp_path, saved_model_router):
    config = _config(tmp_path, grade_poll_s=0.05)
    one, other = _load(saved_model_router), _load(saved_model_router)
    async with (
        CoreRuntimeBridge(config, model_router=one) as a,
        CoreRuntimeBridge(config, model_router=other) as b,
    ):
        logged = await a.add_grades([QUERY, "ignored"], [{"gpt-4o-mini": 0.0}, {}])
        assert [g.query for g in logged] == [QUERY]  # a query with no score is left out
        assert one.route(QUERY, min_quality=0.8).model == "gpt-4o"
        for _ in range(100):
            if b.grades is not None and b.grades.n_learned:
                break
            await asyncio.sleep(0.02)
        assert other.route(QUERY, min_quality=0.8).model == "gpt-4o"
        assert b.grades is not None and b.grades.position == logged[0].seq


class _NoEncoding(HashingEncoder):
    """The same space, but a process that must not encode (an encoder that is down)."""

    def encode(self, texts):  # type: ignore[no-untyped-def]
        raise EncoderError("down")


async def test_a_logged_grade_is_learned_from_its_vector_without_encoding_again(
    tmp_path, saved_model_router
):
    config = _config(tmp_path, grade_poll_s=0)
    async with CoreRuntimeBridge(config, model_router=_load(saved_model_router)) as a:
        (logged,) = await a.add_grades([QUERY], [{"gpt-4o-mini": 0.0}])
    assert logged.embedding is not None and len(logged.embedding) == 4 * 64
    other = ModelRouter.load(saved_model_router, _NoEncoding(dimension=64))
    async with CoreRuntimeBridge(config, model_router=other) as b:
        assert b.grades is not None and b.grades.n_learned == 1
    assert other.route(QUERY, HashingEncoder(dimension=64).encode([QUERY])[0],
                       min_quality=0.8).model == "gpt-4o"  # fmt: skip


async def test_a_grade_logged_without_a_vector_is_encoded(tmp_path, saved_model_router):
    state = MemoryStateStore()
    model_router = _load(saved_model_router)
    key = model_router.fit_id
    await state.append_grades([GradeRecord(router=key, query=QUERY, scores={"gpt-4o-mini": 0.0})])
    async with CoreRuntimeBridge(_config(tmp_path), model_router=model_router, state=state):
        assert model_router.route(QUERY, min_quality=0.8).model == "gpt-4o"


async def test_grades_added_offline_to_the_saved_router_keep_the_served_ones(
    tmp_path, saved_model_router
):
    config = _config(tmp_path, grade_poll_s=0)
    served = tmp_path / "served"
    _load(saved_model_router).save(served)
    async with CoreRuntimeBridge(config, model_router=_load(served)) as a:
        await a.add_grades([QUERY], [{"gpt-4o-mini": 0.0}])
    offline = _load(served)  # what `stratarouter model-router add` does
    offline.add_graded(["say hello to friend 98"], [{"gpt-4o-mini": 0.0}])
    offline.save(served)
    reloaded = _load(served)
    assert reloaded.fit_id == offline.fit_id
    async with CoreRuntimeBridge(config, model_router=reloaded) as b:
        assert b.grades is not None and b.grades.n_learned == 1
    for query in (QUERY, "say hello to friend 98"):  # the served grade and the offline one
        assert reloaded.route(query, min_quality=0.8).model == "gpt-4o"


async def test_a_router_fitted_anew_starts_a_log_of_its_own(tmp_path, saved_model_router):
    config = _config(tmp_path, grade_poll_s=0)
    async with CoreRuntimeBridge(config, model_router=_load(saved_model_router)) as a:
        await a.add_grades([QUERY], [{"gpt-4o-mini": 0.0}])
    refitted = _model_router()  # the same data, fitted anew: a new fit id
    async with CoreRuntimeBridge(config, model_router=refitted) as b:
        assert b.grades is not None and b.grades.n_learned == 0
    assert refitted.route(QUERY, min_quality=0.8).model == "gpt-4o-mini"


async def test_bad_grades_are_typed_errors_and_log_nothing(
    tmp_path, router, openai_client, saved_model_router
):
    _, client = openai_client
    config = _config(tmp_path, grade_poll_s=0)
    state = MemoryStateStore()
    model_router = _load(saved_model_router)
    async with _bridge(
        config,
        router,
        client,
        model_router,
        state=state,
        handlers={"tools": lambda q, ctx: "done"},
    ) as bridge:
        answer = await bridge.execute(router.route(QUERY), QUERY)
        tool = await bridge.execute(router.route("run the tool"), "run the tool")
        mine = await bridge.execute(router.route(QUERY), QUERY, {"tenant_id": "acme"})
        with pytest.raises(InvalidScoresError, match="outside"):
            await bridge.grade_execution(answer.execution_id, 1.5)
        with pytest.raises(InvalidScoresError, match="not a number"):
            await bridge.grade_execution(answer.execution_id, True)  # type: ignore[arg-type]
        with pytest.raises(UnknownModelError, match="'o3'"):
            await bridge.add_grades([QUERY], [{"o3": 1.0}])
        with pytest.raises(ExecutionNotFoundError):
            await bridge.grade_execution("nope", 1.0)
        with pytest.raises(ExecutionNotFoundError):  # another tenant's execution
            await bridge.grade_execution(mine.execution_id, 1.0)
        with pytest.raises(GradeConflictError, match="no model answer"):
            await bridge.grade_execution(tool.execution_id, 1.0)
        assert await state.grades_after(bridge.grades.router_key, 0) == []
        await bridge.grade_execution(answer.execution_id, 1.0)
        await bridge.grade_execution(mine.execution_id, 0.5, tenant="acme")
        with pytest.raises(GradeConflictError, match="graded already"):
            await bridge.grade_execution(answer.execution_id, 0.0)
        logged = await state.grades_after(bridge.grades.router_key, 0)
    assert [(dict(g.scores), g.tenant) for g in logged] == [
        ({"gpt-4o-mini": 1.0}, None),
        ({"gpt-4o-mini": 0.5}, "acme"),
    ]


async def test_a_bridge_without_a_model_router_says_how_to_give_one(tmp_path):
    async with CoreRuntimeBridge(_config(tmp_path)) as bridge:
        with pytest.raises(ConfigError, match="model_router="):
            await bridge.add_grades([QUERY], [{"gpt-4o-mini": 1.0}])


def test_the_grade_goes_to_the_model_that_answered() -> None:
    from stratarouter_runtime.bridge.grades import answering_model
    from stratarouter_runtime.state import ExecutionRecord

    planned = {"kind": "provider", "provider": "openai", "model": "gpt-4o-mini"}

    def record(**kwargs) -> ExecutionRecord:
        return ExecutionRecord.new(
            query="q", target_key="openai:gpt-4o-mini", target=planned, **kwargs
        )

    by_fallback = record(status="succeeded", result={"target_key": "openai:gpt-4o"})
    assert answering_model(by_fallback) == "gpt-4o"
    assert answering_model(record(status="succeeded", result={"response": "hi"})) == "gpt-4o-mini"
    assert answering_model(record()) is None  # no answer yet
    handler = ExecutionRecord.new(
        query="q",
        target_key="handler:tools",
        target={"kind": "handler", "route": "tools"},
        status="succeeded",
        result={"response": "done"},
    )
    assert answering_model(handler) is None


async def test_over_postgresql_a_grade_is_learned_elsewhere_on_its_notification(
    postgres_dsn, saved_model_router
):
    psycopg = pytest.importorskip("psycopg", reason="needs stratarouter-runtime[postgres]")
    schema = f"sr_grades_{uuid.uuid4().hex[:10]}"
    config = RuntimeConfig(  # no polling: only the notification can bring the grade
        state=StateConfig(
            backend="postgresql", database_url=postgres_dsn, schema=schema, grade_poll_s=0
        )
    )
    one, other = _load(saved_model_router), _load(saved_model_router)
    try:
        async with (
            CoreRuntimeBridge(config, model_router=one) as a,
            CoreRuntimeBridge(config, model_router=other) as b,
        ):
            await asyncio.sleep(0.2)  # b's listener is connected
            started = time.monotonic()
            await a.add_grades([QUERY], [{"gpt-4o-mini": 0.0}])
            while b.grades is not None and not b.grades.n_learned:
                assert time.monotonic() - started < 5.0, "the notification never came"
                await asyncio.sleep(0.01)
        assert other.route(QUERY, min_quality=0.8).model == "gpt-4o"
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
