"""`stratarouter bench server-faults`: the server's answers while its provider fails, bounded.

A real uvicorn server on 127.0.0.1 executes `POST /v1/execute` against `FakeProviderServer`
(loopback) through four phases of `--requests` sequential requests each:

1. healthy: every request should be 200;
2. failing: every provider call answers 503 (retries exhausted): the server must answer
   typed 5xx gateway errors (502/503), never a 500, and the breaker must open, after which
   requests fail fast without reaching the provider;
3. hanging: every provider call takes longer than the attempt timeout: a typed timeout;
4. recovered: faults cleared and the breaker's reset time waited out: 200 again.

For each phase it prints the status codes, the provider calls made, P50/P99 latency and what
`/readyz` said after it. Nothing leaves loopback; every phase is bounded in count and time.
Not covered: Redis or PostgreSQL going away under the server (the runtime's own tests cover
the stores; no proxy fault is injected here).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["register", "run", "run_phases"]

_TARGET = {"provider": "local", "model": "fake-small"}


def register(benches: Any) -> None:
    """Add the `server-faults` benchmark."""
    parser = benches.add_parser(
        "server-faults", help="server answers while the provider fails or hangs (loopback)"
    )
    parser.add_argument("--requests", type=int, default=40, help="requests per phase (max 500)")
    parser.set_defaults(run=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", loop="asyncio")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start within 30 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def run_phases(requests: int) -> list[dict[str, Any]]:
    """Run the four phases; one dict of figures per phase."""
    import httpx
    from stratarouter_core import Route, Router, RouterConfig
    from stratarouter_core.testing import HashingEncoder
    from stratarouter_runtime import RetryConfig, RuntimeConfig
    from stratarouter_runtime.config import BreakerConfig, CacheConfig
    from stratarouter_runtime.server import ServerConfig, create_app
    from stratarouter_runtime.testing import FakeProviderServer, Fault

    requests = max(1, min(requests, 500))
    router = Router(encoder=HashingEncoder(64), config=RouterConfig(threshold=0.0))
    router.add_routes([Route(name="support", examples=["help me"], metadata=_TARGET)])
    router.build_index()
    runtime = RuntimeConfig(
        retries=RetryConfig(max_retries=1, delay_ms=1, attempt_timeout_s=0.3),
        breaker=BreakerConfig(failure_threshold=5, window_s=30, reset_timeout_s=1.0),
        cache=CacheConfig(enabled=False),  # every request must reach the provider path
    )
    phases: list[dict[str, Any]] = []
    with FakeProviderServer() as fake:
        app = create_app(
            router, config=ServerConfig(provider_url=fake.openai_base_url), runtime_config=runtime
        )
        with _serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            plan: list[tuple[str, list[Fault]]] = [
                ("healthy", []),
                ("failing (503)", [Fault.server_error(503) for _ in range(4 * requests)]),
                ("hanging (> timeout)", [Fault.delay(1.0) for _ in range(4 * requests)]),
            ]
            for name, faults in plan:
                fake.reset()
                if name.startswith("hanging"):
                    time.sleep(1.2)  # the breaker opened while failing: let it half-open
                fake.add_faults(*faults)
                phases.append(_phase(name, client, fake, requests))
            fake.reset()
            time.sleep(1.2)  # past the breaker's reset timeout
            phases.append(_phase("recovered", client, fake, requests))
    return phases


def _phase(name: str, client: Any, fake: Any, requests: int) -> dict[str, Any]:
    codes: collections.Counter[int] = collections.Counter()
    latencies = []
    before = fake.count()
    for i in range(requests):
        start = time.perf_counter()
        query = f"help me with {name} order {i}"  # new per phase: no earlier answer to reuse
        response = client.post("/v1/execute", json={"query": query})
        latencies.append(time.perf_counter() - start)
        codes[response.status_code] += 1
    ready = client.get("/readyz")
    return {
        "phase": name,
        "codes": dict(sorted(codes.items())),
        "provider_calls": fake.count() - before,
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "readyz": f"{ready.status_code} {ready.json().get('status', '')}",
    }


def run(args: argparse.Namespace) -> int:
    """Print one line per phase."""
    for p in run_phases(args.requests):
        codes = ", ".join(f"{code}: {n}" for code, n in p["codes"].items())
        print(
            f"{p['phase']:<20} codes {{{codes}}}  provider calls {p['provider_calls']:>4}  "
            f"P50 {p['p50_ms']:7.1f} ms  P99 {p['p99_ms']:7.1f} ms  readyz {p['readyz']}"
        )
    return 0
