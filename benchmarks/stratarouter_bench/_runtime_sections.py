"""The four measurements of `stratarouter bench runtime`, each on fresh bridges.

Every request goes through the real `CoreRuntimeBridge` and the real OpenAI SDK client to the
offline `FakeProviderServer`, whose request log is the count of provider calls. The server
answers ``"answer to: <query>"``, so any served answer names the query it was made for.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from stratarouter_core._deps import require
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError, StrataRouterError
from stratarouter_core.types import RouteResult
from stratarouter_runtime import (
    BatchingConfig,
    CacheConfig,
    CoreRuntimeBridge,
    Observability,
    OpenAIClient,
    RuntimeConfig,
    StateConfig,
)
from stratarouter_runtime.testing import FakeProviderServer

from ._runtime_workload import REQUEST_KINDS, Labels, Workload

__all__ = [
    "REPLY_PREFIX",
    "WARMUP",
    "Bench",
    "dedup",
    "lookup_latency",
    "overhead",
    "quiet_runtime_logs",
    "replay",
]

REPLY_PREFIX = "answer to: "
# No router: every decision goes to RuntimeConfig.default_target, one model for all requests.
_DECISION = RouteResult(route_id="chat", confidence=1.0, candidates=(), latency_us=0.0)
WARMUP = 20
_T = TypeVar("_T")
_RUNTIME_LOGGER = "stratarouter_runtime"
_EXAMPLES = 20  # wrong and unlabelled hits listed in the report, for reading


class _Discard(io.StringIO):
    """Swallows the runtime's JSON log lines: their formatting is timed, not their printing."""

    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def quiet_runtime_logs() -> Iterator[None]:
    """Give the runtime logger back as it was: the bridges here point it at `_Discard`."""
    runtime_logger = logging.getLogger(_RUNTIME_LOGGER)
    saved = runtime_logger.handlers[:], runtime_logger.level, runtime_logger.propagate
    try:
        yield
    finally:
        runtime_logger.handlers[:], runtime_logger.level, runtime_logger.propagate = saved


@dataclass
class Bench:
    """What the sections share: the fake server, the query encoder, the target model."""

    server: FakeProviderServer
    encoder: BaseEncoder
    labels: Labels
    model: str = "gpt-4o-mini"

    @contextlib.asynccontextmanager
    async def bridge(
        self,
        *,
        cache: CacheConfig | None = None,
        batching: BatchingConfig | None = None,
        state: StateConfig | None = None,
    ) -> AsyncIterator[CoreRuntimeBridge]:
        """A started bridge with the default `RuntimeConfig` except the groups given.

        The cache gets a fresh namespace, so bridges sharing a Redis never see each other.
        """
        namespace = f"bench-runtime-{uuid.uuid4().hex[:12]}"
        config = RuntimeConfig(
            default_target=f"openai:{self.model}",
            cache=(cache or CacheConfig()).replace(namespace=namespace),
            batching=batching or BatchingConfig(),
            state=state or StateConfig(),
        )
        client = OpenAIClient(api_key="bench", base_url=self.server.openai_base_url)
        observability = Observability(config, log_stream=_Discard())
        bridge = CoreRuntimeBridge(
            config, providers={"openai": client}, encoder=self.encoder, observability=observability
        )
        try:
            async with bridge:
                yield bridge
        finally:
            await client.aclose()

    def calls(self) -> int:
        """Chat completions the fake provider has answered so far."""
        return self.server.count("openai")

    def judge(self, asked: str, response: str) -> str:
        """The label verdict on the answer `response` served for `asked`."""
        if not response.startswith(REPLY_PREFIX):
            raise RuntimeError(f"unexpected answer from the fake provider: {response!r}")
        return self.labels.judge(asked, response[len(REPLY_PREFIX) :])


def _cache(bridge: CoreRuntimeBridge) -> Any:
    if bridge.cache is None:
        raise ConfigError("the benchmark needs RuntimeConfig.cache.enabled")
    return bridge.cache


async def _probe(cache: Any, url: str | None) -> None:
    """Fail loudly now: the bridge treats a cache outage as a miss, which would read as 0%."""
    try:
        await cache.lookup("probe", None, target_key="probe:probe")
    except StrataRouterError as exc:
        raise ConfigError(f"the Redis cache at {url} is not usable: {exc}") from exc


async def replay(bench: Bench, workload: Workload, cache: CacheConfig) -> dict[str, Any]:
    """Execute the stream in order, one request at a time; count hits by tier and verdict."""
    rows: dict[str, Counter[str]] = {kind: Counter() for kind in REQUEST_KINDS}
    examples: dict[str, dict[str, str]] = {"wrong": {}, "unlabelled": {}}
    cost = 0.0
    async with bench.bridge(cache=cache) as bridge:
        semantic_cache = _cache(bridge)
        await _probe(semantic_cache, cache.redis_url)
        before = bench.calls()
        try:
            for text, kind in zip(workload.stream, workload.kinds):
                exact_before = semantic_cache.stats.exact_hits
                result = await bridge.execute(_DECISION, text)
                row = rows[kind]
                row["requests"] += 1
                if result.cached:
                    tier = semantic_cache.stats.exact_hits > exact_before
                    row["exact_hits" if tier else "semantic_hits"] += 1
                    verdict = bench.judge(text, result.response)
                    row[verdict] += 1
                    if verdict != "correct" and len(examples[verdict]) < _EXAMPLES:
                        served = result.response[len(REPLY_PREFIX) :]
                        examples[verdict].setdefault(text, served)
                elif result.deduplicated:
                    row["deduplicated"] += 1
                else:
                    row["calls"] += 1
                    cost += result.cost_usd
            stores = semantic_cache.stats.stores
        finally:
            await semantic_cache.clear(bridge.config.cache.namespace)
    report = _replay_report(rows, bench.calls() - before, stores, cost)
    report["examples"] = {  # (asked, served for) pairs, each asked text once
        verdict: [list(pair) for pair in pairs.items()] for verdict, pairs in examples.items()
    }
    return report


def _replay_report(
    rows: dict[str, Counter[str]], server_calls: int, stores: int, cost: float
) -> dict[str, Any]:
    fields = (
        "requests",
        "exact_hits",
        "semantic_hits",
        "correct",
        "wrong",
        "unlabelled",
        "deduplicated",
        "calls",
    )
    by_kind = {kind: {f: row[f] for f in fields} for kind, row in rows.items()}
    total = {f: sum(row[f] for row in by_kind.values()) for f in fields}
    hits = total["exact_hits"] + total["semantic_hits"]
    per_call = cost / total["calls"] if total["calls"] else 0.0
    return {
        **total,
        "hits": hits,
        "hit_rate": round(hits / total["requests"], 4) if total["requests"] else None,
        "server_calls": server_calls,
        "cache_stores": stores,
        "cost_usd": round(cost, 8),
        "cost_saved_usd": round(hits * per_call, 8),
        "by_kind": by_kind,
    }


async def dedup(bench: Bench, bursts: dict[str, list[list[str]]]) -> dict[str, Any]:
    """Each burst at once (`asyncio.gather`), with batching on and off; a fresh bridge per kind."""
    report: dict[str, Any] = {}
    for batching in (True, False):
        rows = {}
        for kind, kind_bursts in bursts.items():
            row = Counter[str]()
            async with bench.bridge(batching=BatchingConfig(enabled=batching)) as bridge:
                for burst in kind_bursts:
                    before = bench.calls()
                    results = await asyncio.gather(*(bridge.execute(_DECISION, q) for q in burst))
                    row["calls"] += bench.calls() - before
                    row["bursts"] += 1
                    row["requests"] += len(burst)
                    row["deduplicated"] += sum(r.deduplicated for r in results)
                    row["cached"] += sum(r.cached for r in results)
                    row["wrong"] += sum(
                        bench.judge(q, r.response) == "wrong" for q, r in zip(burst, results)
                    )
            rows[kind] = dict(row) | {"saved": row["requests"] - row["calls"]}
        report["batching_on" if batching else "batching_off"] = rows
    return report


async def lookup_latency(
    bench: Bench,
    entries: tuple[Sequence[str], NDArray[np.float32]],
    probes: tuple[Sequence[str], NDArray[np.float32]],
    *,
    sizes: Sequence[int],
    lookups: int,
    backends: dict[str, CacheConfig],
) -> dict[str, Any]:
    """`SemanticCache.lookup` latency of the bridge's own cache, filled with `size` entries.

    ``exact``: a stored query (exact tier). ``semantic``: a query that is not stored, so the
    lookup goes on to the vector search and the guard (it may still hit).
    """
    texts, vectors = entries
    target = f"openai:{bench.model}"
    report: dict[str, Any] = {}
    for backend, settings in backends.items():
        for size in sizes:
            async with bench.bridge(cache=settings) as bridge:
                cache = _cache(bridge)
                await _probe(cache, settings.redis_url)
                try:
                    await _fill(cache, target, texts[:size], vectors[:size])
                    stored = np.random.default_rng(size).integers(0, size, lookups)
                    exact = [(texts[i], vectors[i]) for i in stored.tolist()]
                    semantic = [
                        (probes[0][i % len(probes[0])], probes[1][i % len(probes[0])])
                        for i in range(lookups)
                    ]
                    figures = {}
                    for kind, items in (("exact", exact), ("semantic", semantic)):
                        figures[kind] = await _time_lookups(cache, target, items)
                finally:
                    await cache.clear(bridge.config.cache.namespace)
            report.setdefault(backend, {})[str(size)] = figures
    return report


async def _fill(
    cache: Any, target: str, texts: Sequence[str], vectors: NDArray[np.float32]
) -> None:
    # Concurrent stores fill Redis quickly; redis-py's pool holds 100 connections.
    for start in range(0, len(texts), 50):
        await asyncio.gather(
            *(
                cache.store(
                    text, vector, target_key=target, response={"response": REPLY_PREFIX + text}
                )
                for text, vector in zip(texts[start : start + 50], vectors[start : start + 50])
            )
        )


async def _time_lookups(
    cache: Any, target: str, items: Sequence[tuple[str, NDArray[np.float32]]]
) -> dict[str, Any]:
    async def lookup(item: tuple[str, NDArray[np.float32]]) -> bool:
        return await cache.lookup(item[0], item[1], target_key=target) is not None

    for item in items[:WARMUP]:
        await lookup(item)
    seconds, hits = [], 0
    for item in items:
        elapsed, hit = await _time_one(lookup(item))
        seconds.append(elapsed)
        hits += hit
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return {
        "lookups": len(items),
        "hits": hits,
        "p50_ms": round(float(p50), 4),
        "p99_ms": round(float(p99), 4),
    }


async def _time_one(call: Awaitable[_T]) -> tuple[float, _T]:
    """Wall time of awaiting `call`, with the garbage collector held off meanwhile."""
    gc.disable()
    try:
        start = time.perf_counter()
        output = await call
        return time.perf_counter() - start, output
    finally:
        gc.enable()


async def overhead(bench: Bench, queries: Sequence[str], sqlite_path: Path) -> dict[str, Any]:
    """What `bridge.execute` adds to a direct SDK call, on a cache miss and on a cache hit.

    The direct call and the bridges' calls are interleaved query by query, so load changes on
    the shared machine hit them alike; the overhead is the median of per-query differences.
    """
    openai = require("openai", extra="openai")
    sdk = openai.AsyncOpenAI(api_key="bench", base_url=bench.server.openai_base_url, max_retries=0)
    names = ("direct_sdk", "memory_miss", "sqlite_miss", "memory_hit", "sqlite_hit")
    samples: dict[str, list[float]] = {name: [] for name in names}
    unexpected = Counter[str]()

    async def direct(query: str) -> None:
        messages = [{"role": "user", "content": query}]
        await sdk.chat.completions.create(model=bench.model, messages=messages)

    try:
        async with (
            bench.bridge() as memory,
            bench.bridge(state=StateConfig(backend="sqlite", sqlite_path=str(sqlite_path))) as lite,
        ):
            for phase in ("miss", "hit"):
                for i, query in enumerate(queries):
                    record = i >= WARMUP
                    if phase == "miss":
                        seconds, _ = await _time_one(direct(query))
                        samples["direct_sdk"].append(seconds if record else np.nan)
                    for state, bridge in (("memory", memory), ("sqlite", lite)):
                        seconds, result = await _time_one(bridge.execute(_DECISION, query))
                        # A semantic hit among the misses (or a miss among the hits) is not
                        # the path being timed: leave it out, and count it.
                        expected = result.cached == (phase == "hit") and not result.deduplicated
                        unexpected[f"{state}_{phase}"] += not expected
                        sample = seconds if record and expected else np.nan
                        samples[f"{state}_{phase}"].append(sample)
    finally:
        await sdk.close()
    return _overhead_report(samples, unexpected)


def _overhead_report(samples: dict[str, list[float]], unexpected: Counter[str]) -> dict[str, Any]:
    direct = np.asarray(samples["direct_sdk"]) * 1000
    report: dict[str, Any] = {"direct_sdk_p50_ms": _median(direct)}
    for name, values in samples.items():
        if name == "direct_sdk":
            continue
        ms = np.asarray(values) * 1000
        report[name] = {
            "calls": int(np.isfinite(ms).sum()),
            "left_out": unexpected[name],
            "p50_ms": _median(ms),
            "p90_ms": _quantile(ms, 90),
            "overhead_p50_ms": _median(ms - direct) if name.endswith("miss") else _median(ms),
        }
    return report


def _median(values: NDArray[np.float64]) -> float | None:
    return _quantile(values, 50)


def _quantile(values: NDArray[np.float64], q: float) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(np.percentile(finite, q)), 4) if finite.size else None
