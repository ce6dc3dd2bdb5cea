"""Many servers, one state: three `stratarouter serve` processes on 127.0.0.1 over the real
Redis (semantic cache) and PostgreSQL (execution records, shared route sets).

- a cache entry stored through one server is a hit through another (and not another tenant's);
- a route update through one server is served by all within `PROPAGATION_BOUND_S`;
- concurrent PUTs on two servers converge on one version everywhere;
- an answer graded through one server moves the model another server picks;
- a server SIGKILLed mid-execution loses no record, and exactly one survivor recovers it.

The three servers are started once for the module (starting them is most of its time): each
test works in tenants of its own, and the kill test runs last. The module has its own
PostgreSQL schema and Redis namespace, so parallel runs never collide.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from server_helpers import free_port

from stratarouter_runtime.testing import FakeProviderServer, Fault

pytest.importorskip("psycopg", reason="needs stratarouter-runtime[postgres]")
pytest.importorskip("redis", reason="needs stratarouter-runtime[redis]")

import psycopg

# The measured bound is far lower (benchmarks/RESULTS.md, "route-set propagation": max 97 ms
# over 50 updates); the margin absorbs a loaded CI machine, and is still well below the 5 s
# version poll, so a pass means the notification path worked.
PROPAGATION_BOUND_S = 2.0
KEY_ALPHA, KEY_BETA = "alpha-key-0001", "beta-key-00002"
KEY_GAMMA, KEY_DELTA, KEY_EPSILON = "gamma-key-0003", "delta-key-0004", "epsilon-key-05"
KEY_ZETA = "zeta-key-00006"
KEYS = ",".join(
    f"{key}:{tenant}"
    for key, tenant in [
        (KEY_ALPHA, "alpha"),
        (KEY_BETA, "beta"),
        (KEY_GAMMA, "gamma"),
        (KEY_DELTA, "delta"),
        (KEY_EPSILON, "epsilon"),
        (KEY_ZETA, "zeta"),
    ]
)
# The servers' ModelRouter: fake-small says hello as well as fake-big, and proves no theorem.
HELLO = [f"say hello to friend {i}" for i in range(40)]
THEOREMS = [f"prove theorem {i} about primes" for i in range(40)]
POOL_ROUTES = {
    "config": {"threshold": 0.0},
    "routes": [
        {
            "name": "assistant",
            "examples": ["say hello", "prove a theorem"],
            "metadata": {
                "provider": "local",
                "models": ["fake-big", "fake-small"],
                "min_quality": 0.8,
            },
        }
    ],
}


def _save_model_router(path: Path) -> None:
    from stratarouter_core import ModelRouter, ModelSpec
    from stratarouter_core.testing import HashingEncoder

    router = ModelRouter(
        [ModelSpec("fake-big", 2.5, 10.0), ModelSpec("fake-small", 0.15, 0.6)],
        encoder=HashingEncoder(),  # the servers' --encoder hashing
    )
    scores = [{"fake-big": 1.0, "fake-small": 1.0}] * 40
    scores += [{"fake-big": 1.0, "fake-small": 0.0}] * 40
    router.fit(HELLO + THEOREMS, scores)
    router.save(path)


ROUTES_YAML = """\
config: {threshold: 0.0}
routes:
  - name: billing
    examples: ["I was charged twice", "refund my invoice", "my card was billed two times"]
    metadata: {provider: local, model: fake-small}
  - name: weather
    examples: ["will it rain today", "weather forecast for tomorrow", "is it sunny"]
    metadata: {provider: local, model: fake-small}
"""


def _routes_json(prefix: str) -> dict[str, object]:
    def route(name: str, examples: list[str]) -> dict[str, object]:
        return {
            "name": f"{prefix}{name}",
            "examples": examples,
            "metadata": {"provider": "local", "model": "fake-small"},
        }

    return {
        "config": {"threshold": 0.0},
        "routes": [
            route("billing", ["I was charged twice", "refund my invoice"]),
            route("travel", ["book a flight to Paris", "cancel my hotel reservation"]),
        ],
    }


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    worker_id: str
    log: Path

    def call(self, method: str, path: str, key: str = KEY_ALPHA, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}  # type: ignore[dict-item]
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def version(self, key: str = KEY_ALPHA) -> int:
        return int(self.call("GET", "/v1/routes", key).headers["X-Route-Set-Version"])


@dataclass
class Cluster:
    servers: list[Server]
    schema: str
    dsn: str
    fake: FakeProviderServer
    folder: Path

    def record(self, query: str) -> tuple[str, str, str | None, dict[str, object] | None]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT id, status, worker_id, result FROM {self.schema}.executions "
                "WHERE query = %s",
                (query,),
            ).fetchall()
        assert len(rows) == 1, rows  # exactly one record: none lost, none duplicated
        return rows[0]  # type: ignore[no-any-return]


def _start(folder: Path, index: int, env: dict[str, str], fake: FakeProviderServer) -> Server:
    port = free_port()
    worker_id = f"server-{index}"
    log = folder / f"{worker_id}.log"
    command = [
        sys.executable, "-m", "stratarouter_core.cli.main", "serve",
        "--routes", str(folder / "routes.yaml"), "--encoder", "hashing",
        "--port", str(port), "--provider-url", fake.openai_base_url, "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "STRATAROUTER_WORKER_ID": worker_id},
        )
    return Server(process, f"http://127.0.0.1:{port}", worker_id, log)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.worker_id} exited:\n{server.log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{server.worker_id} did not start in 30 s:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_dsn: str,
    redis_url: str,
    fake_provider: FakeProviderServer,
) -> Iterator[Cluster]:
    tmp_path = tmp_path_factory.mktemp("scaleout")
    (tmp_path / "routes.yaml").write_text(ROUTES_YAML)
    _save_model_router(tmp_path / "model-router")
    schema = f"sr_scale_{uuid.uuid4().hex[:10]}"
    env = {
        "DATABASE_URL": postgres_dsn,
        "STRATAROUTER_DATABASE_SCHEMA": schema,
        "REDIS_URL": redis_url,
        "STRATAROUTER_CACHE_NAMESPACE": schema,
        "STRATAROUTER_API_KEYS": KEYS,
        "STRATAROUTER_MAX_RETRIES": "0",
        "STRATAROUTER_LEASE_TIMEOUT_S": "2",
        "STRATAROUTER_RECOVERY_INTERVAL_S": "0.5",
        "STRATAROUTER_SERVER_MODEL_ROUTER_DIR": str(tmp_path / "model-router"),
        "STRATAROUTER_GRADE_POLL_S": "30",  # grades must come by notification
    }
    servers = [_start(tmp_path, i, env, fake_provider) for i in range(3)]
    try:
        for server in servers:
            _wait_ready(server)
        yield Cluster(servers, schema, postgres_dsn, fake_provider, tmp_path)
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.process.terminate()
        for server in servers:
            try:
                server.process.wait(15)
            except subprocess.TimeoutExpired:
                server.process.kill()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        import redis

        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"*{schema}*"):
            client.delete(key)
        client.close()


def _until_all(servers: list[Server], version: int, key: str = KEY_ALPHA) -> float:
    """Seconds until every server serves `version` (fails past the propagation bound)."""
    started = time.monotonic()
    waiting = list(servers)
    while waiting:
        waiting = [s for s in waiting if s.version(key) < version]
        time.sleep(0.005)
        if time.monotonic() - started > PROPAGATION_BOUND_S:
            raise AssertionError(f"{[s.worker_id for s in waiting]} not at version {version}")
    return time.monotonic() - started


def test_a_cache_entry_stored_through_one_server_is_a_hit_through_another(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.servers
    query = f"please refund my invoice {uuid.uuid4().hex[:6]}"
    before = cluster.fake.count()
    first = a.call("POST", "/v1/execute", json={"query": query})
    assert first.status_code == 200, first.text
    assert first.json()["cached"] is False
    second = b.call("POST", "/v1/execute", json={"query": query})
    assert second.json()["cached"] is True, second.text
    assert second.json()["response"] == first.json()["response"]
    other_tenant = c.call("POST", "/v1/execute", KEY_BETA, json={"query": query})
    assert other_tenant.json()["cached"] is False  # tenants never share cache entries
    assert cluster.fake.count() == before + 2
    record_id = first.json()["execution_id"]
    for server in (b, c):  # every server reads the shared record; only its tenant sees it
        assert server.call("GET", f"/v1/executions/{record_id}").json()["status"] == "succeeded"
        assert server.call("GET", f"/v1/executions/{record_id}", KEY_BETA).status_code == 404


def test_a_route_update_through_one_server_is_served_by_all_and_isolated_by_tenant(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.servers
    put = a.call("PUT", "/v1/routes", json=_routes_json("v2_"))
    assert put.status_code == 200, put.text
    version = put.json()["version"]
    assert version == 2
    _until_all(cluster.servers, version)
    for server in cluster.servers:
        decision = server.call("POST", "/v1/route", json={"query": "book a flight to Paris"})
        assert decision.json()["route"] == "v2_travel"
        assert decision.json()["route_set_version"] == version
        beta = server.call("POST", "/v1/route", KEY_BETA, json={"query": "refund my invoice"})
        assert beta.json()["route"] == "billing"  # beta still serves the initial set
        assert server.version(KEY_BETA) == 1
    deleted = c.call("DELETE", "/v1/routes/v2_travel")
    assert deleted.status_code == 200, deleted.text
    _until_all(cluster.servers, deleted.json()["version"])
    assert a.call("GET", "/v1/routes").json()["routes"][0]["name"] == "v2_billing"
    assert len(b.call("GET", "/v1/routes").json()["routes"]) == 1
    stale = b.call("PUT", "/v1/routes", json=_routes_json("x_"), headers={"If-Match": "2"})
    assert stale.status_code == 409 and "RouteSetConflictError" in stale.text


def test_a_server_started_later_serves_the_latest_set(cluster: Cluster) -> None:
    a = cluster.servers[0]
    version = a.call("PUT", "/v1/routes", KEY_DELTA, json=_routes_json("late_")).json()["version"]
    env = {
        "DATABASE_URL": cluster.dsn,
        "STRATAROUTER_DATABASE_SCHEMA": cluster.schema,
        "STRATAROUTER_API_KEYS": KEYS,
    }
    late = _start(cluster.folder, 9, env, cluster.fake)
    try:
        _wait_ready(late)
        assert late.version(KEY_DELTA) == version  # loaded before it served anything
        assert late.version(KEY_EPSILON) == 1
    finally:
        late.process.terminate()
        late.process.wait(15)


def test_concurrent_puts_on_two_servers_converge_on_one_version(cluster: Cluster) -> None:
    a, b, _ = cluster.servers
    with ThreadPoolExecutor(2) as pool:
        replies = list(
            pool.map(
                lambda pair: pair[0].call(
                    "PUT", "/v1/routes", KEY_GAMMA, json=_routes_json(pair[1])
                ),
                [(a, "from_a_"), (b, "from_b_")],
            )
        )
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    versions = sorted(r.json()["version"] for r in replies)
    assert versions == [2, 3]  # one order, decided by the database
    winner = next(r for r in replies if r.json()["version"] == 3).json()["routes"]
    _until_all(cluster.servers, 3, KEY_GAMMA)
    for server in cluster.servers:
        names = [r["name"] for r in server.call("GET", "/v1/routes", KEY_GAMMA).json()["routes"]]
        assert names == winner and server.version(KEY_GAMMA) == 3


def test_an_answer_graded_through_one_server_moves_the_model_the_others_pick(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.servers
    put = a.call("PUT", "/v1/routes", KEY_ZETA, json=POOL_ROUTES)
    assert put.status_code == 200, put.text
    _until_all(cluster.servers, put.json()["version"], KEY_ZETA)
    query = {"query": "say hello to friend 99"}
    first = a.call("POST", "/v1/execute", KEY_ZETA, json=query).json()
    assert first.get("model") == "fake-small", first
    graded = b.call("POST", f"/v1/executions/{first['execution_id']}/grade", KEY_ZETA,
                    json={"score": 0.0})  # fmt: skip
    assert graded.status_code == 200, graded.text
    assert graded.json()["model"] == "fake-small"
    again = c.call("POST", f"/v1/executions/{first['execution_id']}/grade", KEY_ZETA,
                   json={"score": 1.0})  # fmt: skip
    assert again.status_code == 409, again.text  # once per execution, whichever server
    other = c.call("POST", f"/v1/executions/{first['execution_id']}/grade", KEY_ALPHA,
                   json={"score": 0.0})  # fmt: skip
    assert other.status_code == 404  # another tenant's execution
    started, models = time.monotonic(), []
    while time.monotonic() - started < PROPAGATION_BOUND_S:
        models = [s.call("POST", "/v1/execute", KEY_ZETA, json=query).json()["model"]
                  for s in (a, c)]  # fmt: skip
        if models == ["fake-big", "fake-big"]:
            break
        time.sleep(0.05)
    assert models == ["fake-big", "fake-big"]


def _recovered(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(
        r'^stratarouter_recovered_executions_total\{outcome="resumed"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_a_killed_server_loses_no_record_and_one_survivor_recovers_it(cluster: Cluster) -> None:
    """Last in the module: it kills the first server."""
    a, b, c = cluster.servers
    query = f"refund my invoice, killed {uuid.uuid4().hex[:6]}"
    before = cluster.fake.count()
    cluster.fake.add_faults(Fault.delay(30))  # the provider holds a's call until a is killed
    outcome: list[object] = []

    def in_flight() -> None:
        try:
            outcome.append(a.call("POST", "/v1/execute", json={"query": query}))
        except httpx.TransportError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=in_flight)
    thread.start()
    deadline = time.monotonic() + 10
    while cluster.fake.count() == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cluster.fake.count() == before + 1  # a is inside the provider call
    a.process.kill()  # SIGKILL: no drain, no cleanup
    a.process.wait(10)
    thread.join(10)
    assert isinstance(outcome[0], httpx.TransportError)
    _, status, owner, _ = cluster.record(query)
    assert (status, owner) == ("running", "server-0")  # the record survived its server
    deadline = time.monotonic() + 15
    while cluster.record(query)[1] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # three more sweeps by each survivor: nothing may be taken twice
    _, status, owner, result = cluster.record(query)
    assert status == "succeeded" and owner in {"server-1", "server-2"}
    assert result is not None and result["response"] == f"echo: {query}"
    assert cluster.fake.count() == before + 2  # the killed call, then exactly one resume
    assert _recovered(b) + _recovered(c) == 1
