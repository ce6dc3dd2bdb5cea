"""Server-side micro-batching: concurrent requests share encoder calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import httpx
import numpy as np
from numpy.typing import NDArray
from server_helpers import live_server, make_router, make_routes
from stratarouter_core import Router, RouterConfig
from stratarouter_core.errors import EncoderError
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime.server import EncodeBatcher, ServerConfig, create_app


class CountingEncoder(HashingEncoder):
    """Records the size of every encode call; fails any batch containing BOOM."""

    def __init__(self) -> None:
        super().__init__(64)
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        with self._lock:
            self.sizes.append(len(texts))
        if any("BOOM" in t for t in texts):
            raise EncoderError("cannot encode BOOM")
        return super().encode(texts)


async def test_concurrent_encodes_share_calls_and_match_one_by_one() -> None:
    encoder = CountingEncoder()
    batcher = EncodeBatcher(encoder.encode, max_wait_s=0.02, max_batch=64)
    texts = [f"query number {i}" for i in range(40)]
    vectors = await asyncio.gather(*(batcher.encode(t) for t in texts))
    assert batcher.calls == len(encoder.sizes) <= 2 and sum(encoder.sizes) == 40
    np.testing.assert_allclose(np.stack(vectors), HashingEncoder(64).encode(texts), atol=1e-6)


async def test_batches_are_bounded_by_max_batch() -> None:
    encoder = CountingEncoder()
    batcher = EncodeBatcher(encoder.encode, max_wait_s=0.05, max_batch=8)
    await asyncio.gather(*(batcher.encode(f"q {i}") for i in range(30)))
    assert max(encoder.sizes) <= 8 and sum(encoder.sizes) == 30
    assert len(encoder.sizes) == 4  # 8 + 8 + 8 + 6


async def test_one_failing_text_fails_only_its_own_request() -> None:
    encoder = CountingEncoder()
    batcher = EncodeBatcher(encoder.encode, max_wait_s=0.02)
    results = await asyncio.gather(
        batcher.encode("fine one"),
        batcher.encode("BOOM"),
        batcher.encode("fine two"),
        return_exceptions=True,
    )
    assert isinstance(results[1], EncoderError)
    assert all(isinstance(r, np.ndarray) for r in (results[0], results[2]))
    assert isinstance(await batcher.encode("still works"), np.ndarray)


def test_concurrent_http_requests_make_fewer_encoder_calls() -> None:
    encoder = CountingEncoder()
    router = Router(
        encoder=encoder,
        config=RouterConfig(threshold=0.0, encoder_cache_size=0),
        routes=make_routes(),
    )
    router.build_index()
    encoder.sizes.clear()
    app = create_app(router, config=ServerConfig(encode_wait_ms=20))
    queries = [f"refund my invoice number {i}" for i in range(32)]

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            return await asyncio.gather(
                *(client.post("/v1/route", json={"query": q}) for q in queries)
            )

    with live_server(app) as url:
        responses = asyncio.run(burst(url))
        boom = httpx.post(f"{url}/v1/route", json={"query": "BOOM"})
        metrics = httpx.get(f"{url}/metrics").text
    assert [r.status_code for r in responses] == [200] * 32
    assert {r.json()["route"] for r in responses} == {"billing"}
    assert sum(encoder.sizes) == 32 + 1
    assert len(encoder.sizes) < 32 / 4, encoder.sizes  # far fewer calls than requests
    assert boom.status_code == 503 and "BOOM" in boom.json()["error"]["message"]
    assert "stratarouter_encode_batch_size_count" in metrics


def test_micro_batching_with_the_real_local_encoder(local_encoder: object) -> None:
    router = Router(encoder=local_encoder, config=RouterConfig(threshold=0.0), routes=make_routes())
    router.build_index()
    app = create_app(router, config=ServerConfig(encode_wait_ms=5))
    queries = ["I was double charged", "is it going to snow", "the app keeps crashing"] * 6

    async def burst(url: str) -> list[str]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post("/v1/route", json={"query": q}) for q in queries)
            )
            return [a.json()["route"] for a in answers]

    with live_server(app) as url:
        routes = asyncio.run(burst(url))
    batcher = app.state.server.batcher
    assert routes == ["billing", "weather", "tech"] * 6
    assert batcher.texts == len(queries) and batcher.calls < len(queries) / 2


def test_zero_wait_still_answers() -> None:
    app = create_app(make_router(), config=ServerConfig(encode_wait_ms=0.0))
    with live_server(app) as url:
        assert (
            httpx.post(f"{url}/v1/route", json={"query": "is it sunny"}).json()["route"]
            == "weather"
        )


async def test_a_lone_client_does_not_wait_and_a_burst_still_batches() -> None:
    encoder = CountingEncoder()
    batcher = EncodeBatcher(encoder.encode, max_wait_s=0.25, max_batch=64)
    await batcher.encode("first")  # waits: the batcher assumes company until it sees none
    started = asyncio.get_running_loop().time()
    for i in range(3):
        await batcher.encode(f"one at a time {i}")
    assert asyncio.get_running_loop().time() - started < 0.2  # three waits would be 0.75 s
    encoder.sizes.clear()
    await asyncio.gather(*(batcher.encode(f"burst {i}") for i in range(10)))
    assert sum(encoder.sizes) == 10 and len(encoder.sizes) <= 2, encoder.sizes
