"""The gRPC service against a real `stratarouter serve --grpc-port` subprocess on 127.0.0.1.

Every RPC over a real channel, auth accepted and denied, a tenant whose route set is replaced
over REST and seen over gRPC (one state), bad input mapped to its status code, the rate limit
(in-process server, injected clock) and SIGTERM with gRPC running.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

grpc = pytest.importorskip("grpc", reason="needs stratarouter-runtime[grpc]")

from server_helpers import FakeClock, free_port, live_server, make_router  # noqa: E402
from stratarouter_core.testing import HashingEncoder  # noqa: E402

from stratarouter_runtime.server import ServerConfig, create_app  # noqa: E402
from stratarouter_runtime.server.proto import stratarouter_pb2 as pb  # noqa: E402
from stratarouter_runtime.server.proto import stratarouter_pb2_grpc as pb_grpc  # noqa: E402
from stratarouter_runtime.testing import FakeProviderServer  # noqa: E402

ROUTES_YAML = """\
config:
  threshold: 0.0
routes:
  - name: billing
    examples: ["I was charged twice", "refund my invoice", "my card was billed two times"]
    metadata: {provider: local, model: fake-small}
  - name: weather
    examples: ["will it rain today", "weather forecast for tomorrow", "is it sunny"]
    metadata: {provider: local, model: fake-small}
"""
TENANT_ROUTES = """\
routes:
  - name: acme-orders
    examples: ["where is my order", "track my parcel"]
    metadata: {provider: local, model: fake-small}
  - name: acme-returns
    examples: ["I want to return this", "send it back"]
    metadata: {provider: local, model: fake-small}
"""
KEY, TENANT_KEY = "grpc-key-default-1", "grpc-key-acme-1"
DRAINED = (0, -signal.SIGTERM)


class Served:
    def __init__(self, process: subprocess.Popen[str], http: str, target: str) -> None:
        self.process, self.http, self.target = process, http, target
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.StrataRouterStub(self.channel)


def _auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def _wait(process: subprocess.Popen[str], http: str, target: str, log: Path) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}: {log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{http}/healthz", timeout=1).status_code == 200:
                with grpc.insecure_channel(target) as channel:
                    grpc.channel_ready_future(channel).result(timeout=10)
                return
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("grpc")
    routes = folder / "routes.yaml"
    routes.write_text(ROUTES_YAML)
    log = folder / "log"
    port, grpc_port = free_port(), free_port()
    with FakeProviderServer(reply="fake answer from the provider") as fake, log.open("w") as out:
        command = [sys.executable, "-m", "stratarouter_core.cli.main", "serve"]
        command += ["--routes", str(routes), "--encoder", "hashing", "--port", str(port)]
        command += ["--grpc-port", str(grpc_port), "--provider-url", fake.openai_base_url]
        command += ["--max-batch", "4", "--max-body-bytes", "65536", "--log-level", "warning"]
        env = {**os.environ, "STRATAROUTER_API_KEYS": f"{KEY},{TENANT_KEY}:acme"}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        http, target = f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
        try:
            _wait(process, http, target, log)
            served = Served(process, http, target)
            yield served
            served.channel.close()
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        assert code in DRAINED, log.read_text()
        assert "Traceback" not in log.read_text()


def _code(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_route_by_text_and_by_embedding(served: Served) -> None:
    reply = served.stub.Route(pb.RouteRequest(query="I was charged twice"), metadata=_auth(KEY))
    assert reply.route == "billing"
    assert 0 < reply.confidence <= 1
    assert reply.route_set_version == 1
    assert 1 <= len(reply.candidates) <= 3
    assert reply.candidates[0].route == "billing"
    vector = HashingEncoder().encode(["will it rain today"])[0]
    reply = served.stub.Route(
        pb.RouteRequest(query="will it rain today", embedding=vector.tolist(), top_k=1),
        metadata=_auth(KEY),
    )
    assert reply.route == "weather"
    assert len(reply.candidates) == 1


def test_route_gives_the_rest_answer(served: Served) -> None:
    rest = httpx.post(
        f"{served.http}/v1/route",
        json={"query": "refund my invoice"},
        headers={"Authorization": f"Bearer {KEY}"},
    ).json()
    reply = served.stub.Route(pb.RouteRequest(query="refund my invoice"), metadata=_auth(KEY))
    assert reply.route == rest["route"]
    assert math.isclose(reply.confidence, rest["confidence"], rel_tol=1e-9)
    assert [c.route for c in reply.candidates] == [c["route"] for c in rest["candidates"]]


def test_route_batch(served: Served) -> None:
    reply = served.stub.RouteBatch(
        pb.RouteBatchRequest(queries=["I was charged twice", "is it sunny"]), metadata=_auth(KEY)
    )
    assert [r.route for r in reply.results] == ["billing", "weather"]
    vectors = HashingEncoder().encode(["refund my invoice", "weather forecast for tomorrow"])
    reply = served.stub.RouteBatch(
        pb.RouteBatchRequest(
            queries=["refund my invoice", "weather forecast for tomorrow"],
            embeddings=[pb.Embedding(values=v.tolist()) for v in vectors],
        ),
        metadata=_auth(KEY),
    )
    assert [r.route for r in reply.results] == ["billing", "weather"]


def test_execute_streams_chunks_then_the_result_shared_with_rest(served: Served) -> None:
    events = list(
        served.stub.Execute(pb.ExecuteRequest(query="I was charged twice"), metadata=_auth(KEY))
    )
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"chunk"} and len(kinds) > 1
    result = events[-1].result
    assert "".join(e.chunk for e in events[:-1]) == result.response
    assert result.response == "fake answer from the provider"
    assert result.route == "billing" and result.provider == "local"
    assert result.execution_id
    # the same bridge: REST sees the record; another tenant does not
    record = httpx.get(
        f"{served.http}/v1/executions/{result.execution_id}",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert record.status_code == 200 and record.json()["status"] == "succeeded"
    other = httpx.get(
        f"{served.http}/v1/executions/{result.execution_id}",
        headers={"Authorization": f"Bearer {TENANT_KEY}"},
    )
    assert other.status_code == 404


def test_health(served: Served) -> None:
    reply = served.stub.Health(pb.HealthRequest())
    assert reply.status == "ready"
    assert reply.router_built and reply.routes == 2
    assert dict(reply.backends) == {"state": "ok", "cache": "ok"}


def test_auth_denied_without_or_with_a_wrong_key(served: Served) -> None:
    request = pb.RouteRequest(query="I was charged twice")
    code, details = _code(lambda: served.stub.Route(request))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in details
    code, details = _code(lambda: served.stub.Route(request, metadata=_auth("wrong-key-123")))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "not valid" in details
    code, _ = _code(lambda: list(served.stub.Execute(pb.ExecuteRequest(query="hi"))))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_a_tenant_sees_its_own_route_set_replaced_over_rest(served: Served) -> None:
    put = httpx.put(
        f"{served.http}/v1/routes",
        content=TENANT_ROUTES,
        headers={"Authorization": f"Bearer {TENANT_KEY}", "Content-Type": "application/yaml"},
    )
    assert put.status_code == 200, put.text
    mine = served.stub.Route(pb.RouteRequest(query="track my parcel"), metadata=_auth(TENANT_KEY))
    assert mine.route == "acme-orders" and mine.route_set_version == 2
    theirs = served.stub.Route(pb.RouteRequest(query="track my parcel"), metadata=_auth(KEY))
    assert theirs.route in {"billing", "weather"} and theirs.route_set_version == 1


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (pb.RouteRequest(query=""), "INVALID_ARGUMENT", "non-blank"),
        (pb.RouteRequest(query="   "), "INVALID_ARGUMENT", "non-blank"),
        (pb.RouteRequest(query="x" * 9000), "INVALID_ARGUMENT", "max_query_chars"),
        (pb.RouteRequest(query="hi", top_k=0), "INVALID_ARGUMENT", "top_k"),
        (pb.RouteRequest(query="hi", top_k=5000), "INVALID_ARGUMENT", "top_k"),
        (pb.RouteRequest(query="hi", embedding=[0.1, 0.2]), "INVALID_ARGUMENT", "dimension"),
        (pb.RouteRequest(query="hi", embedding=[math.nan] * 256), "INVALID_ARGUMENT", "NaN"),
        (pb.RouteRequest(query="hi", embedding=[math.inf] * 256), "INVALID_ARGUMENT", "NaN"),
        (pb.RouteRequest(query="x" * 70_000), "RESOURCE_EXHAUSTED", ""),
    ],
)
def test_bad_route_requests_get_their_status(
    served: Served, request_: Any, code: str, words: str
) -> None:
    got, details = _code(lambda: served.stub.Route(request_, metadata=_auth(KEY)))
    assert got == getattr(grpc.StatusCode, code), details
    assert words in details


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (pb.RouteBatchRequest(), "INVALID_ARGUMENT", "at least one"),
        (pb.RouteBatchRequest(queries=["a"] * 5), "RESOURCE_EXHAUSTED", "max_batch"),
        (pb.RouteBatchRequest(queries=["hi", ""]), "INVALID_ARGUMENT", "non-blank"),
        (
            pb.RouteBatchRequest(queries=["a", "b"], embeddings=[pb.Embedding(values=[1.0])]),
            "INVALID_ARGUMENT",
            "2 queries but 1 embeddings",
        ),
        (
            pb.RouteBatchRequest(
                queries=["a", "b"],
                embeddings=[pb.Embedding(values=[1.0] * 256), pb.Embedding(values=[1.0] * 3)],
            ),
            "INVALID_ARGUMENT",
            "one length",
        ),
        (
            pb.RouteBatchRequest(queries=["a"], embeddings=[pb.Embedding(values=[1.0] * 3)]),
            "INVALID_ARGUMENT",
            "dimension",
        ),
    ],
)
def test_bad_batches_get_their_status(
    served: Served, request_: Any, code: str, words: str
) -> None:
    got, details = _code(lambda: served.stub.RouteBatch(request_, metadata=_auth(KEY)))
    assert got == getattr(grpc.StatusCode, code), details
    assert words in details


def test_bad_execute_request_is_invalid_argument(served: Served) -> None:
    call = served.stub.Execute(pb.ExecuteRequest(query=" "), metadata=_auth(KEY))
    code, details = _code(lambda: list(call))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "non-blank" in details


def test_rate_limit_is_resource_exhausted_with_retry_after() -> None:
    clock = FakeClock()
    config = ServerConfig(rate_limit_per_s=1, rate_limit_burst=2, grpc_port=0)
    app = create_app(make_router(), config=config, keys=None, clock=clock)
    with live_server(app), grpc.insecure_channel(f"127.0.0.1:{app.state.grpc_port}") as channel:
        stub = pb_grpc.StrataRouterStub(channel)
        request = pb.RouteRequest(query="I was charged twice")
        stub.Route(request)
        stub.Route(request)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Route(request)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit" in caught.value.details()
        assert dict(caught.value.trailing_metadata())["retry-after"] == "1"
        clock.now += 1.0  # one token back
        assert stub.Route(request).route == "billing"


def test_serve_with_grpc_but_without_the_grpc_extra_names_it_and_exits_2() -> None:
    code = (
        "import sys; sys.modules['grpc'] = None\n"  # as if the extra were not installed
        "from stratarouter_core.cli.main import main\n"
        "sys.exit(main(['serve', '--routes', 'routes.yaml', '--grpc-port', '0']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install 'stratarouter-runtime[grpc]'" in done.stderr


def test_grpc_port_from_env_and_validated() -> None:
    from stratarouter_core.errors import ConfigError

    from stratarouter_runtime.server import load_server_config

    assert load_server_config(environ={}).grpc_port is None
    env = {"STRATAROUTER_SERVER_GRPC_PORT": "50051"}
    assert load_server_config(environ=env).grpc_port == 50051
    assert load_server_config({"grpc_port": 6000}, environ=env).grpc_port == 6000
    with pytest.raises(ConfigError, match="grpc_port"):
        ServerConfig(grpc_port=70000)
    with pytest.raises(ConfigError, match="GRPC_PORT"):
        load_server_config(environ={"STRATAROUTER_SERVER_GRPC_PORT": "many"})


def test_bytes_that_are_no_request_message_are_invalid_argument(served: Served) -> None:
    raw = served.channel.unary_unary("/stratarouter.v1.StrataRouter/Route", None, None)
    code, details = _code(lambda: raw(b"\xff\xff\xff\xff", metadata=_auth(KEY)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid stratarouter.v1.RouteRequest" in details
    unknown = served.channel.unary_unary("/stratarouter.v1.StrataRouter/Nope", None, None)
    code, _ = _code(lambda: unknown(b"", metadata=_auth(KEY)))
    assert code == grpc.StatusCode.UNIMPLEMENTED
