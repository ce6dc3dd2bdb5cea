"""A route whose target is a model pool runs on the model the ModelRouter picks (fake server)."""

from __future__ import annotations

import asyncio
import time

import pytest
from stratarouter_core import ModelRouter, ModelSpec, Route, Router, RouterConfig
from stratarouter_core.errors import ConfigError
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime.bridge import CoreRuntimeBridge
from stratarouter_runtime.config import RetryConfig, RuntimeConfig
from stratarouter_runtime.testing import FakeProviderServer

pytest.importorskip(
    "openai", reason="the OpenAI client needs the [openai] extra (make test installs it)"
)

from stratarouter_runtime.providers import OpenAIClient

HARD = [f"prove theorem {i} about primes" for i in range(40)]
EASY = [f"say hello to friend {i}" for i in range(40)]
POOL = {
    "provider": "openai",
    "models": ["gpt-4o", {"model": "gpt-4o-mini", "params": {"max_tokens": 32}}],
    "min_quality": 0.8,
    "system_prompt": "Answer well.",
}


@pytest.fixture(scope="module")
def model_router():
    mr = ModelRouter(
        [
            ModelSpec("gpt-4o", 2.5, 10.0),
            ModelSpec("gpt-4o-mini", 0.15, 0.6),
            ModelSpec("o3", 10.0, 40.0),
        ],
        encoder=HashingEncoder(dimension=64),
    )
    scores = [{"gpt-4o": 1.0, "gpt-4o-mini": 0.0, "o3": 1.0}] * 40
    scores += [{"gpt-4o": 1.0, "gpt-4o-mini": 1.0, "o3": 1.0}] * 40
    mr.fit(HARD + EASY, scores)
    return mr


@pytest.fixture(scope="module")
def router():
    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.0))
    router.add_routes(
        [
            Route(name="assistant", examples=["prove a theorem", "say hello"], metadata=POOL),
            Route(
                name="weather",
                examples=["will it rain today"],
                metadata={"provider": "openai", "models": ["gpt-4o-mini"]},
            ),
        ]
    )
    router.build_index()
    return router


@pytest.fixture
async def client():
    with FakeProviderServer() as server:
        client = OpenAIClient(api_key="test", base_url=server.openai_base_url)
        yield server, client
        await client.aclose()


def _bridge(router, client, model_router):
    config = RuntimeConfig(retries=RetryConfig(delay_ms=1.0))
    return CoreRuntimeBridge(config, router, {"openai": client}, model_router=model_router)


async def test_each_query_runs_on_the_model_the_model_router_picks(router, client, model_router):
    server, openai = client
    decision = router.route("say hello to friend 99")
    assert decision.route_id == "assistant"
    async with _bridge(router, openai, model_router) as bridge:
        easy = await bridge.execute(decision, "say hello to friend 99")
        hard = await bridge.execute(decision, "prove theorem 99 about primes")
        chunks = [c async for c in bridge.stream(decision, "say hello to friend 98")]
    assert (easy.provider, easy.model) == ("openai", "gpt-4o-mini")
    assert hard.model == "gpt-4o"
    assert "".join(c for c in chunks if isinstance(c, str)) == "echo: say hello to friend 98"
    bodies = [r.body for r in server.requests]
    assert [b["model"] for b in bodies] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert bodies[0]["max_tokens"] == 32 and "max_tokens" not in bodies[1]  # per-model params
    assert bodies[1]["messages"][0] == {"role": "system", "content": "Answer well."}


async def test_a_pick_outside_the_pool_runs_the_best_alternative_inside(
    router, client, model_router
):
    # gpt-4o and o3 always succeed, so the router's own pick (highest p_success) is one of them;
    # the weather route's pool only holds gpt-4o-mini, the best alternative inside it
    _, openai = client
    decision = router.route("will it rain today")
    assert decision.route_id == "weather"
    query = "prove theorem 7 about primes"  # the decision is given: any query text runs
    assert model_router.route(query).model != "gpt-4o-mini"
    async with _bridge(router, openai, model_router) as bridge:
        result = await bridge.execute(decision, query)
    assert result.model == "gpt-4o-mini"


async def test_a_pool_with_a_similarity_floor_sends_unfamiliar_queries_to_the_best_model(
    client, model_router
):
    # every query is less similar than 0.999 to the graded ones: none is routed by the rule
    strict = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.0))
    pool = {**POOL, "min_graded_similarity": 0.999}
    strict.add_routes([Route(name="assistant", examples=["say hello"], metadata=pool)])
    strict.build_index()
    _, openai = client
    query = "say hello to friend 99"  # gpt-4o-mini under the pool's rule alone
    async with _bridge(strict, openai, model_router) as bridge:
        result = await bridge.execute(strict.route(query), query)
    # gpt-4o and o3 both have mean grade 1.0: the cheaper one
    assert result.model == "gpt-4o"
    assert model_router.route(query, min_quality=0.8).model == "gpt-4o-mini"


class SlowEncoder(HashingEncoder):
    """A local model that takes 0.3 s per call."""

    def encode(self, texts):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return super().encode(texts)


async def test_choosing_the_model_does_not_stall_the_event_loop(router, client):
    slow = ModelRouter(
        [ModelSpec("gpt-4o", 2.5, 10.0), ModelSpec("gpt-4o-mini", 0.15, 0.6)],
        encoder=SlowEncoder(dimension=64),
    )
    slow.fit(
        HARD + EASY,
        [{"gpt-4o": 1.0, "gpt-4o-mini": 0.0}] * 40 + [{"gpt-4o": 1.0, "gpt-4o-mini": 1.0}] * 40,
    )
    _, openai = client
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        async with _bridge(router, openai, slow) as bridge:
            query = "say hello to friend 99"
            result = await bridge.execute(router.route(query), query)
    finally:
        ticker.cancel()
    assert result.model == "gpt-4o-mini"
    # the 0.3 s encoding ran in a worker thread: the loop kept ticking meanwhile
    assert ticks >= 10


class CountingEncoder(HashingEncoder):
    """Counts the texts it encodes."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension=dimension)
        self.texts: list[str] = []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        return super().encode(texts)


def _counted_model_router(dimension: int) -> tuple[ModelRouter, CountingEncoder]:
    encoder = CountingEncoder(dimension)
    mr = ModelRouter(
        [ModelSpec("gpt-4o", 2.5, 10.0), ModelSpec("gpt-4o-mini", 0.15, 0.6)], encoder=encoder
    )
    mr.fit(
        HARD + EASY,
        [{"gpt-4o": 1.0, "gpt-4o-mini": 0.0}] * 40 + [{"gpt-4o": 1.0, "gpt-4o-mini": 1.0}] * 40,
    )
    encoder.texts.clear()
    return mr, encoder


async def test_the_model_choice_reuses_the_cache_s_query_vector_in_the_same_space(client):
    _, openai = client
    query = "say hello to friend 42"
    for dimension, encodes in ((64, 0), (32, 1)):  # the router's space is 64-dimensional
        router = Router(encoder=HashingEncoder(dimension=64), config=RouterConfig(threshold=0.0))
        router.add_routes([Route(name="assistant", examples=["say hello"], metadata=POOL)])
        router.build_index()
        mr, encoder = _counted_model_router(dimension)
        async with _bridge(router, openai, mr) as bridge:
            result = await bridge.execute(router.route(query), query)
        assert result.model == "gpt-4o-mini"
        # same space: the bridge encodes the query once, for the choice and the cache alike
        assert encoder.texts == [query] * encodes


async def test_a_pool_without_model_router_or_with_unknown_models_is_a_config_error(
    router, client, model_router
):
    _, openai = client
    decision = router.route("say hello to friend 1")
    async with _bridge(router, openai, None) as bridge:
        with pytest.raises(ConfigError, match="model_router"):
            await bridge.execute(decision, "say hello to friend 1")
    other = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.0))
    other.add_routes(
        [Route(name="x", examples=["hello"], metadata={"provider": "openai", "models": ["gpt-5"]})]
    )
    other.build_index()
    async with _bridge(other, openai, model_router) as bridge:
        with pytest.raises(ConfigError, match="gpt-5"):
            await bridge.execute(other.route("hello"), "hello")
