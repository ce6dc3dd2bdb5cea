"""The REST endpoints on a live uvicorn server: routing, route sets, health, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from server_helpers import live_server, make_router

from stratarouter_runtime import CoreRuntimeBridge, MemoryStateStore, RuntimeConfig
from stratarouter_runtime.server import ServerConfig, create_app
from stratarouter_runtime.state import ExecutionRecord, StateError


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with live_server(create_app(make_router(), config=ServerConfig(max_batch=8))) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as c:
        yield c


def test_route_returns_route_confidence_candidates_and_latency(client: httpx.Client) -> None:
    response = client.post("/v1/route", json={"query": "please refund my invoice", "top_k": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["route"] == "billing"
    assert 0.5 < body["confidence"] <= 1.0
    assert body["candidates"][0]["route"] == "billing"
    assert len(body["candidates"]) == 2
    assert body["latency_ms"] > 0
    assert body["route_set_version"] == 1


def test_route_with_an_embedding_skips_encoding_and_agrees(client: httpx.Client) -> None:
    router = make_router()
    vector = router.encode(["will it rain today"])[0].tolist()
    given = client.post("/v1/route", json={"query": "will it rain today", "embedding": vector})
    encoded = client.post("/v1/route", json={"query": "will it rain today"})
    assert given.status_code == encoded.status_code == 200
    assert given.json()["route"] == encoded.json()["route"] == "weather"
    assert given.json()["confidence"] == pytest.approx(encoded.json()["confidence"], abs=1e-6)


def test_route_batch_matches_single_routes(client: httpx.Client) -> None:
    queries = ["refund my invoice", "is it sunny", "the app crashes on start"]
    batch = client.post("/v1/route/batch", json={"queries": queries, "top_k": 1}).json()
    singles = [client.post("/v1/route", json={"query": q}).json()["route"] for q in queries]
    assert [r["route"] for r in batch["results"]] == singles == ["billing", "weather", "tech"]
    assert all(len(r["candidates"]) == 1 for r in batch["results"])
    vectors = make_router().encode(queries).tolist()
    given = client.post("/v1/route/batch", json={"queries": queries, "embeddings": vectors})
    assert [r["route"] for r in given.json()["results"]] == singles


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"query": 5}, 422, "query"),
        ({"query": ["a"]}, 422, "query"),
        ({}, 422, "query"),
        ({"query": ""}, 422, "non-blank"),
        ({"query": "   "}, 422, "non-blank"),
        ({"query": "x" * 9000}, 422, "max_query_chars"),
        ({"query": "hi", "embedding": [0.1, 0.2]}, 422, "dimension 2"),
        ({"query": "hi", "embedding": "abc"}, 422, "embedding"),
        ({"query": "hi", "embedding": [0.0] * 64}, 422, "zero norm"),
        ({"query": "hi", "embedding": ["a"] * 64}, 422, "embedding.0"),
        ({"query": "hi", "top_k": 0}, 422, "top_k"),
        ({"query": "hi", "top_k": "3"}, 422, "top_k"),
        ({"query": "hi", "unexpected": 1}, 422, "unexpected"),
    ],
)
def test_malformed_route_requests_are_4xx_naming_the_problem(
    client: httpx.Client, body: dict[str, object], status: int, names: str
) -> None:
    response = client.post("/v1/route", json=body)
    assert response.status_code == status, response.text
    assert names in response.json()["error"]["message"]


def test_nan_and_non_json_bodies_are_422(client: httpx.Client) -> None:
    nan = b'{"query": "hi", "embedding": [NaN' + b", 1.0" * 63 + b"]}"
    response = client.post("/v1/route", content=nan, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "finite" in response.json()["error"]["message"]
    broken = client.post(
        "/v1/route", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["type"] == "RequestValidationError"


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"queries": []}, 422, "queries"),
        ({"queries": "one string"}, 422, "queries"),
        ({"queries": ["a"] * 9}, 413, "max_batch"),
        ({"queries": ["ok", ""]}, 422, "non-blank"),
        ({"queries": ["a", "b"], "embeddings": [[1.0] * 64]}, 422, "2 queries but 1"),
        ({"queries": ["a", "b"], "embeddings": [[1.0] * 64, [1.0] * 3]}, 422, "lengths"),
    ],
)
def test_malformed_batches_are_4xx(
    client: httpx.Client, body: dict[str, object], status: int, names: str
) -> None:
    response = client.post("/v1/route/batch", json=body)
    assert response.status_code == status, response.text
    assert names in response.json()["error"]["message"]


def test_health_readiness_metrics_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["backends"] == {"state": "ok", "cache": "ok"}
    client.post("/v1/route", json={"query": "refund my invoice"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'stratarouter_http_requests_total{endpoint="/v1/route",status="200"}' in metrics.text
    assert "stratarouter_encode_batch_size_count" in metrics.text
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/route",
        "/v1/route/batch",
        "/v1/routes",
        "/v1/routes/{name}",
        "/v1/execute",
        "/v1/chat/completions",
        "/v1/models",
    ):
        assert path in spec["paths"], path
    assert client.get("/v2/route").status_code == 404
    assert client.get("/v2/route").json()["error"]["status"] == 404


def _routes_document(prefix: str) -> dict[str, object]:
    return {
        "config": {"threshold": 0.0},
        "routes": [
            {"name": f"{prefix}billing", "examples": ["refund my invoice", "charged twice"]},
            {"name": f"{prefix}weather", "examples": ["will it rain", "sunny tomorrow"]},
        ],
    }


def test_put_replaces_get_lists_delete_removes() -> None:
    with live_server(create_app(make_router())) as url, httpx.Client(base_url=url) as client:
        put = client.put("/v1/routes", json=_routes_document("new_"))
        assert put.status_code == 200, put.text
        assert put.json() == {"version": 2, "routes": ["new_billing", "new_weather"]}
        got = client.get("/v1/routes")
        assert got.headers["x-route-set-version"] == "2"
        listed = got.json()
        assert [r["name"] for r in listed["routes"]] == ["new_billing", "new_weather"]
        assert listed["config"] == {"threshold": 0.0}
        assert client.post("/v1/route", json={"query": "refund my invoice"}).json()["route"] == (
            "new_billing"
        )
        # what GET returns is a valid PUT body (round trip)
        again = client.put(
            "/v1/routes", content=json.dumps(listed), headers={"content-type": "application/json"}
        )
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 3
        assert client.get("/v1/routes").json() == listed
        yaml_body = "routes:\n  - name: only\n    examples: [hello there]\n  - name: other\n    examples: [bye now]\n"
        put_yaml = client.put(
            "/v1/routes", content=yaml_body, headers={"content-type": "application/yaml"}
        )
        assert put_yaml.status_code == 200, put_yaml.text
        deleted = client.delete("/v1/routes/other")
        assert deleted.status_code == 200
        assert deleted.json()["routes"] == ["only"]
        assert client.delete("/v1/routes/other").status_code == 404
        last = client.delete("/v1/routes/only")
        assert last.status_code == 404 and "last route" in last.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "names"),
    [
        (b'{"routes": []}', "application/json", "routes"),
        (b'{"routes": [{"name": "a", "examples": 5}]}', "application/json", "examples"),
        (
            b'{"routes": [{"name": "a", "examples": ["x"], "patterns": ["("]}]}',
            "application/json",
            "patterns",
        ),
        (
            b'{"routes": [{"name": "a", "examples": ["x"]}, {"name": "a", "examples": ["y"]}]}',
            "application/json",
            "duplicate",
        ),
        (b'{"routes": [{"examples": ["x"]}]}', "application/json", "name"),
        (
            b'{"routes": [{"name": "a", "examples": ["x"]}], "bogus": 1}',
            "application/json",
            "bogus",
        ),
        (
            b'{"routes": [{"name": "a", "examples": ["x"]}], "config": {"threshold": 7}}',
            "application/json",
            "threshold",
        ),
        (b"routes: [unclosed", "application/yaml", "body"),
        (b"{not json", "application/json", "JSON"),
    ],
)
def test_invalid_put_is_422_and_changes_nothing(
    client: httpx.Client, content: bytes, content_type: str, names: str
) -> None:
    # the shared server: an invalid PUT must leave it exactly as it was
    before = client.get("/v1/routes").json()
    response = client.put("/v1/routes", content=content, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert names in message, message
    assert "/tmp" not in message  # the body is named, never a temporary file
    assert client.get("/v1/routes").json() == before


def test_embedding_dimension_follows_the_encoder(client: httpx.Client) -> None:
    rng = np.random.default_rng(0)
    ok = client.post("/v1/route", json={"query": "hi", "embedding": rng.normal(size=64).tolist()})
    assert ok.status_code == 200


def test_a_post_without_a_json_content_type_is_read_as_json(client: httpx.Client) -> None:
    # what `curl -d '{...}'` sends: application/x-www-form-urlencoded
    form = {"content-type": "application/x-www-form-urlencoded"}
    ok = client.post("/v1/route", content=b'{"query": "refund my invoice"}', headers=form)
    assert ok.status_code == 200 and ok.json()["route"] == "billing"
    bad = client.post("/v1/route", content=b"query=refund", headers=form)
    assert bad.status_code == 422


class _UnreachableStore(MemoryStateStore):
    """A state store whose database is gone: every read fails."""

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        raise StateError("connection refused (the test's database is down)")


def test_readyz_reports_degraded_when_a_backend_fails_and_routing_goes_on() -> None:
    router = make_router()
    bridge = CoreRuntimeBridge(RuntimeConfig(), router, {}, state=_UnreachableStore())
    with live_server(create_app(router, bridge=bridge)) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert "connection refused" in ready.json()["backends"]["state"]
        assert ready.json()["backends"]["cache"] == "ok"
        routed = httpx.post(f"{url}/v1/route", json={"query": "refund my invoice"})
        assert routed.json()["route"] == "billing"


def test_readyz_names_a_provider_whose_breaker_is_open_and_stays_ready() -> None:
    router = make_router()
    bridge = CoreRuntimeBridge(RuntimeConfig(), router, {})
    healthy = bridge.breakers.get("openai", "gpt-4o-mini")
    failing = bridge.breakers.get("openai", "gpt-4o")
    for _ in range(RuntimeConfig().breaker.failure_threshold):
        failing.record_failure()
    assert failing.state == "open" and healthy.state == "closed"
    with live_server(create_app(router, bridge=bridge)) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200  # routing and cache hits still work
        assert ready.json()["status"] == "degraded"
        backends = ready.json()["backends"]
        assert backends["provider openai:gpt-4o"].startswith("breaker open: calls refused for")
        assert "provider openai:gpt-4o-mini" not in backends
        failing.reset()
        assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
