"""OpenAIEncoder against a local fake of the OpenAI embeddings endpoint (no network)."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import socket
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from stratarouter_core.encoders import OpenAIEncoder
from stratarouter_core.encoders.openai_policy import APIFailureError, FailureKind
from stratarouter_core.errors import (
    ConfigError,
    EncoderError,
    InvalidQueryError,
    MissingDependencyError,
)

openai = pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")


NATIVE = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def raw_vector(text: str, dimension: int) -> np.ndarray:
    """The fake model: a deterministic, deliberately unnormalised vector per text."""
    return np.random.default_rng(zlib.crc32(text.encode())).standard_normal(dimension) * 3.0


def expected(texts: list[str], dimension: int) -> np.ndarray:
    vectors = np.array([raw_vector(text, dimension) for text in texts])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class FakeOpenAI:
    """State of the fake server: what it received, and what it should answer next."""

    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.dimension = 8
        self.requests: list[dict] = []  # every attempt, retries included
        self.scripted: list[tuple[int, dict]] = []  # (status, body) answered before normal ones
        self.drop_last = False
        self.lock = threading.Lock()

    @property
    def attempts(self) -> int:
        return len(self.requests)


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API: clients reuse connections

    def do_POST(self) -> None:
        fake: FakeOpenAI = self.server.fake  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with fake.lock:
            fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
            scripted = fake.scripted.pop(0) if fake.scripted else None
            n_request = fake.attempts
        if self.path != "/v1/embeddings":
            return self.reply(404, {"error": {"message": "not found", "type": "invalid_request"}})
        if self.headers.get("Authorization") != "Bearer test":
            return self.reply(401, {"error": {"message": "bad key", "type": "auth"}})
        if scripted is not None:
            return self.reply(*scripted)
        self.reply(200, self.embeddings(fake, body, n_request))

    def embeddings(self, fake: FakeOpenAI, body: dict, seed: int) -> dict:
        assert body["encoding_format"] == "float"
        dimension = body.get("dimensions", NATIVE.get(body["model"], fake.dimension))
        items = [
            {"object": "embedding", "index": i, "embedding": raw_vector(text, dimension).tolist()}
            for i, text in enumerate(body["input"])
        ]
        if fake.drop_last:
            items = items[:-1]
        random.Random(seed).shuffle(items)  # the client must restore the order by `index`
        tokens = sum(len(text.split()) for text in body["input"])
        return {
            "object": "list",
            "data": items,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("retry-after-ms", "1")  # keep the SDK's retry backoff short
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.fake = FakeOpenAI(server.server_address[1])  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.fake  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def make(fake):
    made: list[OpenAIEncoder] = []

    def build(model: str = "fake-embedding", **kwargs) -> OpenAIEncoder:
        kwargs.setdefault("dimension", fake.dimension if model not in NATIVE else None)
        encoder = OpenAIEncoder(model, api_key="test", base_url=fake.base_url, **kwargs)
        made.append(encoder)
        return encoder

    yield build
    for encoder in made:
        encoder.close()


TEXTS = ["book a flight", "what's the weather", "refund my order", "hello", "set an alarm"]


def test_vectors_are_correct_normalised_and_ordered(fake, make):
    vectors = make().encode(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(vectors, expected(TEXTS, 8), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    (request,) = fake.requests
    assert request["body"]["input"] == TEXTS
    assert request["body"]["model"] == "fake-embedding"
    assert "dimensions" not in request["body"]


def test_batches_split_requests(fake, make):
    texts = [f"utterance {i}" for i in range(10)]
    vectors = make(batch_size=4).encode(texts)
    assert [len(r["body"]["input"]) for r in fake.requests] == [4, 4, 2]
    assert [t for r in fake.requests for t in r["body"]["input"]] == texts
    np.testing.assert_allclose(vectors, expected(texts, 8), atol=1e-6)


def test_server_error_is_retried_by_the_policy(fake, make):
    fake.scripted = [(500, {"error": {"message": "boom", "type": "server_error"}})]
    vectors = make(max_retries=2).encode(TEXTS)
    assert fake.attempts == 2
    np.testing.assert_allclose(vectors, expected(TEXTS, 8), atol=1e-6)


def test_the_sdk_does_not_retry_on_top_of_the_policy(fake, make):
    fake.scripted = [(500, {"error": {"message": "boom", "type": "server_error"}})] * 3
    with pytest.raises(APIFailureError) as info:
        make(max_retries=0).encode(TEXTS)
    assert fake.attempts == 1 and info.value.attempts == 1
    assert info.value.kind is FailureKind.SERVER and info.value.retryable


def test_retries_exhausted_raises_encoder_error(fake, make):
    fake.scripted = [(503, {"error": {"message": "overloaded", "type": "server_error"}})] * 5
    with pytest.raises(EncoderError, match="503") as info:
        make(max_retries=1).encode(TEXTS)
    assert fake.attempts == 2
    assert "fake-embedding" in str(info.value)
    assert isinstance(info.value, APIFailureError) and info.value.attempts == 2
    assert info.value.status == 503 and info.value.kind is FailureKind.SERVER
    assert isinstance(info.value.__cause__, openai.APIStatusError)


def test_rate_limit_is_retried_and_named(fake, make):
    fake.scripted = [(429, {"error": {"message": "slow down", "type": "rate_limit"}})] * 2
    vectors = make(max_retries=2).encode(TEXTS)
    assert fake.attempts == 3
    np.testing.assert_allclose(vectors, expected(TEXTS, 8), atol=1e-6)
    fake.scripted = [(429, {"error": {"message": "slow down", "type": "rate_limit"}})] * 5
    with pytest.raises(APIFailureError) as info:
        make(max_retries=1).encode(TEXTS)
    assert info.value.kind is FailureKind.RATE_LIMIT and info.value.retry_after == 0.001


def test_bad_request_is_not_retried(fake, make):
    fake.scripted = [(400, {"error": {"message": "input too long", "type": "invalid_request"}})]
    with pytest.raises(EncoderError) as info:
        make(max_retries=3).encode(TEXTS)
    assert fake.attempts == 1
    message = str(info.value)
    assert "400" in message and "fake-embedding" in message and "input too long" in message
    assert isinstance(info.value.__cause__, openai.BadRequestError)


def test_wrong_number_of_vectors_raises(fake, make):
    fake.drop_last = True
    with pytest.raises(EncoderError, match=r"4 embeddings .* for 5 texts"):
        make().encode(TEXTS)


def test_wrong_dimension_raises(fake, make):
    fake.dimension = 16
    with pytest.raises(EncoderError, match=r"shape \(5, 16\), expected \(5, 8\)"):
        make(dimension=8).encode(TEXTS)


async def test_aencode(fake, make):
    encoder = make(batch_size=2)
    texts = [f"async utterance {i}" for i in range(7)]
    try:
        vectors = await encoder.aencode(texts)
    finally:
        await encoder.aclose()
    assert fake.attempts == 4
    np.testing.assert_allclose(vectors, expected(texts, 8), atol=1e-6)
    assert vectors.dtype == np.float32


# Abandoning loop 1's connections is what this test is about; their sockets are left to the GC.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_aencode_in_successive_event_loops(fake, make):
    encoder = make()
    # e.g. two asyncio.run() calls: the keep-alive connection of a closed loop is unusable.
    first = asyncio.run(encoder.aencode(TEXTS))

    async def second_then_close():
        try:
            return await encoder.aencode(TEXTS)
        finally:
            await encoder.aclose()

    second = asyncio.run(second_then_close())
    np.testing.assert_allclose(first, expected(TEXTS, 8), atol=1e-6)
    np.testing.assert_allclose(second, first, atol=1e-6)
    assert fake.attempts == 2
    gc.collect()


async def test_aencode_after_aclose(fake, make):
    encoder = make()
    await encoder.aencode(TEXTS)
    await encoder.aclose()
    try:
        assert (await encoder.aencode(TEXTS)).shape == (5, 8)  # a fresh client
    finally:
        await encoder.aclose()


async def test_aencode_wraps_errors(fake, make):
    fake.scripted = [(400, {"error": {"message": "nope", "type": "invalid_request"}})]
    encoder = make()
    try:
        with pytest.raises(EncoderError, match="400"):
            await encoder.aencode(TEXTS)
    finally:
        await encoder.aclose()


def test_shortened_text_embedding_3_sends_dimensions(fake, make):
    vectors = make("text-embedding-3-small", dimension=64).encode(TEXTS)
    assert fake.requests[0]["body"]["dimensions"] == 64
    assert vectors.shape == (5, 64)
    native = make("text-embedding-3-small")
    assert native.dimension == 1536
    assert native.encode(["x"]).shape == (1, 1536)
    assert "dimensions" not in fake.requests[1]["body"]


def test_given_clients(fake):
    sync_client = openai.OpenAI(api_key="test", base_url=fake.base_url, max_retries=0)
    try:
        encoder = OpenAIEncoder("fake-embedding", dimension=8, client=sync_client)
        np.testing.assert_allclose(encoder.encode(TEXTS), expected(TEXTS, 8), atol=1e-6)
        encoder.close()  # not ours to close: the client must still work
        assert sync_client.embeddings.create(input=["x"], model="m", encoding_format="float").data
    finally:
        sync_client.close()


def async_calls(fake: FakeOpenAI) -> list[list[str]]:
    """The inputs of every request an AsyncOpenAI client made (its User-Agent says so).

    The encoder calls the caller's client through `with_options(max_retries=0)`, a copy
    sharing its connections, so the spy is at the server rather than on the client object.
    """
    return [r["body"]["input"] for r in fake.requests
            if r["headers"].get("User-Agent", "").startswith("AsyncOpenAI/")]


async def test_given_async_client(fake):
    client = openai.AsyncOpenAI(api_key="test", base_url=fake.base_url,
                                default_headers={"X-Gateway": "g1"})
    try:
        encoder = OpenAIEncoder("fake-embedding", dimension=8, client=client)
        np.testing.assert_allclose(await encoder.aencode(TEXTS), expected(TEXTS, 8), atol=1e-6)
        assert async_calls(fake) == [TEXTS]  # aencode used the caller's async client
        # encode (what build_index and route call) works too, with a sync twin of the client
        np.testing.assert_allclose(encoder.encode(TEXTS[:2]), expected(TEXTS[:2], 8), atol=1e-6)
        assert async_calls(fake) == [TEXTS] and fake.attempts == 2
        assert all(r["headers"].get("X-Gateway") == "g1" for r in fake.requests)
        await encoder.aclose()  # closes the twin, not the caller's client
        assert (await client.embeddings.create(input=["x"], model="m",
                                               encoding_format="float")).data
    finally:
        await client.close()


async def test_router_with_only_an_async_client(fake):
    """`Router(encoder=OpenAIEncoder(client=AsyncOpenAI()))`: builds, routes, and awaits."""
    from stratarouter_core import Route, Router, RouteResult

    client = openai.AsyncOpenAI(api_key="test", base_url=fake.base_url)
    try:
        router = Router(encoder=OpenAIEncoder("fake-embedding", dimension=8, client=client))
        router.add_routes([Route(name="travel", examples=["book a flight"]),
                           Route(name="orders", examples=["refund my order"])])
        router.build_index()  # sync: through the twin
        assert async_calls(fake) == []
        result = await router.aroute("please book me a flight to Oslo")
        assert isinstance(result, RouteResult)
        assert async_calls(fake) == [["please book me a flight to Oslo"]]  # awaited, no thread
        await router.aroute("please book me a flight to Oslo")  # the router's cache answers
        assert len(async_calls(fake)) == 1
        assert isinstance(router.route("where is my refund"), RouteResult)
        assert len(async_calls(fake)) == 1
    finally:
        await client.close()


def test_connection_refused_raises_encoder_error():
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    encoder = OpenAIEncoder(
        "fake-embedding",
        dimension=8,
        api_key="test",
        max_retries=0,
        base_url=f"http://127.0.0.1:{port}/v1",
        timeout=5,
    )
    try:
        with pytest.raises(EncoderError, match="could not connect") as info:
            encoder.encode(["hello"])
        assert isinstance(info.value.__cause__, openai.APIConnectionError)
    finally:
        encoder.close()


def test_invalid_texts_make_no_request(fake, make):
    encoder = make()
    with pytest.raises(InvalidQueryError):
        encoder.encode(["fine", ""])
    assert fake.attempts == 0
    assert encoder.encode([]).shape == (0, 8)


def test_configuration_errors(monkeypatch):
    with pytest.raises(ConfigError, match="dimension="):
        OpenAIEncoder("my-custom-model", api_key="test")
    with pytest.raises(ConfigError):
        OpenAIEncoder("text-embedding-ada-002", api_key="test", dimension=512)
    with pytest.raises(ConfigError):
        OpenAIEncoder("text-embedding-3-small", api_key="test", dimension=4096)
    with pytest.raises(ConfigError):
        OpenAIEncoder(api_key="test", batch_size=0)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIEncoder()


def test_known_dimensions_and_fingerprint():
    small = OpenAIEncoder(api_key="test")
    assert small.dimension == 1536
    assert small.fingerprint == "openai:text-embedding-3-small:1536"
    assert OpenAIEncoder("text-embedding-3-large", api_key="test").dimension == 3072
    assert OpenAIEncoder("text-embedding-ada-002", api_key="test").dimension == 1536
    short = OpenAIEncoder("text-embedding-3-large", api_key="test", dimension=256)
    assert short.fingerprint == "openai:text-embedding-3-large:256"


def test_missing_openai_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'stratarouter\[openai\]'"):
        OpenAIEncoder(api_key="test")


def test_policy_docstring_examples():
    import doctest

    from stratarouter_core.encoders import openai_policy

    result = doctest.testmod(openai_policy)
    assert result.failed == 0 and result.attempted >= 3
