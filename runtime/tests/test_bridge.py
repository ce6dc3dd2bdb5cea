"""End to end: route -> CoreRuntimeBridge.execute -> real SDK client -> fake provider server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.errors import ConfigError, InvalidQueryError, RouteNotFoundError
from stratarouter_core.testing import HashingEncoder
from stratarouter_core.types import RouteResult

from stratarouter_runtime.bridge import CoreRuntimeBridge, ExecutionResult, HandlerError
from stratarouter_runtime.config import (
    BreakerConfig,
    CacheConfig,
    ObservabilityConfig,
    RetryConfig,
    RuntimeConfig,
    StateConfig,
)
from stratarouter_runtime.errors import (
    CircuitOpenError,
    ProviderConnectionError,
    ProviderRequestError,
    RetryExhaustedError,
)
from stratarouter_runtime.providers import DEFAULT_PRICES, Usage
from stratarouter_runtime.state import MemoryStateStore
from stratarouter_runtime.testing import FakeProviderServer, Fault

pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")

from stratarouter_runtime.providers import OpenAIClient

BILLING = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "system_prompt": "You handle billing.",
    "params": {"temperature": 0.0, "max_tokens": 64},
}


@pytest.fixture
def server():
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def router():
    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.2))
    router.add_routes(
        [
            Route(
                name="billing",
                examples=["refund my invoice", "I was charged twice", "cancel my order"],
                metadata=BILLING,
            ),
            Route(
                name="research",
                examples=["summarise this paper", "explain quantum physics"],
                metadata={"provider": "anthropic", "model": "claude-haiku-4-5"},
            ),
            Route(name="tools", examples=["what time is it", "convert 3 km to miles"]),
            Route(name="weather", examples=["will it rain today", "weather forecast for tomorrow"]),
        ]
    )
    router.build_index()
    return router


@pytest.fixture
async def make_bridge(server, router):
    """Bridges on the fake server (memory state); tests close the bridges, this the clients."""
    clients = []

    def make(**groups):
        settings = {
            "retries": RetryConfig(delay_ms=1.0),
            "observability": ObservabilityConfig(metrics=True),
        } | groups
        clients.append(OpenAIClient(api_key="test", base_url=server.openai_base_url))
        return CoreRuntimeBridge(RuntimeConfig(**settings), router, {"openai": clients[-1]})

    yield make
    for client in clients:
        await client.aclose()


def decide(router, query):
    return router.route(query)


async def test_execute_end_to_end(make_bridge, router, server):
    async with make_bridge() as bridge:
        query = "please refund my invoice"
        decision = decide(router, query)
        assert decision.route_id == "billing"
        result = await bridge.execute(decision, query, context={"user_id": "u1"})
    assert isinstance(result, ExecutionResult)
    assert result.response == f"echo: {query}"
    assert (result.provider, result.model, result.route_id) == ("openai", "gpt-4o-mini", "billing")
    assert not result.cached and not result.deduplicated
    assert result.usage.total_tokens > 0 and result.cost_usd > 0 and result.latency_ms > 0
    assert [a.outcome for a in result.attempts] == ["ok"]
    (request,) = server.requests
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"][0] == {"role": "system", "content": "You handle billing."}
    assert request.body["temperature"] == 0.0

    record = await bridge.state.get(result.execution_id)
    assert record.status == "succeeded" and record.route_id == "billing"
    assert record.result["response"] == result.response
    assert record.context == {"user_id": "u1"}
    assert [a["outcome"] for a in record.attempts] == ["ok"]
    assert record.target["system_prompt"] == "You handle billing."


async def test_second_identical_query_is_served_from_the_cache(make_bridge, router, server):
    async with make_bridge() as bridge:
        first = await bridge.execute(decide(router, "refund my invoice"), "refund my invoice")
        second = await bridge.execute(decide(router, "Refund my invoice!"), "Refund my invoice!")
        record = await bridge.state.get(second.execution_id)
    assert server.count() == 1
    assert second.cached and second.response == first.response
    assert second.cost_usd == 0.0 and second.usage.total_tokens == 0 and second.attempts == ()
    assert record.status == "succeeded" and record.result["response"] == first.response
    assert bridge.observability.metrics.cache_hit_ratio == pytest.approx(0.5)


async def test_a_negated_query_is_not_served_the_cached_answer(make_bridge, router, server):
    async with make_bridge(cache=CacheConfig(similarity_threshold=0.5)) as bridge:
        await bridge.execute(decide(router, "cancel my order"), "cancel my order")
        negated = await bridge.execute(decide(router, "cancel my order"), "don't cancel my order")
    assert not negated.cached and negated.response == "echo: don't cancel my order"
    assert server.count() == 2


async def test_cache_entries_are_isolated_per_tenant(make_bridge, router, server):
    async with make_bridge() as bridge:
        query = "refund my invoice"
        a = await bridge.execute(decide(router, query), query, {"tenant_id": "a"})
        b = await bridge.execute(decide(router, query), query, {"tenant_id": "b"})
        a_again = await bridge.execute(decide(router, query), query, {"tenant_id": "a"})
    assert not a.cached and not b.cached and a_again.cached
    assert server.count() == 2


async def test_concurrent_identical_queries_make_one_provider_call(make_bridge, router, server):
    server.add_faults(Fault.delay(0.2))  # keep the first call in flight while the rest arrive
    async with make_bridge(cache=CacheConfig(enabled=False)) as bridge:
        query = "I was charged twice"
        results = await asyncio.gather(
            *(bridge.execute(decide(router, query), query) for _ in range(10))
        )
        records = [await bridge.state.get(r.execution_id) for r in results]
    assert server.count() == 1
    assert {r.response for r in results} == {f"echo: {query}"}
    assert sum(not r.deduplicated for r in results) == 1
    assert sum(r.deduplicated for r in results) == 9
    assert all(r.cost_usd == 0 for r in results if r.deduplicated)
    assert all(rec.status == "succeeded" and rec.result for rec in records)
    metrics = bridge.observability.metrics
    assert metrics.sample("stratarouter_deduplicated_requests_total") == 9


async def test_handler_routes_call_the_python_function(make_bridge, router, server):
    seen = []

    def tools(query, context):
        seen.append((query, dict(context)))
        return {"response": "It is noon.", "tool": "clock"}

    async def weather(query, context):
        await asyncio.sleep(0)
        return f"sunny for {context['user_id']}"

    bridge = make_bridge()
    bridge.register_handler("tools", tools)
    bridge.register_handler("weather", weather)
    async with bridge:
        query = "what time is it"
        first = await bridge.execute(decide(router, query), query, {"user_id": "u7"})
        second = await bridge.execute(decide(router, query), query, {"user_id": "u7"})
        rain = await bridge.execute(
            decide(router, "will it rain today"), "will it rain today", {"user_id": "u7"}
        )
    assert first.response == "It is noon." and first.output == {
        "response": "It is noon.",
        "tool": "clock",
    }
    assert (first.provider, first.model) == ("handler", "tools")
    assert not second.cached and len(seen) == 2  # handlers are never cached
    assert seen[0] == (query, {"user_id": "u7"})
    assert rain.response == "sunny for u7"
    assert server.count() == 0


async def test_a_failing_handler_is_a_handler_error_and_a_failed_record(make_bridge, router):
    def broken(query, context):
        raise KeyError("missing tool")

    state = MemoryStateStore()
    bridge = make_bridge()
    bridge.state = state
    bridge.register_handler("tools", broken)
    async with bridge:
        with pytest.raises(HandlerError, match="missing tool") as caught:
            await bridge.execute(decide(router, "what time is it"), "what time is it")
    assert isinstance(caught.value.__cause__, KeyError)
    (record,) = state._records.values()
    assert record.status == "failed" and "missing tool" in record.error


async def test_missing_provider_key_is_a_config_error_naming_the_variable(router, server):
    env = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": server.openai_base_url}
    config = RuntimeConfig.from_env(env)
    async with CoreRuntimeBridge(config, router) as bridge:
        assert set(bridge.providers) == {"openai"}
        ok = await bridge.execute(decide(router, "refund my invoice"), "refund my invoice")
        assert ok.response == "echo: refund my invoice"
        query = "summarise this paper"
        with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
            await bridge.execute(decide(router, query), query)
    assert server.count() == 1


async def test_decisions_without_a_target(make_bridge, router, server):
    no_route = RouteResult(route_id=None, confidence=0.1, candidates=(), latency_us=5.0)
    async with make_bridge() as bridge:
        with pytest.raises(RouteNotFoundError, match="default_target"):
            await bridge.execute(no_route, "something odd")
        with pytest.raises(ConfigError, match="'weather' has no 'provider'"):
            await bridge.execute(decide(router, "will it rain today"), "will it rain today")
        with pytest.raises(InvalidQueryError):
            await bridge.execute(no_route, "   ")
    async with make_bridge(default_target="openai:gpt-4.1-nano") as bridge:
        result = await bridge.execute(no_route, "something odd")
        human = await bridge.execute(
            RouteResult(
                route_id="human", confidence=0.2, candidates=(), latency_us=1.0, is_fallback=True
            ),
            "talk to a person",
        )
    assert result.model == "gpt-4.1-nano" and human.model == "gpt-4.1-nano"


async def test_retry_after_a_500_then_success(make_bridge, router, server):
    server.add_faults(Fault.server_error(), Fault.server_error(503))
    async with make_bridge(retries=RetryConfig(max_retries=3, delay_ms=1.0)) as bridge:
        result = await bridge.execute(decide(router, "refund my invoice"), "refund my invoice")
        record = await bridge.state.get(result.execution_id)
    assert [a.outcome for a in result.attempts] == ["ProviderServerError"] * 2 + ["ok"]
    assert [(a["number"], a["status"]) for a in record.attempts] == [(1, 500), (2, 503), (3, None)]
    metrics = bridge.observability.metrics
    assert metrics.sample("stratarouter_retries_total", provider="openai", model="gpt-4o-mini") == 2


async def test_no_retry_on_400_and_failures_are_never_cached(make_bridge, router, server):
    server.add_faults(Fault.bad_request())
    async with make_bridge(retries=RetryConfig(max_retries=3, delay_ms=1.0)) as bridge:
        query = "refund my invoice"
        with pytest.raises(ProviderRequestError):
            await bridge.execute(decide(router, query), query)
        assert server.count() == 1
        (record,) = await _all_records(bridge)
        assert record.status == "failed" and "ProviderRequestError" in record.error
        assert [a["status"] for a in record.attempts] == [400]
        again = await bridge.execute(decide(router, query), query)
    assert not again.cached and server.count() == 2
    metrics = bridge.observability.metrics
    assert metrics.sample("stratarouter_errors_total", type="ProviderRequestError") == 1
    assert (
        metrics.sample(
            "stratarouter_requests_total",
            route="billing",
            provider="openai",
            model="gpt-4o-mini",
            status="failed",
        )
        == 1
    )


async def test_retries_stop_at_max_retries(make_bridge, router, server):
    server.add_faults(*[Fault.server_error() for _ in range(5)])
    async with make_bridge(
        retries=RetryConfig(max_retries=2, delay_ms=1.0), breaker=BreakerConfig(failure_threshold=50)
    ) as bridge:
        with pytest.raises(RetryExhaustedError):
            await bridge.execute(decide(router, "refund my invoice"), "refund my invoice")
    assert server.count() == 3


async def test_breaker_opens_and_refuses_calls(make_bridge, router, server):
    server.add_faults(*[Fault.server_error() for _ in range(10)])
    async with make_bridge(
        retries=RetryConfig(max_retries=0, delay_ms=1.0),
        breaker=BreakerConfig(failure_threshold=2, reset_timeout_s=60),
    ) as bridge:
        for query in ("refund my invoice", "I was charged twice"):
            with pytest.raises(RetryExhaustedError):
                await bridge.execute(decide(router, query), query)
        with pytest.raises(CircuitOpenError):
            await bridge.execute(decide(router, "cancel my order"), "cancel my order")
        assert bridge.breakers.states() == {"openai:gpt-4o-mini": "open"}
    assert server.count() == 2
    metrics = bridge.observability.metrics
    assert metrics.sample("stratarouter_breaker_state", provider="openai", model="gpt-4o-mini") == 2


async def test_fallback_target_answers_when_the_primary_fails_or_is_open(
    make_bridge, router, server
):
    server.add_faults(Fault.server_error())
    async with make_bridge(
        retries=RetryConfig(max_retries=0, delay_ms=1.0),
        breaker=BreakerConfig(failure_threshold=1),
        fallbacks={"openai:gpt-4o-mini": ["openai:gpt-4.1-nano"]},
    ) as bridge:
        first = await bridge.execute(decide(router, "refund my invoice"), "refund my invoice")
        second = await bridge.execute(decide(router, "cancel my order"), "cancel my order")
    assert first.model == second.model == "gpt-4.1-nano"
    assert [(a.target_key, a.outcome) for a in first.attempts] == [
        ("openai:gpt-4o-mini", "ProviderServerError"),
        ("openai:gpt-4.1-nano", "ok"),
    ]
    assert [(a.target_key, a.outcome) for a in second.attempts] == [
        ("openai:gpt-4o-mini", "CircuitOpenError"),
        ("openai:gpt-4.1-nano", "ok"),
    ]
    assert server.count() == 3


async def test_stream_checkpoints_and_caches_only_complete_streams(make_bridge, router, server):
    async with make_bridge(state=StateConfig(checkpoint_interval=2)) as bridge:
        query = "refund my invoice and the other invoice too"
        stream = bridge.stream(decide(router, query), query)
        chunks = [chunk async for chunk in stream]
        assert "".join(chunks) == f"echo: {query}" and len(chunks) > 4
        record = await bridge.state.get(stream.execution_id)
        assert record.status == "succeeded" and record.progress["chunks"] % 2 == 0
        assert record.progress["chunks"] >= len(chunks) - 1
        assert stream.result.response == "".join(chunks)
        cached = await bridge.execute(decide(router, query), query)
        assert cached.cached

        server.add_faults(Fault.break_stream(after_chunks=2))
        broken_query = "I was charged twice for one invoice"
        broken = bridge.stream(decide(router, broken_query), broken_query)
        with pytest.raises(ProviderConnectionError):
            async for _ in broken:
                pass
        failed = await bridge.state.get(broken.execution_id)
        assert failed.status == "failed" and failed.result is None
        after = await bridge.execute(decide(router, broken_query), broken_query)
        assert not after.cached  # the partial stream was not cached


def _tokens(metrics, kind, model="gpt-4o-mini"):
    return metrics.sample("stratarouter_tokens_total", provider="openai", model=model, kind=kind)


async def test_stream_records_usage_cost_and_metrics_once_complete(make_bridge, router, server):
    query = "please refund my invoice"
    prompt, answer = len(f"You handle billing. {query}".split()), len(f"echo: {query}".split())
    price = DEFAULT_PRICES["gpt-4o-mini"]
    cost = (prompt * price.input_per_mtok + answer * price.output_per_mtok) / 1e6
    async with make_bridge() as bridge:
        stream = bridge.stream(decide(router, query), query)
        chunks = [chunk async for chunk in stream]
        record = await bridge.state.get(stream.execution_id)

        broken_query = "I was charged twice for one invoice"
        server.add_faults(Fault.break_stream(after_chunks=2))
        broken = bridge.stream(decide(router, broken_query), broken_query)
        with pytest.raises(ProviderConnectionError):
            async for _ in broken:
                pass
        failed = await bridge.state.get(broken.execution_id)
    result = stream.result
    assert result.response == "".join(chunks) == f"echo: {query}"
    assert result.usage == Usage.of(prompt, answer)
    assert result.cost_usd == pytest.approx(cost) and result.cost_known
    assert (result.finish_reason, result.provider, result.model) == (
        "stop",
        "openai",
        "gpt-4o-mini",
    )
    assert record.status == "succeeded"
    assert record.result["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": answer,
        "total_tokens": prompt + answer,
    }
    assert record.result["cost_usd"] == pytest.approx(cost)
    assert record.result["finish_reason"] == "stop"
    # The broken stream added nothing: its tokens were never reported.
    assert broken.result is None and failed.status == "failed" and failed.result is None
    metrics = bridge.observability.metrics
    assert (_tokens(metrics, "input"), _tokens(metrics, "output")) == (prompt, answer)
    cost_total = metrics.sample(
        "stratarouter_cost_usd_total", provider="openai", model="gpt-4o-mini"
    )
    assert cost_total == pytest.approx(cost)


async def test_stream_without_reported_usage_is_recorded_as_unknown(make_bridge, router, server):
    server.stream_usage = False  # an OpenAI-compatible server that ignores include_usage
    query = "please refund my invoice"
    async with make_bridge() as bridge:
        stream = bridge.stream(decide(router, query), query)
        result = await stream.collect()
        record = await bridge.state.get(stream.execution_id)
        cached = await bridge.execute(decide(router, query), query)
    assert result.response == f"echo: {query}" and result.finish_reason == "stop"
    assert result.usage is None  # unknown, not zero
    assert (result.cost_usd, result.cost_known) == (0.0, False)
    assert record.result["usage"] is None and record.result["cost_known"] is False
    assert cached.cached and cached.usage == Usage.of(0, 0)  # a hit consumes nothing
    metrics = bridge.observability.metrics
    unknown = metrics.sample(
        "stratarouter_usage_unknown_total", provider="openai", model="gpt-4o-mini"
    )
    assert unknown == 1.0
    assert _tokens(metrics, "input") == _tokens(metrics, "output") == 0.0


async def test_streamed_fallback_records_the_target_that_answered(make_bridge, router, server):
    server.add_faults(Fault.server_error())
    query = "please refund my invoice"
    async with make_bridge(
        retries=RetryConfig(max_retries=0, delay_ms=1.0),
        fallbacks={"openai:gpt-4o-mini": ["openai:gpt-4.1-nano"]},
    ) as bridge:
        stream = bridge.stream(decide(router, query), query)
        result = await stream.collect()
        record = await bridge.state.get(stream.execution_id)
    price = DEFAULT_PRICES["gpt-4.1-nano"]
    prompt, answer = result.usage.prompt_tokens, result.usage.completion_tokens
    assert (prompt, answer) == (len(f"You handle billing. {query}".split()), 5)
    assert result.model == record.result["model"] == "gpt-4.1-nano"
    assert record.result["target_key"] == "openai:gpt-4.1-nano"
    assert result.cost_usd == pytest.approx(
        (prompt * price.input_per_mtok + answer * price.output_per_mtok) / 1e6
    )
    metrics = bridge.observability.metrics
    assert _tokens(metrics, "output", model="gpt-4.1-nano") == answer


async def test_leases_are_renewed_while_running(make_bridge, router, server):
    # the execution lasts until the test ends it, so no sleep has to land before it finishes
    finish = asyncio.Event()

    async def slow_tool(query, context):
        await finish.wait()
        return "done"

    async with make_bridge(state=StateConfig(lease_timeout_s=0.3)) as bridge:
        bridge.register_handler("tools", slow_tool)
        query = "what time is it"
        task = asyncio.ensure_future(bridge.execute(decide(router, query), query))
        record = None
        for _ in range(500):  # up to ~5 s for a renewal (one is due every 0.1 s)
            await asyncio.sleep(0.01)
            unfinished = await bridge.state.list_unfinished()
            if unfinished and unfinished[0].lease_expires_at > unfinished[0].created_at + 0.35:
                (record,) = unfinished
                break
        assert record is not None, "the lease was never renewed"
        assert record.status == "running" and record.worker_id == bridge.worker_id
        finish.set()
        assert (await task).response == "done"


async def test_run_routes_then_executes(make_bridge, server):
    async with make_bridge() as bridge:
        result = await bridge.run("refund my invoice")
    assert result.route_id == "billing" and result.response == "echo: refund my invoice"


async def test_redis_cache_is_shared_between_bridges(make_bridge, router, server, redis_url):
    namespace = f"bridge-test-{uuid.uuid4().hex}"
    cache = CacheConfig(backend="redis", redis_url=redis_url, namespace=namespace)
    query = "refund my invoice"
    async with make_bridge(cache=cache) as first:
        await first.execute(decide(router, query), query)
    async with make_bridge(cache=cache) as second:
        hit = await second.execute(decide(router, query), query)
        await second.cache.clear()
    assert hit.cached and server.count() == 1


async def _all_records(bridge):
    store = bridge.state
    return list(store._records.values())


async def test_recover_never_takes_an_execution_this_bridge_is_running(make_bridge, router, server):
    server.add_faults(Fault.delay(0.5))
    async with make_bridge(state=StateConfig(worker_id="stable-worker")) as bridge:
        query = "refund my invoice"
        task = asyncio.ensure_future(bridge.execute(decide(router, query), query))
        while server.count() == 0:
            await asyncio.sleep(0.01)
        report = await bridge.recover()  # same worker id: only the in-flight guard stops it
        assert report.total == 0 and len(report.skipped) == 1
        result = await task
    assert not result.cached and server.count() == 1
