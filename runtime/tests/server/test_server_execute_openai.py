"""/v1/execute and the OpenAI-compatible endpoints, driven by the official openai SDK, against
the FakeProviderServer as the upstream provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from server_helpers import live_server, make_router

from stratarouter_runtime import RetryConfig, RuntimeConfig
from stratarouter_runtime.config import ObservabilityConfig
from stratarouter_runtime.server import ApiKey, ServerConfig, create_app
from stratarouter_runtime.testing import FakeProviderServer, Fault

KEY_A, KEY_B = "tenant-a-key-1", "tenant-b-key-2"


@pytest.fixture(scope="module")
def url(fake_provider: FakeProviderServer) -> Iterator[str]:
    runtime = RuntimeConfig(
        retries=RetryConfig(max_retries=0, delay_ms=1),
        observability=ObservabilityConfig(metrics=True),
    )
    app = create_app(
        make_router(),
        config=ServerConfig(provider_url=fake_provider.openai_base_url),
        keys=[ApiKey(KEY_A, "a"), ApiKey(KEY_B, "b")],
        runtime_config=runtime,
    )
    with live_server(app) as base:
        yield base


def _post(url: str, path: str, body: object, key: str = KEY_A) -> httpx.Response:
    return httpx.post(
        f"{url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=20
    )


def test_execute_routes_calls_the_target_and_caches(
    url: str, fake_provider: FakeProviderServer
) -> None:
    before = fake_provider.count("openai")
    first = _post(url, "/v1/execute", {"query": "please refund my invoice now"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["route"] == "billing"
    assert body["response"] == "echo: please refund my invoice now"
    assert (body["provider"], body["model"], body["cached"]) == ("local", "fake-small", False)
    assert body["usage"]["total_tokens"] > 0
    sent = fake_provider.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "You are a billing assistant."}
    again = _post(url, "/v1/execute", {"query": "please refund my invoice now"}).json()
    assert again["cached"] is True and again["response"] == body["response"]
    assert fake_provider.count("openai") == before + 1


def test_execute_streams_server_sent_events(url: str) -> None:
    events = []
    with httpx.stream(
        "POST",
        f"{url}/v1/execute",
        json={"query": "is it sunny in Oslo", "stream": True},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=20,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for block in response.read().decode().split("\n\n"):
            if block.strip():
                kind, data = block.split("\n", 1)
                events.append(
                    (kind.removeprefix("event: "), json.loads(data.removeprefix("data: ")))
                )
    chunks = [d["text"] for k, d in events if k == "chunk"]
    assert len(chunks) > 1
    assert events[-1][0] == "result"
    assert "".join(chunks) == events[-1][1]["response"] == "echo: is it sunny in Oslo"
    assert events[-1][1]["route"] == "weather"


def test_tenants_share_neither_cache_entries_nor_execution_records(url: str) -> None:
    query = {"query": "the app crashes on start every morning"}
    a1 = _post(url, "/v1/execute", query, KEY_A).json()
    a2 = _post(url, "/v1/execute", query, KEY_A).json()
    b1 = _post(url, "/v1/execute", query, KEY_B).json()
    assert (a1["cached"], a2["cached"], b1["cached"]) == (False, True, False)
    auth = {"Authorization": f"Bearer {KEY_A}"}
    mine = httpx.get(f"{url}/v1/executions/{a1['execution_id']}", headers=auth)
    assert mine.status_code == 200
    assert (mine.json()["status"], mine.json()["route"]) == ("succeeded", "tech")
    theirs = httpx.get(f"{url}/v1/executions/{b1['execution_id']}", headers=auth)
    assert theirs.status_code == 404
    assert httpx.get(f"{url}/v1/executions/nope", headers=auth).status_code == 404


def test_provider_failure_is_502_json(url: str, fake_provider: FakeProviderServer) -> None:
    fake_provider.add_faults(Fault.http_error(500))
    response = _post(url, "/v1/execute", {"query": "weather forecast for the weekend in Rome"})
    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"].endswith("Error")
    fake_provider.reset()


def test_execute_rejects_bad_input(url: str) -> None:
    assert _post(url, "/v1/execute", {"query": ""}).status_code == 422
    assert _post(url, "/v1/execute", {"query": "hi", "stream": "yes"}).status_code == 422


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY_A, max_retries=0) as sdk:
        yield sdk


def test_openai_sdk_sync_auto_routes_and_executes(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "I was charged twice for one order"}]
    )
    assert completion.choices[0].message.content == "echo: I was charged twice for one order"
    assert completion.model == "fake-small"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.model_extra is not None
    assert completion.model_extra["stratarouter"]["route"] == "billing"


def test_openai_sdk_streaming(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="auto",
        stream=True,
        messages=[{"role": "user", "content": "will it rain today in Paris"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: will it rain today in Paris"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_openai_sdk_async_and_async_streaming(url: str) -> None:
    async def main() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=f"{url}/v1", api_key=KEY_A, max_retries=0
        ) as aclient:
            messages = [{"role": "user", "content": "error 500 when I log in today"}]
            done = await aclient.chat.completions.create(model="auto", messages=messages)
            stream = await aclient.chat.completions.create(
                model="auto", messages=messages, stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return done.choices[0].message.content or "", "".join(parts)

    done, streamed = asyncio.run(main())
    assert done == streamed == "echo: error 500 when I log in today"


def test_a_conversation_and_a_concrete_model_pass_through_whole(
    client: openai.OpenAI, fake_provider: FakeProviderServer
) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "refund my invoice"},
        {"role": "assistant", "content": "which one?"},
        {"role": "user", "content": "invoice 42"},
    ]
    auto = client.chat.completions.create(model="auto", messages=messages)
    assert auto.choices[0].message.content == "echo: invoice 42"
    assert [m["role"] for m in fake_provider.requests[-1].body["messages"]] == [
        "system",
        "system",
        "user",
        "assistant",
        "user",
    ]  # the route's prompt, then the client's
    concrete = client.chat.completions.create(
        model="local:fake-large", messages=messages, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in concrete if c.choices)
    assert text == "echo: invoice 42"
    assert fake_provider.requests[-1].model == "fake-large"
    bare = client.chat.completions.create(model="fake-small", messages=messages[1:2])
    assert bare.choices[0].message.content == "echo: refund my invoice"


def test_openai_sdk_models_and_errors(client: openai.OpenAI, url: str) -> None:
    assert {m.id for m in client.models.list()} == {"auto", "local:fake-small"}
    with pytest.raises(openai.NotFoundError, match="not configured"):
        client.chat.completions.create(
            model="anthropic:claude", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="auto", messages=[])
    with (
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong-key-123", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()
