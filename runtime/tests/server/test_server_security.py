"""API keys, tenants, rate limits, size limits, CORS and what is (never) logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_helpers import FakeClock, live_server, make_router
from stratarouter_core.errors import ConfigError

from stratarouter_runtime.server import ApiKey, Authenticator, RateLimiter, ServerConfig, create_app
from stratarouter_runtime.server.config import load_server_config
from stratarouter_runtime.server.security import (
    AuthenticationError,
    RateLimitedError,
    load_keys_file,
    parse_key_entries,
)

KEY_A, KEY_B, KEY_SHARED = "key-aaaa-1111", "key-bbbb-2222", "key-shared-3333"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# key tenant\n{KEY_A} tenant-a\n{KEY_B} tenant-b\n\n{KEY_SHARED}\n")
    app = create_app(make_router(), config=ServerConfig(api_keys_file=str(keys)))
    with live_server(app) as base:
        yield base


def test_requests_need_a_valid_bearer_key(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        body = {"query": "refund my invoice"}
        missing = client.post("/v1/route", json=body)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization" in missing.json()["error"]["message"]
        wrong = client.post("/v1/route", json=body, headers=_auth("key-not-known-0"))
        assert wrong.status_code == 401
        assert "not valid" in wrong.json()["error"]["message"]
        basic = client.post("/v1/route", json=body, headers={"Authorization": f"Basic {KEY_A}"})
        assert basic.status_code == 401
        for key in (KEY_A, KEY_B, KEY_SHARED):
            assert client.post("/v1/route", json=body, headers=_auth(key)).status_code == 200
        for path in ("/v1/routes", "/v1/models"):
            assert client.get(path).status_code == 401
        # probes stay open for orchestrators and scrapers
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_a_tenant_sees_and_changes_only_its_own_route_set(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        document = {
            "routes": [
                {"name": "a_only", "examples": ["hello"]},
                {"name": "a_other", "examples": ["bye"]},
            ]
        }
        assert client.put("/v1/routes", json=document, headers=_auth(KEY_A)).status_code == 200
        names = {
            key: [r["name"] for r in client.get("/v1/routes", headers=_auth(key)).json()["routes"]]
            for key in (KEY_A, KEY_B, KEY_SHARED)
        }
        assert names[KEY_A] == ["a_only", "a_other"]
        assert names[KEY_B] == names[KEY_SHARED] == ["billing", "weather", "tech"]
        routed = client.post("/v1/route", json={"query": "hello"}, headers=_auth(KEY_B)).json()
        assert {c["route"] for c in routed["candidates"]} <= {"billing", "weather", "tech"}
        # deleting in B's set leaves A's and the shared one alone
        assert client.delete("/v1/routes/tech", headers=_auth(KEY_B)).status_code == 200
        assert client.delete("/v1/routes/tech", headers=_auth(KEY_A)).status_code == 404
        shared = client.get("/v1/routes", headers=_auth(KEY_SHARED)).json()
        assert [r["name"] for r in shared["routes"]] == ["billing", "weather", "tech"]


def test_rate_limit_answers_429_with_retry_after_and_refills() -> None:
    clock = FakeClock()
    config = ServerConfig(rate_limit_per_s=0.5, rate_limit_burst=2)
    keys = [ApiKey(KEY_A), ApiKey(KEY_B)]
    app = create_app(make_router(), config=config, keys=keys, clock=clock)
    with live_server(app) as url, httpx.Client(base_url=url) as client:
        body = {"query": "is it sunny"}
        statuses = [
            client.post("/v1/route", json=body, headers=_auth(KEY_A)).status_code for _ in range(2)
        ]
        assert statuses == [200, 200]
        limited = client.post("/v1/route", json=body, headers=_auth(KEY_A))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"  # one token at 0.5/s
        assert "rate limit" in limited.json()["error"]["message"]
        # another key has its own bucket
        assert client.post("/v1/route", json=body, headers=_auth(KEY_B)).status_code == 200
        clock.now += 1.0  # half a token: still limited
        assert client.post("/v1/route", json=body, headers=_auth(KEY_A)).status_code == 429
        clock.now += 1.0
        assert client.post("/v1/route", json=body, headers=_auth(KEY_A)).status_code == 200


def test_rate_limiter_unit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1, clock=clock)
    limiter.acquire("k")
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("k")
    assert caught.value.retry_after_s == pytest.approx(0.1)
    clock.now += 0.1
    limiter.acquire("k")
    RateLimiter(0, 1, clock=clock).acquire("k")  # rate 0: never limits


def test_oversized_bodies_are_413_declared_or_chunked() -> None:
    config = ServerConfig(max_body_bytes=2000)
    with (
        live_server(create_app(make_router(), config=config)) as url,
        httpx.Client(base_url=url) as client,
    ):
        big = {"query": "x" * 3000}
        declared = client.post("/v1/route", json=big)
        assert declared.status_code == 413
        assert "max_body_bytes" in declared.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts
            yield b'{"query": "'
            for _ in range(30):
                yield b"y" * 100
            yield b'"}'

        streamed = client.post(
            "/v1/route", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert client.post("/v1/route", json={"query": "fine"}).status_code == 200


def test_cors_is_off_by_default_and_on_for_listed_origins() -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with live_server(create_app(make_router())) as url:
        response = httpx.options(f"{url}/v1/route", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    config = ServerConfig(cors_origins=("https://app.example",))
    with live_server(create_app(make_router(), config=config)) as url:
        response = httpx.options(f"{url}/v1/route", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_open_server_warns_loudly_unless_on_loopback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "stratarouter_runtime.server"):
        create_app(make_router(), config=ServerConfig(host="127.0.0.1"))
        create_app(make_router(), config=ServerConfig(host="0.0.0.0"), keys=[ApiKey(KEY_A)])
        assert "NO API KEYS" not in caplog.text
        create_app(make_router(), config=ServerConfig(host="0.0.0.0"))
    assert "NO API KEYS CONFIGURED" in caplog.text and "0.0.0.0" in caplog.text


@pytest.mark.parametrize("log_queries", [False, True])
def test_queries_and_keys_are_not_logged_unless_asked(
    caplog: pytest.LogCaptureFixture, log_queries: bool
) -> None:
    secret_query = "refund invoice for patient Zebulon Quux"
    config = ServerConfig(log_queries=log_queries)
    with caplog.at_level(logging.DEBUG):
        app = create_app(make_router(), config=config, keys=[ApiKey(KEY_A, "t")])
        with live_server(app) as url:
            response = httpx.post(
                f"{url}/v1/route", json={"query": secret_query}, headers=_auth(KEY_A)
            )
            assert response.status_code == 200
            httpx.put(
                f"{url}/v1/routes",
                headers=_auth(KEY_A),
                json={"routes": [{"name": "z", "examples": ["zz"]}]},
            )
    logged = "\n".join(str(vars(r)) for r in caplog.records)
    assert KEY_A not in logged
    assert "routed" in caplog.text  # the decision is logged, with the key's id
    assert (secret_query in logged) is log_queries


def test_keys_parse_from_env_and_file(tmp_path: Path) -> None:
    config = load_server_config(environ={"STRATAROUTER_API_KEYS": f"{KEY_A}:acme, {KEY_B}"})
    keys = parse_key_entries(config.api_keys)
    assert [(k.secret, k.tenant) for k in keys] == [(KEY_A, "acme"), (KEY_B, None)]
    assert KEY_A not in repr(config) and KEY_A not in repr(keys[0])
    path = tmp_path / "keys"
    path.write_text(f"{KEY_A}   acme  # comment\n")
    assert load_keys_file(path) == [ApiKey(KEY_A, "acme")]
    with pytest.raises(ConfigError, match="shorter than 8"):
        parse_key_entries(["short"])
    with pytest.raises(ConfigError, match="cannot read"):
        load_keys_file(tmp_path / "missing")
    auth = Authenticator([ApiKey(KEY_A, "acme")])
    with pytest.raises(AuthenticationError):
        auth.check(f"Bearer {KEY_A}x")
    assert auth.check(f"bearer {KEY_A}").tenant == "acme"


def test_rate_limiter_forgets_refilled_buckets_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from stratarouter_runtime.server import security

    monkeypatch.setattr(security, "_MAX_BUCKETS", 3)
    clock = FakeClock()
    limiter = RateLimiter(1, 1, clock=clock)
    limiter.acquire("old")
    clock.now += 5  # "old" has refilled since
    for key in ("a", "b", "c"):
        limiter.acquire(key)  # the fourth bucket triggers the clean-up
    assert set(limiter._buckets) == {"a", "b", "c"}
    with pytest.raises(RateLimitedError):
        limiter.acquire("a")  # a bucket still in use keeps its state
