"""SemanticCache: both tiers, isolation, TTL, failures never cached; memory and Redis backends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest
from stratarouter_core.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidQueryError,
    StrataRouterError,
)
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime.cache import (
    CacheBackendError,
    MemoryCacheBackend,
    RedisCacheBackend,
    SemanticCache,
    UncacheableResponseError,
    normalise_query,
    params_digest,
)
from stratarouter_runtime.guard import QueryGuard

TARGET = "openai:gpt-4o-mini"
DIM = 32


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def near(vector: np.ndarray, cosine: float, seed: int = 99) -> np.ndarray:
    """A unit vector at exactly `cosine` from `vector`."""
    noise = np.random.default_rng(seed).standard_normal(DIM).astype(np.float64)
    noise -= noise @ vector * vector
    noise /= np.linalg.norm(noise)
    out = cosine * vector + np.sqrt(1 - cosine**2) * noise
    return out.astype(np.float32)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory(clock: FakeClock) -> MemoryCacheBackend:
    return MemoryCacheBackend(clock=clock)


@pytest.fixture
async def redis_backend(redis_url):
    prefix = f"stratarouter-test:{uuid.uuid4().hex[:12]}"
    backend = RedisCacheBackend(redis_url, key_prefix=prefix)
    yield backend
    await backend.clear()  # SCAN + UNLINK under this test's prefix only
    await backend.aclose()


@pytest.fixture(params=["memory", "redis"])
def backend(request):
    return request.getfixturevalue("memory" if request.param == "memory" else "redis_backend")


# --- helpers -------------------------------------------------------------------------------------


def test_normalise_query() -> None:
    expected = "what is the capital of france"
    assert normalise_query("  What is   the capital\tof France?!  ") == expected
    assert normalise_query("Straße…") == "strasse"
    assert normalise_query("2+3") == "2+3"


def test_params_digest_is_stable_and_order_free() -> None:
    assert params_digest({"a": 1, "b": [1, 2]}) == params_digest({"b": [1, 2], "a": 1})
    assert params_digest({"a": 1}) != params_digest({"a": 2})
    with pytest.raises(UncacheableResponseError):
        params_digest({"a": object()})


# --- both backends -------------------------------------------------------------------------------


async def test_exact_tier_matches_normalised_query(backend) -> None:
    cache = SemanticCache(backend)
    await cache.store("What is the capital of France?", None, target_key=TARGET,
                      response={"text": "Paris"})
    hit = await cache.lookup("  what is the CAPITAL of france ", None, target_key=TARGET)
    assert hit is not None
    assert (hit.tier, hit.similarity, hit.response) == ("exact", 1.0, {"text": "Paris"})
    assert hit.cached_query == "What is the capital of France?"
    assert await cache.lookup("what is the capital of spain", None, target_key=TARGET) is None


async def test_exact_tier_keys_on_params(backend) -> None:
    cache = SemanticCache(backend)
    params = {"temperature": 0, "system": "be brief"}
    await cache.store("hi", None, target_key=TARGET, params=params, response={"text": "hello"})
    assert await cache.lookup("hi", None, target_key=TARGET,
                              params={"system": "be brief", "temperature": 0}) is not None
    assert await cache.lookup("hi", None, target_key=TARGET, params={"temperature": 1}) is None
    assert await cache.lookup("hi", None, target_key=TARGET) is None


async def test_semantic_tier_hits_above_threshold_only(backend) -> None:
    cache = SemanticCache(backend, similarity_threshold=0.95)
    v = unit(1)
    await cache.store("How do I reset my password?", v, target_key=TARGET,
                      response={"text": "Click 'forgot password'."})
    hit = await cache.lookup("how can I reset my password", near(v, 0.97), target_key=TARGET)
    assert hit is not None and hit.tier == "semantic"
    assert hit.similarity == pytest.approx(0.97, abs=1e-4)
    assert hit.response == {"text": "Click 'forgot password'."}
    assert await cache.lookup("how can I reset my password", near(v, 0.93),
                              target_key=TARGET) is None
    assert cache.stats.semantic_hits == 1 and cache.stats.lookups == 2


async def test_semantic_tier_serves_the_closest_entry(backend) -> None:
    cache = SemanticCache(backend, similarity_threshold=0.9)
    v = unit(2)
    await cache.store("reset my password please", near(v, 0.95, seed=1), target_key=TARGET,
                      response={"n": 1})
    await cache.store("please reset my password", near(v, 0.99, seed=2), target_key=TARGET,
                      response={"n": 2})
    await cache.store("my password needs a reset", near(v, 0.92, seed=3), target_key=TARGET,
                      response={"n": 3})
    hit = await cache.lookup("reset my password", v, target_key=TARGET)
    assert hit is not None and hit.response == {"n": 2}


async def test_guard_vetoes_negation_even_with_identical_vectors(backend) -> None:
    cache = SemanticCache(backend)
    v = unit(3)
    await cache.store("cancel my order", v, target_key=TARGET, response={"text": "Cancelled."})
    assert await cache.lookup("don't cancel my order", v, target_key=TARGET) is None
    assert cache.stats.guard_rejections == 1
    plain = SemanticCache(backend, guard=None)  # the usual (unsafe) rule would serve it
    hit = await plain.lookup("don't cancel my order", v, target_key=TARGET)
    assert hit is not None and hit.response == {"text": "Cancelled."}


async def test_guard_skips_a_vetoed_candidate_for_the_next_one(backend) -> None:
    cache = SemanticCache(backend, similarity_threshold=0.9)
    v = unit(4)
    await cache.store("flights from Paris to Rome", near(v, 0.999, seed=5), target_key=TARGET,
                      response={"route": "PAR-ROM"})
    await cache.store("flights from Rome to Paris today", near(v, 0.99, seed=6),
                      target_key=TARGET, response={"route": "ROM-PAR"})
    hit = await cache.lookup("flights from Rome to Paris", v, target_key=TARGET)
    assert hit is not None and hit.response == {"route": "ROM-PAR"}


async def test_the_guard_model_reads_the_cosine_of_each_candidate(backend) -> None:
    """A shared-words pair with an added qualifier needs a higher cosine than a paraphrase."""
    cache = SemanticCache(backend)
    assert cache.similarity_threshold == 0.9
    v = unit(5)
    await cache.store("best restaurants in Vancouver", near(v, 0.93, seed=7), target_key=TARGET,
                      response={"city": "all"})
    assert await cache.lookup("best restaurants in downtown Vancouver", v, target_key=TARGET) is None
    assert cache.stats.guard_rejections == 1
    await cache.store("What is the fastest way to lose weight?", near(v, 0.93, seed=8),
                      target_key=TARGET, response={"tip": "walk"})
    hit = await cache.lookup("How do I lose weight fast?", v, target_key=TARGET)
    assert hit is not None and hit.response == {"tip": "walk"}


async def test_targets_are_isolated(backend) -> None:
    cache = SemanticCache(backend)
    v = unit(5)
    await cache.store("summarise this", v, target_key="openai:gpt-4o", response={"m": "4o"})
    assert await cache.lookup("summarise this", v, target_key="anthropic:claude") is None
    assert await cache.lookup("please summarise this", v, target_key="anthropic:claude") is None
    hit = await cache.lookup("please summarise this", v, target_key="openai:gpt-4o")
    assert hit is not None and hit.response == {"m": "4o"}


async def test_namespaces_are_isolated(backend) -> None:
    cache = SemanticCache(backend, namespace="tenant-a")
    v = unit(6)
    await cache.store("my balance", v, target_key=TARGET, response={"balance": 10})
    assert await cache.lookup("my balance", v, target_key=TARGET, namespace="tenant-b") is None
    assert await cache.lookup("what's my balance", v, target_key=TARGET,
                              namespace="tenant-b") is None
    assert await cache.lookup("my balance", v, target_key=TARGET) is not None
    await cache.store("my balance", v, target_key=TARGET, response={"balance": 99},
                      namespace="tenant-b")
    await cache.clear("tenant-b")
    hit = await cache.lookup("my balance", v, target_key=TARGET)
    assert hit is not None and hit.response == {"balance": 10}
    assert await cache.lookup("my balance", v, target_key=TARGET, namespace="tenant-b") is None


async def test_failures_are_never_cached(backend) -> None:
    cache = SemanticCache(backend)
    v = unit(7)

    async def failing() -> dict:
        raise TimeoutError("provider timed out")

    with pytest.raises(TimeoutError):
        await cache.get_or_compute("slow question", v, target_key=TARGET, call=failing)
    assert await cache.lookup("slow question", v, target_key=TARGET) is None
    assert cache.stats.stores == 0

    async def working() -> dict:
        return {"text": "fine"}

    response, hit = await cache.get_or_compute("slow question", v, target_key=TARGET, call=working)
    assert (response, hit) == ({"text": "fine"}, None)
    response, hit = await cache.get_or_compute("slow question", v, target_key=TARGET, call=failing)
    assert response == {"text": "fine"} and hit is not None and hit.tier == "exact"


@pytest.mark.parametrize(
    "response",
    [
        RuntimeError("boom"),
        "partial text",
        {"text": "ok", "raw": object()},
        {"text": "ok", "score": float("nan")},
        {"chunks": {1, 2}},
    ],
)
async def test_only_json_serialisable_mappings_are_stored(backend, response) -> None:
    cache = SemanticCache(backend)
    with pytest.raises(UncacheableResponseError) as info:
        await cache.store("q", unit(8), target_key=TARGET, response=response)
    assert isinstance(info.value, StrataRouterError)
    assert await cache.lookup("q", unit(8), target_key=TARGET) is None


async def test_hits_return_a_fresh_copy(backend) -> None:
    cache = SemanticCache(backend)
    await cache.store("q", None, target_key=TARGET, response={"items": [1, 2]})
    first = await cache.lookup("q", None, target_key=TARGET)
    assert first is not None
    first.response["items"].append(3)  # type: ignore[index]
    second = await cache.lookup("q", None, target_key=TARGET)
    assert second is not None and second.response == {"items": [1, 2]}


async def test_encoder_embeds_when_no_embedding_is_given(backend) -> None:
    # the soft model reads all-MiniLM-L6-v2 cosines; hashing vectors need the lexical checks only
    cache = SemanticCache(backend, encoder=HashingEncoder(dimension=64), similarity_threshold=0.5,
                          guard=QueryGuard(model=None))
    await cache.store("how do I reset my password", None, target_key=TARGET, response={"ok": 1})
    hit = await cache.lookup("how can I reset my password", None, target_key=TARGET)
    assert hit is not None and hit.tier == "semantic"


async def test_bad_queries_and_embeddings_are_rejected(backend) -> None:
    cache = SemanticCache(backend)
    with pytest.raises(InvalidQueryError):
        await cache.lookup("  ?! ", None, target_key=TARGET)
    with pytest.raises(InvalidQueryError):
        await cache.lookup("q", np.zeros(DIM, dtype=np.float32), target_key=TARGET)
    with pytest.raises(InvalidQueryError):
        await cache.store("q", np.full(DIM, np.nan, dtype=np.float32), target_key=TARGET,
                          response={})


def test_settings_are_validated(memory) -> None:
    for bad in ({"similarity_threshold": 0.0}, {"similarity_threshold": 1.5}, {"ttl_s": 0},
                {"max_candidates": 0}, {"namespace": ""}):
        with pytest.raises(ConfigError):
            SemanticCache(memory, **bad)
    with pytest.raises(ConfigError):
        MemoryCacheBackend(max_entries=0)


# --- memory backend ------------------------------------------------------------------------------


async def test_memory_ttl_expires_both_tiers(memory, clock) -> None:
    cache = SemanticCache(memory, ttl_s=60)
    v = unit(9)
    await cache.store("weather in Oslo", v, target_key=TARGET, response={"t": -3})
    clock.now += 59
    assert (await cache.lookup("weather in Oslo", v, target_key=TARGET)).tier == "exact"
    assert (await cache.lookup("weather in Oslo?!", near(v, 0.99), target_key=TARGET)) is not None
    assert (await cache.lookup("Oslo weather", near(v, 0.99), target_key=TARGET)).tier == "semantic"
    clock.now += 2
    assert await cache.lookup("weather in Oslo", v, target_key=TARGET) is None
    assert await cache.lookup("Oslo weather", near(v, 0.99), target_key=TARGET) is None
    assert len(memory) == 0


async def test_memory_lru_cap_evicts_least_recently_used(clock) -> None:
    backend = MemoryCacheBackend(max_entries=2, clock=clock)
    cache = SemanticCache(backend)
    vectors = [unit(20 + i) for i in range(3)]
    await cache.store("first", vectors[0], target_key=TARGET, response={"n": 0})
    await cache.store("second", vectors[1], target_key=TARGET, response={"n": 1})
    assert await cache.lookup("first", None, target_key=TARGET) is not None  # now most recent
    await cache.store("third", vectors[2], target_key=TARGET, response={"n": 2})
    assert len(backend) == 2
    assert await cache.lookup("second", None, target_key=TARGET) is None
    assert await cache.lookup("2nd?", vectors[1], target_key=TARGET) is None
    assert await cache.lookup("first", vectors[0], target_key=TARGET) is not None


async def test_memory_restore_replaces_the_entry(memory) -> None:
    cache = SemanticCache(memory)
    await cache.store("q", unit(1), target_key=TARGET, response={"v": 1})
    await cache.store("Q?", unit(1), target_key=TARGET, response={"v": 2})
    assert len(memory) == 1
    assert (await cache.lookup("q", unit(1), target_key=TARGET)).response == {"v": 2}


async def test_memory_rejects_another_dimension(memory) -> None:
    cache = SemanticCache(memory)
    await cache.store("q", unit(1), target_key=TARGET, response={})
    with pytest.raises(DimensionMismatchError):
        await cache.lookup("other", np.ones(DIM + 1, dtype=np.float32), target_key=TARGET)


async def test_memory_lookup_at_10k_entries(memory) -> None:
    cache = SemanticCache(memory, similarity_threshold=0.95)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((10_000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, vector in enumerate(vectors):
        await cache.store(f"question number {i}", vector, target_key=TARGET, response={"i": i})
    probe = vectors[1234] + 0.1 * vectors[99]
    hit = await cache.lookup("question number 1234 again", probe, target_key=TARGET)
    assert hit is not None and hit.response == {"i": 1234}
    started = time.perf_counter()
    for _ in range(50):
        await cache.lookup("something else entirely", vectors[4321], target_key=TARGET)
    per_lookup = (time.perf_counter() - started) / 50
    assert per_lookup < 0.05  # generous bound for loaded CI machines; the report has medians


@pytest.mark.parametrize("threshold", [0.5, 0.9, 0.95, 0.99])
async def test_search_equals_brute_force(memory, threshold) -> None:
    """The 64-coordinate pre-filter of large groups never drops a qualifying entry."""
    rng = np.random.default_rng(1)
    dim, n = 384, 3000
    base = rng.standard_normal((n, dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[:40].copy()
    for k, query in enumerate(queries):  # plant neighbours at cosines around the threshold,
        for j, cosine in enumerate((0.999, 0.97, 0.951, 0.949, 0.9, 0.6)):  # some differing
            noise = rng.standard_normal(dim).astype(np.float32)  # mostly in the first 64 dims
            if j % 2:
                noise[64:] = 0
            noise -= noise @ query * query
            noise /= np.linalg.norm(noise)
            base[40 + 6 * k + j] = cosine * query + np.sqrt(1 - cosine**2) * noise
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    cache = SemanticCache(memory)
    for i, vector in enumerate(base):
        await cache.store(f"entry {i}", vector, target_key=TARGET, response={"i": i})
    group = next(iter(memory._groups))[1]
    for query in queries:
        found = await memory.nearest("default", group, query, threshold, limit=n)
        cosines = base.astype(np.float64) @ query.astype(np.float64)
        got = {int(entry.query.split()[1]) for entry, _ in found}
        assert set(np.flatnonzero(cosines >= threshold + 1e-5).tolist()) <= got  # float32 sums
        assert got <= set(np.flatnonzero(cosines >= threshold - 1e-5).tolist())  # differ a bit
        scores = [score for _, score in found]
        assert scores == sorted(scores, reverse=True)


# --- Redis backend -------------------------------------------------------------------------------


async def test_redis_ttl_is_enforced_by_redis(redis_backend, redis_url) -> None:
    import redis.asyncio

    cache = SemanticCache(redis_backend, ttl_s=1)
    v = unit(10)
    await cache.store("short lived", v, target_key=TARGET, response={"x": 1})
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        pattern = f"{redis_backend.key_prefix}:*"
        keys = [k async for k in client.scan_iter(match=pattern)]
        assert len(keys) == 4  # exact key, entry hash, arrival and expiry indexes
        ttls = [await client.pttl(k) for k in keys]
        assert all(0 < ttl <= 1000 for ttl in ttls), ttls
        assert (await cache.lookup("short lived", v, target_key=TARGET)).tier == "exact"
        assert (await cache.lookup("short-lived?", near(v, 0.99), target_key=TARGET)) is not None
        await asyncio.sleep(1.5)
        assert await cache.lookup("short lived", v, target_key=TARGET) is None
        assert await cache.lookup("short-lived?", near(v, 0.99), target_key=TARGET) is None
        assert [k async for k in client.scan_iter(match=pattern)] == []  # Redis dropped them
    finally:
        await client.aclose()


_STORE_IN_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    import numpy as np
    from stratarouter_runtime.cache import RedisCacheBackend, SemanticCache

    async def main():
        url, prefix, vector = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        backend = RedisCacheBackend(url, key_prefix=prefix)
        cache = SemanticCache(backend, namespace="shared")
        await cache.store("How do I export my contacts?", np.array(vector, dtype=np.float32),
                          target_key="openai:gpt-4o-mini", response={"text": "Settings > Export"})
        await backend.aclose()

    asyncio.run(main())
    """
)


async def test_a_second_process_sees_what_the_first_stored(redis_backend, redis_url) -> None:
    cache = SemanticCache(redis_backend, namespace="shared")
    v = unit(11)
    assert await cache.lookup("how can I export my contacts", v, target_key=TARGET) is None
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _STORE_IN_CHILD, redis_url, redis_backend.key_prefix,
         json.dumps(v.tolist())],
        capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 0, child.stderr
    semantic = await cache.lookup("how can I export my contacts", near(v, 0.98), target_key=TARGET)
    assert semantic is not None and semantic.tier == "semantic"
    assert semantic.response == {"text": "Settings > Export"}
    exact = await cache.lookup("how do i export my contacts", None, target_key=TARGET)
    assert exact is not None and exact.tier == "exact"
    other_tenant = SemanticCache(redis_backend, namespace="someone-else")
    assert await other_tenant.lookup("how do I export my contacts?", v, target_key=TARGET) is None


async def test_redis_group_cap_evicts_oldest_and_mirrors_forget_it(redis_url) -> None:
    prefix = f"stratarouter-test:{uuid.uuid4().hex[:12]}"
    writer = RedisCacheBackend(redis_url, key_prefix=prefix, max_entries=2)
    reader = RedisCacheBackend(redis_url, key_prefix=prefix, max_entries=2)
    try:
        write, read = SemanticCache(writer), SemanticCache(reader)
        vectors = [unit(30 + i) for i in range(3)]
        await write.store("alpha question", vectors[0], target_key=TARGET, response={"n": 0})
        assert await read.lookup("the alpha question", vectors[0], target_key=TARGET) is not None
        await write.store("beta question", vectors[1], target_key=TARGET, response={"n": 1})
        await write.store("gamma question", vectors[2], target_key=TARGET, response={"n": 2})
        assert await read.lookup("the alpha question", vectors[0], target_key=TARGET) is None
        hit = await read.lookup("the gamma question", vectors[2], target_key=TARGET)
        assert hit is not None and hit.response == {"n": 2}
    finally:
        await writer.clear()
        await writer.aclose()
        await reader.aclose()


async def test_unreachable_redis_is_a_cache_backend_error() -> None:
    cache = SemanticCache(RedisCacheBackend("redis://127.0.0.1:1/0"))
    with pytest.raises(CacheBackendError) as info:
        await cache.lookup("q", unit(1), target_key=TARGET)
    assert isinstance(info.value, StrataRouterError)
    await cache.aclose()


async def test_redis_burst_beyond_the_pool_waits_instead_of_failing(redis_url) -> None:
    """More concurrent calls than connections queue for one; none errors into a silent miss."""
    prefix = f"stratarouter-test:{uuid.uuid4().hex[:12]}"
    backend = RedisCacheBackend(redis_url, key_prefix=prefix, max_connections=3)
    cache = SemanticCache(backend)
    try:
        await asyncio.gather(
            *[
                cache.store(f"question {i}", unit(100 + i), target_key=TARGET, response={"n": i})
                for i in range(40)
            ]
        )
        hits = await asyncio.gather(
            *[cache.lookup(f"question {i}", None, target_key=TARGET) for i in range(40)]
        )
        assert [h.response if h else None for h in hits] == [{"n": i} for i in range(40)]
    finally:
        await backend.clear()
        await backend.aclose()


def test_redis_pool_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        RedisCacheBackend("redis://127.0.0.1:6379/0", max_connections=0)
    with pytest.raises(ConfigError, match="pool_timeout"):
        RedisCacheBackend("redis://127.0.0.1:6379/0", pool_timeout=0)
