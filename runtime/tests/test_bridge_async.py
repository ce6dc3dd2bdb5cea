"""The bridge's async paths never block the event loop on a synchronous encode."""

from __future__ import annotations

import asyncio
import threading

import pytest
from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime.bridge import CoreRuntimeBridge
from stratarouter_runtime.config import RuntimeConfig
from stratarouter_runtime.testing import FakeProviderServer

pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")

from stratarouter_runtime.providers import OpenAIClient

_WAIT_S = 5.0  # bounded: a blocked loop fails the test after this, it does not hang


class BlockingEncoder(BaseEncoder):
    """A synchronous encoder that blocks until the test, running on the loop, releases it."""

    dimension = 64

    def __init__(self, wait_s: float = _WAIT_S) -> None:
        self._inner = HashingEncoder(dimension=self.dimension)
        self.wait_s = wait_s
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released_in_time: list[bool] = []

    def encode(self, texts):
        self.entered.set()
        self.released_in_time.append(self.release.wait(self.wait_s))
        return self._inner.encode(texts)


@pytest.fixture
def server():
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture
def router():
    router = Router(encoder=HashingEncoder(dimension=64), config=RouterConfig(threshold=0.2))
    router.add_routes([
        Route(name="billing", examples=["refund my invoice", "I was charged twice"],
              metadata={"provider": "openai", "model": "gpt-4o-mini"}),
    ])
    router.build_index()
    return router


async def _release_from_the_loop(encoder: BlockingEncoder) -> None:
    """Runs on the event loop: it can see `entered` only if the encode is not on the loop."""
    for _ in range(int(_WAIT_S / 0.01)):
        if encoder.entered.is_set():
            encoder.release.set()
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("path", ["execute", "stream", "run"])
async def test_a_blocking_encode_leaves_the_loop_free(server, router, path):
    encoder = BlockingEncoder()
    async with OpenAIClient(api_key="k", base_url=server.openai_base_url) as client:
        bridge = CoreRuntimeBridge(RuntimeConfig(), router, {"openai": client}, encoder=encoder)
        if path == "run":  # the router's own encoder blocks: routing must not stall the loop
            router.encoder = encoder
        async with bridge:
            query = "refund my invoice"
            decision = router.route(query) if path != "run" else None

            async def work() -> str:
                if path == "execute":
                    return (await bridge.execute(decision, query)).response
                if path == "stream":
                    return "".join([chunk async for chunk in bridge.stream(decision, query)])
                return (await bridge.run(query)).response

            answer, _ = await asyncio.gather(work(), _release_from_the_loop(encoder))
    assert answer == f"echo: {query}"
    assert encoder.released_in_time and all(encoder.released_in_time)


def test_the_blocking_encoder_does_block_a_caller_on_the_loop():
    # the control: encoding on the loop thread starves `_release_from_the_loop`, so the test
    # above would see a timed-out wait if the bridge called `encode` on the loop
    encoder = BlockingEncoder(wait_s=0.2)

    async def on_the_loop() -> None:
        releaser = asyncio.ensure_future(_release_from_the_loop(encoder))
        await asyncio.sleep(0)
        encoder.encode(["x"])  # blocks the loop: the releaser cannot run meanwhile
        await releaser

    asyncio.run(on_the_loop())
    assert encoder.released_in_time == [False]
