"""Grading answers through the REST API: ``POST /v1/executions/{id}/grade`` and
``POST /v1/model-router/grades`` teach the server's ModelRouter (a live uvicorn on loopback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import live_server
from stratarouter_core import ModelRouter, ModelSpec, Route, Router, RouterConfig
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime import ObservabilityConfig, RetryConfig, RuntimeConfig, StateConfig
from stratarouter_runtime.server import ServerConfig, create_app
from stratarouter_runtime.testing import FakeProviderServer

HELLO = [f"say hello to friend {i}" for i in range(40)]
THEOREMS = [f"prove theorem {i} about primes" for i in range(40)]
POOL = {"provider": "local", "models": ["big-model", "small-model"], "min_quality": 0.8}


def _router() -> Router:
    router = Router(encoder=HashingEncoder(64), config=RouterConfig(threshold=0.0))
    router.add_routes(
        [
            Route(name="assistant", examples=["prove a theorem", "say hello"], metadata=POOL),
            Route(
                name="tools",
                examples=["run the tool"],
                metadata={"provider": "local", "model": "unpriced"},
            ),
        ]
    )
    router.build_index()
    return router


@pytest.fixture(scope="module")
def model_router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mr = ModelRouter(
        [ModelSpec("big-model", 2.5, 10.0), ModelSpec("small-model", 0.15, 0.6)],
        encoder=HashingEncoder(64),
    )
    scores = [{"big-model": 1.0, "small-model": 1.0}] * 40
    scores += [{"big-model": 1.0, "small-model": 0.0}] * 40
    mr.fit(HELLO + THEOREMS, scores)
    path = tmp_path_factory.mktemp("model-router")
    mr.save(path)
    return path


def _serve(
    fake: FakeProviderServer, tmp_path: Path, model_router_dir: Path | None, **server: object
) -> Iterator[str]:
    config = ServerConfig(
        provider_url=fake.openai_base_url,
        default_provider="local",
        model_router_dir=None if model_router_dir is None else str(model_router_dir),
        api_keys=("shared-key-001", "acme-key-0001:acme"),
        max_batch=4,
        **server,  # type: ignore[arg-type]
    )
    runtime = RuntimeConfig(
        retries=RetryConfig(max_retries=0, delay_ms=1),
        state=StateConfig(backend="sqlite", sqlite_path=str(tmp_path / "state.db")),
        observability=ObservabilityConfig(metrics=True),  # as `stratarouter serve` has it
    )
    app = create_app(_router(), config=config, runtime_config=runtime)
    with live_server(app) as base:
        yield base if config.grpc_port is None else f"127.0.0.1:{app.state.grpc_port}"


@pytest.fixture
def server(
    fake_provider: FakeProviderServer, tmp_path: Path, model_router_dir: Path
) -> Iterator[httpx.Client]:
    for base in _serve(fake_provider, tmp_path, model_router_dir):
        with httpx.Client(
            base_url=base, headers={"Authorization": "Bearer shared-key-001"}, timeout=30
        ) as client:
            yield client


def _execute(client: httpx.Client, query: str, **headers: str) -> dict[str, object]:
    reply = client.post("/v1/execute", json={"query": query}, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_a_graded_execution_moves_the_next_choice(server: httpx.Client) -> None:
    query = "say hello to friend 99"
    first = _execute(server, query)
    assert first["model"] == "small-model"
    graded = server.post(f"/v1/executions/{first['execution_id']}/grade", json={"score": 0})
    assert graded.status_code == 200, graded.text
    assert graded.json() == {
        "execution": first["execution_id"],
        "model": "small-model",
        "score": 0.0,
        "seq": 1,
    }
    assert _execute(server, query)["model"] == "big-model"
    metrics = server.get("/metrics").text
    assert 'stratarouter_model_grades_total{model="small-model"} 1.0' in metrics
    assert 'stratarouter_model_grade_score_total{model="small-model"} 0.0' in metrics
    again = server.post(f"/v1/executions/{first['execution_id']}/grade", json={"score": 1})
    assert again.status_code == 409 and "graded already" in again.text


def test_grades_from_elsewhere_reach_chat_completions_on_model_auto(
    server: httpx.Client, fake_provider: FakeProviderServer
) -> None:
    query = "say hello to friend 77"
    body = {"grades": [{"query": query, "scores": {"small-model": 0.0, "big-model": None}}]}
    added = server.post("/v1/model-router/grades", json=body)
    assert added.status_code == 200, added.text
    assert added.json() == {"added": 1, "seqs": [1]}
    chat = {"model": "auto", "messages": [{"role": "user", "content": query}]}
    reply = server.post("/v1/chat/completions", json=chat)
    assert reply.status_code == 200, reply.text
    assert fake_provider.requests[-1].body["model"] == "big-model"


def test_a_streamed_chat_completion_names_its_execution_to_grade(server: httpx.Client) -> None:
    query = "say hello to friend 55"
    chat = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": query}]}
    with server.stream("POST", "/v1/chat/completions", json=chat) as reply:
        events = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
        f"echo: {query}"
    )
    extra = chunks[-1]["stratarouter"]  # on the last chunk only
    assert extra["route"] == "assistant" and all("stratarouter" not in c for c in chunks[:-1])
    graded = server.post(f"/v1/executions/{extra['execution_id']}/grade", json={"score": 1})
    assert graded.status_code == 200 and graded.json()["model"] == "small-model"


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        ({"score": 1.5}, 422, "score"),
        ({"score": "high"}, 422, "score"),
        ({}, 422, "score"),
        ({"score": 0.5, "model": "x"}, 422, "model"),
    ],
)
def test_a_bad_grade_is_a_clear_error(
    server: httpx.Client, body: dict[str, object], status: int, problem: str
) -> None:
    first = _execute(server, "say hello to friend 5")
    reply = server.post(f"/v1/executions/{first['execution_id']}/grade", json=body)
    assert reply.status_code == status and problem in reply.json()["error"]["message"]


def test_bad_grades_from_elsewhere_log_nothing(server: httpx.Client) -> None:
    ok = {"query": "say hello", "scores": {"small-model": 1.0}}
    cases = [
        ({"grades": [ok, {"query": "hi", "scores": {"o3": 1.0}}]}, 422, "'o3'"),
        ({"grades": [{"query": "hi", "scores": {"small-model": 2}}]}, 422, "less than or equal"),
        ({"grades": [{"query": " ", "scores": {"small-model": 1}}]}, 422, "non-blank"),
        ({"grades": []}, 422, "at least 1"),
        ({"grades": [ok] * 5}, 413, "max_batch"),
    ]
    for body, status, problem in cases:
        reply = server.post("/v1/model-router/grades", json=body)
        assert reply.status_code == status, (body, reply.text)
        assert problem in reply.json()["error"]["message"], reply.text
    first = server.post("/v1/model-router/grades", json={"grades": [ok]})
    assert first.json()["seqs"] == [1]  # none of the refused grades took a position


def test_executions_of_other_tenants_and_without_a_model_answer_are_not_graded(
    server: httpx.Client,
) -> None:
    theirs = _execute(server, "say hello to friend 3", Authorization="Bearer acme-key-0001")
    reply = server.post(f"/v1/executions/{theirs['execution_id']}/grade", json={"score": 1})
    assert reply.status_code == 404
    assert server.post("/v1/executions/nope/grade", json={"score": 1}).status_code == 404
    tool = _execute(server, "run the tool")  # a model the ModelRouter does not know
    reply = server.post(f"/v1/executions/{tool['execution_id']}/grade", json={"score": 1})
    assert reply.status_code == 422 and "'unpriced'" in reply.text
    mine = server.post(
        f"/v1/executions/{theirs['execution_id']}/grade",
        json={"score": 1},
        headers={"Authorization": "Bearer acme-key-0001"},
    )
    assert mine.status_code == 200, mine.text


@pytest.mark.parametrize("setting", ["accept_grades_off", "no_model_router"])
def test_grading_is_not_found_when_the_server_cannot_learn(
    fake_provider: FakeProviderServer, tmp_path: Path, model_router_dir: Path, setting: str
) -> None:
    options: dict[str, object] = {"accept_grades": False} if setting == "accept_grades_off" else {}
    folder = None if setting == "no_model_router" else model_router_dir
    for base in _serve(fake_provider, tmp_path, folder, **options):
        body = {"grades": [{"query": "hi", "scores": {"small-model": 1.0}}]}
        reply = httpx.post(
            f"{base}/v1/model-router/grades",
            json=body,
            headers={"Authorization": "Bearer shared-key-001"},
        )
        assert reply.status_code == 404
        assert ("accept_grades" if folder else "model_router_dir") in reply.text


def test_an_answer_executed_over_grpc_is_graded_over_grpc(
    fake_provider: FakeProviderServer, tmp_path: Path, model_router_dir: Path
) -> None:
    grpc = pytest.importorskip("grpc", reason="needs stratarouter-runtime[grpc]")
    from stratarouter_runtime.server.proto import stratarouter_pb2 as pb
    from stratarouter_runtime.server.proto import stratarouter_pb2_grpc as pb_grpc

    auth = [("authorization", "Bearer shared-key-001")]
    for target in _serve(fake_provider, tmp_path, model_router_dir, grpc_port=0):
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.StrataRouterStub(channel)

            def execute(query: str, stub: Any = stub) -> pb.ExecuteResult:
                events = list(stub.Execute(pb.ExecuteRequest(query=query), metadata=auth))
                return events[-1].result

            first = execute("say hello to friend 42")
            assert first.model == "small-model"
            request = pb.GradeExecutionRequest(execution_id=first.execution_id, score=0.0)
            graded = stub.GradeExecution(request, metadata=auth)
            assert (graded.model, graded.score, graded.seq) == ("small-model", 0.0, 1)
            assert execute("say hello to friend 42").model == "big-model"
            with pytest.raises(grpc.RpcError) as again:
                stub.GradeExecution(request, metadata=auth)
            assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.RpcError) as bad:
                stub.GradeExecution(
                    pb.GradeExecutionRequest(execution_id=first.execution_id, score=2.0),
                    metadata=auth,
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "outside [0, 1]" in (bad.value.details() or "")
            with pytest.raises(grpc.RpcError) as missing:
                stub.GradeExecution(pb.GradeExecutionRequest(execution_id="nope"), metadata=auth)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
