"""Runtime quickstart: route a query, then execute it against a model, cheaply and safely.

Runs offline: a `FakeProviderServer` on 127.0.0.1 speaks the OpenAI wire format, and the real
`OpenAIClient` (official SDK) talks to it. It shows, in order:

1. a cache hit: the second identical question never reaches the provider;
2. a de-duplicated batch: 8 concurrent identical questions make 1 provider call;
3. a retried failure: the provider answers 500, the retry succeeds;
4. the circuit breaker opening after repeated failures, and then refusing calls at once.

    python examples/runtime_quickstart.py

Uses the bundled all-MiniLM-L6-v2 `LocalEncoder` when installed, else the `HashingEncoder`
(set STRATAROUTER_EXAMPLE_ENCODER=hashing to force it).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from stratarouter_runtime import (
    BreakerConfig,
    CircuitOpenError,
    CoreRuntimeBridge,
    ObservabilityConfig,
    OpenAIClient,
    RetryConfig,
    RetryExhaustedError,
    RuntimeConfig,
    StateConfig,
)
from stratarouter_runtime.observability import PrometheusMetrics
from stratarouter_runtime.testing import FakeProviderServer, Fault

from stratarouter_core import BaseEncoder, Route, Router, RouterConfig
from stratarouter_core.testing import HashingEncoder

ROUTES = [
    Route(
        name="billing",
        examples=[
            "refund my last invoice",
            "I was charged twice",
            "why is my bill so high",
            "update my credit card",
        ],
        metadata={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "system_prompt": "You are a billing assistant. Be brief.",
        },
    ),
    Route(
        name="shipping",
        examples=["where is my package", "track my parcel", "my order has not arrived"],
        metadata={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "system_prompt": "You are a delivery assistant.",
        },
    ),
    Route(
        name="research",
        examples=[
            "summarise this paper",
            "explain how vaccines work",
            "compare two scientific theories",
        ],
        metadata={"provider": "openai", "model": "gpt-4o"},
    ),
]


def make_encoder() -> tuple[BaseEncoder, float]:
    """The real local model if installed (else the hashing encoder), with a threshold for it."""
    if os.environ.get("STRATAROUTER_EXAMPLE_ENCODER") == "hashing":
        return HashingEncoder(), 0.2
    try:
        from stratarouter_core.encoders.local import LocalEncoder

        return LocalEncoder(), 0.3
    except ImportError:  # MissingDependencyError is an ImportError
        return HashingEncoder(), 0.2


def make_router() -> Router:
    encoder, threshold = make_encoder()
    router = Router(encoder=encoder, config=RouterConfig(threshold=threshold))
    router.add_routes(ROUTES)
    router.build_index()
    return router


async def demo(bridge: CoreRuntimeBridge, router: Router, server: FakeProviderServer) -> None:
    # 1. cache: the same question twice
    query = "I was charged twice this month"
    first = await bridge.execute(router.route(query), query, {"user_id": "u1"})
    second = await bridge.execute(router.route(query), query, {"user_id": "u2"})
    print(
        f"[cache]   route={first.route_id} 1st: provider call ({first.latency_ms:.1f} ms, "
        f"${first.cost_usd:.6f}); 2nd: cache hit={second.cached} ({second.latency_ms:.2f} ms, "
        f"$0) -> provider calls so far: {server.count()}"
    )

    # 2. batch: 8 concurrent identical questions, one provider call
    before = server.count()
    server.add_faults(Fault.delay(0.2))  # a slow answer, so the others arrive while in flight
    query = "where is my package"
    results = await asyncio.gather(*(bridge.execute(router.route(query), query) for _ in range(8)))
    shared = sum(r.deduplicated for r in results)
    print(
        f"[batch]   8 concurrent identical queries -> {server.count() - before} provider call, "
        f"{shared} de-duplicated (same answer: {len({r.response for r in results}) == 1})"
    )

    # 3. retry: a 500, then success
    server.add_faults(Fault.server_error(500))
    query = "refund my last invoice"
    retried = await bridge.execute(router.route(query), query)
    outcomes = " -> ".join(
        f"{a.outcome}" + (f" (HTTP {a.status})" if a.status else "") for a in retried.attempts
    )
    print(f"[retry]   retried failure: {outcomes}; answer: {retried.response!r}")

    # 4. circuit breaker: 3 failures open it; then calls are refused without a request
    server.add_faults(*[Fault.server_error(503) for _ in range(3)])
    query = "summarise this paper"
    try:
        await bridge.execute(router.route(query), query)
    except RetryExhaustedError as exc:
        print(
            f"[breaker] call failed after {exc.attempts} attempts (HTTP {exc.status}); "
            f"breaker openai:gpt-4o is now {bridge.breakers.states()['openai:gpt-4o']}"
        )
    before = server.count()
    try:
        await bridge.execute(router.route("explain how vaccines work"), "explain how vaccines work")
    except CircuitOpenError as exc:
        print(
            f"[breaker] next call refused by the open breaker: "
            f"{server.count() - before} provider requests (probe in {exc.retry_after:.0f}s)"
        )


async def main() -> None:
    router = make_router()
    with FakeProviderServer() as server, tempfile.TemporaryDirectory() as tmp:
        config = RuntimeConfig(
            state=StateConfig(backend="sqlite", sqlite_path=str(Path(tmp) / "state.db")),
            retries=RetryConfig(max_retries=2, delay_ms=20),
            breaker=BreakerConfig(failure_threshold=3, reset_timeout_s=30),
            observability=ObservabilityConfig(metrics=True),
        )
        client = OpenAIClient(api_key="not-needed", base_url=server.openai_base_url)
        async with client, CoreRuntimeBridge(config, router, {"openai": client}) as bridge:
            await demo(bridge, router, server)
            metrics = bridge.observability.metrics
            if isinstance(metrics, PrometheusMetrics):
                total = "stratarouter_requests_total"
                counts = {
                    status: int(
                        sum(
                            metrics.sample(
                                total,
                                route=route.name,
                                provider="openai",
                                model=model,
                                status=status,
                            )
                            for route in ROUTES
                            for model in ("gpt-4o-mini", "gpt-4o")
                        )
                    )
                    for status in ("succeeded", "cached", "deduplicated", "failed")
                }
                print(
                    f"[metrics] executions by outcome {counts}; provider requests "
                    f"{server.count()}; all recorded in {Path(config.state.sqlite_path).name}"
                )


if __name__ == "__main__":
    asyncio.run(main())
