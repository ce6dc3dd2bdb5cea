"""Provider clients driven through their official SDKs against the local fake provider server."""

from __future__ import annotations

import pickle
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from stratarouter_core.errors import ConfigError, MissingDependencyError

from stratarouter_runtime.errors import (
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
    RetryExhaustedError,
)
from stratarouter_runtime.providers import (
    DEFAULT_PRICES,
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    ModelPrice,
    PriceTable,
    Usage,
)
from stratarouter_runtime.providers._sdk import (
    error_from_status,
    normalize_finish_reason,
    parse_retry_after,
)
from stratarouter_runtime.testing import FakeProviderServer, Fault

PROMPT = "what is the weather in Paris"
SYSTEM = "Be brief."
EXPECTED = f"echo: {PROMPT}"


def _openai(server, **kw):
    pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")
    from stratarouter_runtime.providers import OpenAIClient

    kw.setdefault("api_key", "test-key")
    return OpenAIClient(base_url=server.openai_base_url, **kw)


def _local(server, **kw):
    pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")
    from stratarouter_runtime.providers import LocalClient

    return LocalClient(server.openai_base_url, **kw)


def _anthropic(server, **kw):
    pytest.importorskip("anthropic", reason="the Anthropic client needs the [anthropic] extra (make test installs it)")
    from stratarouter_runtime.providers import AnthropicClient

    return AnthropicClient(api_key="test-key", base_url=server.base_url, **kw)


def _google(server, **kw):
    pytest.importorskip("google.genai", reason="the Gemini client needs the [google] extra (make test installs it)")
    from stratarouter_runtime.providers import GoogleClient

    kw.setdefault("api_key", "test-key")
    return GoogleClient(base_url=server.base_url, **kw)


# name -> (factory, model, wire format the server sees)
CLIENTS = {
    "openai": (_openai, "gpt-4o-mini", "openai"),
    "local": (_local, "llama3.2", "openai"),
    "anthropic": (_anthropic, "claude-haiku-4-5", "anthropic"),
    "google": (_google, "gemini-2.0-flash", "gemini"),
}


@pytest.fixture
def server():
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture(params=sorted(CLIENTS))
async def llm(request, server):
    factory, model, api = CLIENTS[request.param]
    client = factory(server)
    client.test_model, client.test_api = model, api
    yield client
    await client.aclose()


def _request(llm, **kw):
    return CompletionRequest.from_text(llm.test_model, PROMPT, system_prompt=SYSTEM, **kw)


def _system_seen(api, body):
    if api == "openai":
        first = body["messages"][0]
        return first["content"] if first["role"] == "system" else None
    if api == "anthropic":
        return body.get("system")
    return " ".join(p["text"] for p in body["systemInstruction"]["parts"])


PROMPT_WORDS, ANSWER_WORDS = len(f"{SYSTEM} {PROMPT}".split()), len(EXPECTED.split())


def _check_usage_and_cost(llm, response, prompt=PROMPT_WORDS, answer=ANSWER_WORDS):
    """The fake server counts words as tokens; the cost follows the default price table."""
    assert response.usage == Usage(prompt, answer, prompt + answer)
    if llm.name == "local":
        assert (response.cost_usd, response.cost_known) == (0.0, True)
    else:
        price = DEFAULT_PRICES[llm.test_model]
        expected = (prompt * price.input_per_mtok + answer * price.output_per_mtok) / 1e6
        assert response.cost_usd == pytest.approx(expected)
        assert response.cost_usd > 0 and response.cost_known


# -- complete ----------------------------------------------------------------------------------


async def test_complete_returns_text_usage_finish_reason_and_cost(llm, server):
    response = await llm.complete(_request(llm, temperature=0.2, max_tokens=50), timeout=10)

    assert response.text == EXPECTED
    assert response.provider == llm.name
    assert response.model == llm.test_model
    assert response.finish_reason == "stop"
    _check_usage_and_cost(llm, response)
    (seen,) = server.requests
    assert seen.api == llm.test_api and seen.model == llm.test_model and not seen.stream
    assert _system_seen(llm.test_api, seen.body) == SYSTEM


async def test_request_fields_use_each_provider_wire_names(llm, server):
    await llm.complete(
        _request(llm, temperature=0.2, max_tokens=50, params={"seed": 7}), timeout=10
    )
    body = server.requests[0].body
    if llm.name == "openai":
        assert body["max_completion_tokens"] == 50 and body["seed"] == 7
        assert server.requests[0].headers["authorization"] == "Bearer test-key"
    elif llm.name == "local":
        assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    elif llm.name == "anthropic":
        assert body["max_tokens"] == 50 and body["temperature"] == 0.2
        headers = server.requests[0].headers
        # Older SDKs send x-api-key, newer ones a bearer token; both carry the key.
        assert "test-key" in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
        assert "anthropic-version" in headers
        assert all(m["role"] != "system" for m in body["messages"])
    else:
        assert body["generationConfig"]["maxOutputTokens"] == 50
        assert body["generationConfig"]["seed"] == 7
        assert server.requests[0].headers["x-goog-api-key"] == "test-key"


async def test_reply_cut_by_max_tokens_reports_length(llm, server):
    server.reply = "one two three four five"
    response = await llm.complete(_request(llm, max_tokens=2), timeout=10)
    assert (response.text, response.finish_reason) == ("one two", "length")


async def test_conversation_roles_reach_the_provider(llm, server):
    request = CompletionRequest(
        model=llm.test_model,
        messages=[
            ChatMessage("user", "first question"),
            ChatMessage("assistant", "first answer"),
            ChatMessage("user", "second question"),
        ],
    )
    response = await llm.complete(request, timeout=10)
    assert response.text == "echo: second question"
    body = server.requests[0].body
    roles = (
        [c["role"] for c in body["contents"]]
        if llm.test_api == "gemini"
        else [m["role"] for m in body["messages"]]
    )
    assistant = "model" if llm.test_api == "gemini" else "assistant"
    assert roles == ["user", assistant, "user"]


# -- failures ----------------------------------------------------------------------------------


async def test_timeout_raises_provider_timeout_within_bound(llm, server):
    server.add_faults(Fault.delay(5.0))
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError) as caught:
        await llm.complete(_request(llm), timeout=0.3)
    assert time.perf_counter() - started < 3.0  # generous: the bound is 0.3 s
    assert caught.value.retryable and caught.value.provider == llm.name


async def test_rate_limit_carries_retry_after(llm, server):
    server.add_faults(Fault.rate_limit(retry_after=0.25))
    with pytest.raises(RateLimitError) as caught:
        await llm.complete(_request(llm), timeout=10)
    assert caught.value.status == 429 and caught.value.retryable
    assert caught.value.retry_after == pytest.approx(0.25)


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_are_retryable(llm, server, status):
    server.add_faults(Fault.server_error(status))
    with pytest.raises(ProviderServerError) as caught:
        await llm.complete(_request(llm), timeout=10)
    assert caught.value.status == status and caught.value.retryable


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_client_errors_are_final(llm, server, status):
    server.add_faults(Fault.http_error(status, message="model not supported"))
    with pytest.raises(ProviderRequestError) as caught:
        await llm.complete(_request(llm), timeout=10)
    assert caught.value.status == status and not caught.value.retryable
    assert "model not supported" in str(caught.value)


async def test_malformed_body_raises_malformed_response(llm, server):
    server.add_faults(Fault.malformed())
    with pytest.raises(MalformedResponseError) as caught:
        await llm.complete(_request(llm), timeout=10)
    assert not caught.value.retryable and caught.value.__cause__ is not None


class _Endpoint:
    """Where a client is pointed when no fake server should answer."""

    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.openai_base_url = self.base_url + "/v1"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_refused_connection_is_retryable(llm):
    factory, model, _ = CLIENTS[llm.name]
    client = factory(_Endpoint(_closed_port()))
    try:
        with pytest.raises(ProviderError) as caught:
            await client.complete(CompletionRequest.from_text(model, "hi"), timeout=5)
    finally:
        await client.aclose()
    assert isinstance(caught.value, (ProviderConnectionError, ProviderTimeoutError))
    assert caught.value.retryable


# -- streaming ---------------------------------------------------------------------------------


async def test_stream_yields_chunks_in_order_while_the_answer_is_still_being_sent(llm, server):
    hold = Fault.hold_stream(after_chunks=1, max_hold_s=15.0)
    server.add_faults(hold)
    chunks, before_release = [], []
    async for chunk in llm.stream(_request(llm), timeout=10):
        if not hold.released:
            # The server is blocked after its first chunk: this one arrived mid-answer.
            before_release.append(chunk)
            hold.release()
        chunks.append(chunk)
    assert len(chunks) > 1
    assert "".join(chunks) == EXPECTED
    assert before_release == [chunks[0]] == ["echo: "]
    assert not hold.expired  # a client that buffered the answer would have waited it out
    assert server.requests[0].stream


async def test_stream_broken_midway_raises_after_the_partial_chunks(llm, server):
    server.add_faults(Fault.break_stream(after_chunks=2))
    chunks = []
    stream = llm.stream(_request(llm), timeout=10)
    with pytest.raises(ProviderError) as caught:
        async for chunk in stream:
            chunks.append(chunk)
    assert chunks == ["echo: ", "what "]
    assert caught.value.retryable
    assert stream.result is None  # a partial answer never gets a final response


async def test_stream_cut_short_without_its_end_marker_is_an_error(llm, server):
    server.add_faults(Fault.truncate_stream(after_chunks=2))
    chunks = []
    stream = llm.stream(_request(llm), timeout=10)
    with pytest.raises(ProviderConnectionError) as caught:
        async for chunk in stream:
            chunks.append(chunk)
    assert chunks == ["echo: ", "what "]
    assert caught.value.retryable
    assert stream.result is None


async def test_stream_reports_usage_finish_reason_and_cost_once_complete(llm, server):
    stream = llm.stream(_request(llm, max_tokens=50), timeout=10)
    chunks = []
    async for chunk in stream:
        assert stream.result is None  # nothing final before the last event
        chunks.append(chunk)
    response = stream.result
    assert isinstance(response, CompletionResponse)
    assert response.text == "".join(chunks) == EXPECTED
    assert (response.provider, response.model) == (llm.name, llm.test_model)
    assert response.finish_reason == "stop"
    _check_usage_and_cost(llm, response)


async def test_stream_cut_by_max_tokens_reports_length_and_its_tokens(llm, server):
    server.reply = "one two three four five"
    stream = llm.stream(_request(llm, max_tokens=2), timeout=10)
    assert "".join([chunk async for chunk in stream]) == "one two"
    assert stream.result.finish_reason == "length"
    _check_usage_and_cost(llm, stream.result, answer=2)


async def test_prompt_cache_reads_count_as_prompt_tokens(llm, server):
    # Anthropic reports cache reads apart from input_tokens; the others count them inside.
    server.cached_prompt_tokens = 3
    response = await llm.complete(_request(llm), timeout=10)
    stream = llm.stream(_request(llm), timeout=10)
    assert "".join([chunk async for chunk in stream]) == EXPECTED
    for answer in (response, stream.result):
        _check_usage_and_cost(llm, answer)


async def test_stream_from_a_server_that_sends_no_usage_reports_it_unknown(server):
    server.stream_usage = False  # ignores stream_options.include_usage, as some servers do
    openai_client, local = _openai(server), _local(server)
    try:
        for client, model in ((openai_client, "gpt-4o"), (local, "llama3.2")):
            stream = client.stream(CompletionRequest.from_text(model, "hi"), timeout=10)
            assert "".join([chunk async for chunk in stream]) == "echo: hi"
            response = stream.result
            assert response.usage is None and response.finish_reason == "stop"
            # Unpriced without usage; a local server costs nothing whatever the tokens.
            expected_known = client is local
            assert (response.cost_usd, response.cost_known) == (0.0, expected_known)
    finally:
        await openai_client.aclose()
        await local.aclose()
    assert all(r.body["stream_options"] == {"include_usage": True} for r in server.requests)


async def test_stream_stalled_between_chunks_times_out(llm, server):
    server.add_faults(Fault.slow_stream(delay_s=5.0))
    chunks = []
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        async for chunk in llm.stream(_request(llm), timeout=0.3):
            chunks.append(chunk)
    assert chunks == ["echo: "]
    assert time.perf_counter() - started < 3.0


async def test_slow_stream_within_timeout_completes(llm, server):
    server.add_faults(Fault.slow_stream(delay_s=0.05))
    chunks = [chunk async for chunk in llm.stream(_request(llm), timeout=5)]
    assert "".join(chunks) == EXPECTED and len(chunks) == len(EXPECTED.split())


async def test_stream_with_malformed_event_raises(llm, server):
    server.add_faults(Fault.malformed())
    with pytest.raises(MalformedResponseError):
        async for _ in llm.stream(_request(llm), timeout=10):
            pass


async def test_stream_error_status_before_first_chunk(llm, server):
    server.add_faults(Fault.rate_limit(retry_after=2))
    with pytest.raises(RateLimitError) as caught:
        async for _ in llm.stream(_request(llm), timeout=10):
            pass
    assert caught.value.retry_after == pytest.approx(2.0)


# -- client specifics --------------------------------------------------------------------------


async def test_openai_stream_asks_for_usage_and_local_can_opt_out(server):
    openai_client, local = _openai(server), _local(server, stream_usage=False)
    try:
        streams = []
        for client, model in ((openai_client, "gpt-4o"), (local, "llama3.2")):
            streams.append(client.stream(CompletionRequest.from_text(model, "hi"), timeout=10))
            assert "".join([c async for c in streams[-1]]) == "echo: hi"
    finally:
        await openai_client.aclose()
        await local.aclose()
    first, second = server.requests
    assert first.body["stream_options"] == {"include_usage": True}
    assert "stream_options" not in second.body
    assert streams[0].result.usage == Usage.of(1, 2)
    assert streams[1].result.usage is None  # not asked for: unknown, not zero


async def test_local_client_resolves_model_aliases_and_costs_nothing(server):
    client = _local(server, model_aliases={"small": "llama3.2:3b-instruct-q4_K_M"})
    try:
        response = await client.complete(CompletionRequest.from_text("small", "hi"), timeout=10)
    finally:
        await client.aclose()
    assert server.requests[0].model == "llama3.2:3b-instruct-q4_K_M"
    assert response.provider == "local" and response.cost_usd == 0.0


async def test_unknown_model_costs_zero_and_is_flagged(server):
    client = _openai(server)
    try:
        response = await client.complete(
            CompletionRequest.from_text("my-finetune", "hi"), timeout=10
        )
    finally:
        await client.aclose()
    assert (response.cost_usd, response.cost_known) == (0.0, False)


async def test_anthropic_defaults_max_tokens_and_merges_system_messages(server):
    client = _anthropic(server, default_max_tokens=321)
    request = CompletionRequest(
        model="claude-haiku-4-5",
        messages=[ChatMessage("system", "Use French."), ChatMessage("user", "hi")],
        system_prompt=SYSTEM,
    )
    try:
        await client.complete(request, timeout=10)
    finally:
        await client.aclose()
    body = server.requests[0].body
    assert body["max_tokens"] == 321
    assert body["system"] == f"{SYSTEM}\n\nUse French."
    assert body["messages"] == [{"role": "user", "content": "hi"}]


async def test_google_rejects_unknown_generation_params_without_calling(server):
    client = _google(server)
    request = CompletionRequest.from_text("gemini-2.0-flash", "hi", params={"no_such_field": 1})
    try:
        with pytest.raises(ProviderRequestError):
            await client.complete(request, timeout=10)
    finally:
        await client.aclose()
    assert server.count() == 0


async def test_google_rate_limit_reads_retry_info_from_the_body(server):
    client = _google(server)
    server.add_faults(Fault.rate_limit(retry_after=3))
    try:
        with pytest.raises(RateLimitError) as caught:
            await client.complete(CompletionRequest.from_text("gemini-2.0-flash", "hi"), timeout=10)
    finally:
        await client.aclose()
    assert caught.value.retry_after == pytest.approx(3.0)


def test_missing_api_keys_are_config_errors(monkeypatch):
    for name in ("OPENAI_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    endpoint = _Endpoint(_closed_port())
    pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")
    with pytest.raises(ConfigError, match="api_key"):
        _openai(endpoint, api_key=None)
    pytest.importorskip("google.genai", reason="the Gemini client needs the [google] extra (make test installs it)")
    with pytest.raises(ConfigError):
        _google(endpoint, api_key=None)


async def test_invalid_timeout_is_a_config_error(server):
    client = _openai(server)
    try:
        with pytest.raises(ConfigError):
            await client.complete(CompletionRequest.from_text("gpt-4o", "hi"), timeout=0)
    finally:
        await client.aclose()


# -- value objects, price table, error helpers -------------------------------------------------


def test_completion_request_validates():
    with pytest.raises(ConfigError):
        CompletionRequest(model="m", messages=[])
    with pytest.raises(ConfigError):
        CompletionRequest.from_text("", "hi")
    with pytest.raises(ConfigError):
        CompletionRequest.from_text("m", "hi", max_tokens=0)
    with pytest.raises(ConfigError):
        ChatMessage("tool", "x")  # type: ignore[arg-type]
    request = CompletionRequest.from_text("m", "hi", params={"a": 1})
    with pytest.raises(TypeError):
        request.params["a"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-audio-preview", None),  # a different product, not a snapshot of gpt-4o
        ("gpt-4omega", None),
        ("llama3.2", None),
    ],
)
def test_price_table_resolves_snapshot_names(model, priced_as):
    assert PriceTable().resolve(model) == priced_as


def test_price_table_costs_overrides_and_unknowns():
    usage = Usage.of(2_000_000, 1_000_000)
    table = PriceTable()
    assert table.cost("gpt-4o", usage).usd == pytest.approx(2 * 2.50 + 10.00)
    estimate = table.cost("who-knows", usage)
    assert (estimate.usd, estimate.known) == (0.0, False)

    custom = table.with_prices({"gpt-4o": (1.0, 1.0), "house-model": ModelPrice(0.5, 0.5)})
    assert custom.cost("gpt-4o-2024-08-06", usage).usd == pytest.approx(3.0)
    assert custom.cost("house-model", usage).usd == pytest.approx(1.5)
    assert table.cost("gpt-4o", usage).usd == pytest.approx(15.0)  # the original is unchanged

    aliased = PriceTable({"gpt-4o": (2.5, 10.0)}, aliases={"prod-deployment": "gpt-4o"})
    assert aliased.cost("prod-deployment", usage).priced_as == "gpt-4o"
    assert len(aliased) == 1 and "claude-3-5-haiku" not in aliased
    assert PriceTable({}).cost("gpt-4o", usage).known is False
    with pytest.raises(ConfigError):
        PriceTable({"bad": (1.0,)})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        ModelPrice(-1.0, 1.0)


def test_retry_after_parsing():
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now.timestamp()) == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (408, ProviderTimeoutError, True),
        (429, RateLimitError, True),
        (500, ProviderServerError, True),
        (502, ProviderServerError, True),
        (400, ProviderRequestError, False),
        (403, ProviderRequestError, False),
        (409, ProviderRequestError, False),
    ],
)
def test_status_mapping(status, kind, retryable):
    error = error_from_status("p", status, "boom", {"retry-after": "3"})
    assert type(error) is kind and error.retryable is retryable and error.status == status


def test_finish_reasons_are_normalised():
    assert [
        normalize_finish_reason(r)
        for r in ("stop", "end_turn", "STOP", "max_tokens", "MAX_TOKENS", "tool_use", "SAFETY")
    ] == ["stop", "stop", "stop", "length", "length", "tool_calls", "content_filter"]
    assert normalize_finish_reason(None) is None
    assert normalize_finish_reason("FINISH_REASON_UNSPECIFIED") is None
    assert normalize_finish_reason("RECITATION") == "recitation"


def test_provider_errors_survive_pickling():
    error = RetryExhaustedError("gave up", provider="openai", attempts=4, status=503)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.attempts, copy.status, copy.retryable) == (
        RetryExhaustedError,
        "gave up",
        4,
        503,
        False,
    )
    limited = pickle.loads(pickle.dumps(RateLimitError("slow down", provider="x", retry_after=2)))
    assert (limited.retryable, limited.retry_after, limited.provider) == (True, 2, "x")


# -- packaging: lazy SDK imports ---------------------------------------------------------------


def test_importing_the_runtime_imports_no_sdk():
    code = (
        "import sys, stratarouter_runtime, stratarouter_runtime.testing\n"
        "loaded = [m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(
    ("module", "client", "extra"),
    [
        ("openai", "OpenAIClient", "openai"),
        ("openai", "LocalClient", "openai"),
        ("anthropic", "AnthropicClient", "anthropic"),
        ("google.genai", "GoogleClient", "google"),
    ],
)
def test_missing_sdk_names_the_extra(monkeypatch, module, client, extra):
    from stratarouter_runtime import providers

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError, match=rf"stratarouter-runtime\[{extra}\]"):
        getattr(providers, client)(base_url="http://127.0.0.1:9")


# -- the fake server's embeddings endpoint -----------------------------------------------------


async def test_fake_embeddings_in_float_and_base64_agree(server):
    pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")
    import openai

    client = openai.AsyncOpenAI(api_key="k", base_url=server.openai_base_url, max_retries=0)
    texts = ["cancel my order", "cancel my order please", "weather in Paris"]
    try:
        plain = await client.embeddings.create(
            model="text-embedding-3-small", input=texts, encoding_format="float"
        )
        packed = await client.embeddings.create(model="text-embedding-3-small", input=texts)
        sized = await client.embeddings.create(
            model="text-embedding-3-small", input="hi", dimensions=16
        )
    finally:
        await client.close()
    assert server.requests[1].body["encoding_format"] == "base64"  # the SDK's default
    floats = [d.embedding for d in plain.data]
    for decoded, plain_vector in zip(packed.data, floats, strict=True):
        assert list(decoded.embedding) == pytest.approx(plain_vector, abs=1e-6)
    assert all(sum(x * x for x in v) == pytest.approx(1.0) for v in floats)

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(floats[0], floats[1]) > cosine(floats[0], floats[2])
    assert len(sized.data[0].embedding) == 16
    assert plain.usage.prompt_tokens == 10


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_google_blocked_prompt_is_a_content_filter_finish_not_an_error(server, streamed):
    client = _google(server)
    server.add_faults(Fault.prompt_blocked("SAFETY"))
    request = CompletionRequest.from_text("gemini-2.0-flash", "something it refuses")
    try:
        if streamed:
            stream = client.stream(request, timeout=10)
            assert [chunk async for chunk in stream] == []
            response = stream.result
        else:
            response = await client.complete(request, timeout=10)
    finally:
        await client.aclose()
    assert response is not None and response.text == ""
    assert response.finish_reason == "content_filter"
    assert response.usage is not None and response.usage.completion_tokens == 0
    assert server.count() == 1  # a refusal is an answer: never retried
