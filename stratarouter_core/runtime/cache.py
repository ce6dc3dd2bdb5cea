"""Semantic response cache: an exact tier, then a guarded semantic tier, isolated per namespace.

A lookup first tries the **exact tier**: the normalised query (casefolded, whitespace collapsed,
trailing punctuation stripped), the target key and a stable hash of the request parameters.
Then the **semantic tier**: one matrix-vector product between the query embedding and every
live entry stored for the same namespace, target and parameters; the candidates at or above
`similarity_threshold` are offered, best first, to the `QueryGuard`, which vetoes pairs that
visibly ask for something else (a negation, other numbers or names, swapped roles, antonyms).

Only completed responses are cached: `store` takes a finished, JSON-serialisable mapping, and
callers must not call it for errors, timeouts or partial streams. `get_or_compute` does the
whole dance (look up; on a miss call, and store only what returned normally).

Backends: `MemoryCacheBackend` (in-process, TTL by timestamps, LRU cap) and `RedisCacheBackend`
(shared by processes; Redis enforces the TTL; each process keeps a mirror of the vectors that
one round trip per lookup brings up to date).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from .._deps import require
from ..encoders.base import BaseEncoder
from ..errors import ConfigError, DimensionMismatchError, InvalidQueryError, StrataRouterError
from .guard import QueryGuard

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_GUARD",
    "DEFAULT_SIMILARITY_THRESHOLD",
    "CacheBackend",
    "CacheBackendError",
    "CacheEntry",
    "CacheHit",
    "CacheRecord",
    "CacheStats",
    "MemoryCacheBackend",
    "RedisCacheBackend",
    "SemanticCache",
    "UncacheableResponseError",
    "normalise_query",
    "params_digest",
]

F32 = NDArray[np.float32]
DEFAULT_GUARD = QueryGuard()
"""The guard a `SemanticCache` uses unless told otherwise (all checks on)."""
DEFAULT_SIMILARITY_THRESHOLD = 0.9
"""Default cosine threshold of the semantic tier (how it was chosen: `SemanticCache`)."""


class UncacheableResponseError(StrataRouterError, ValueError):
    """A response (or request params) that cannot be cached: not a JSON-serialisable mapping."""


class CacheBackendError(StrataRouterError, RuntimeError):
    """The cache storage failed (Redis unreachable, a command error); `__cause__` has details."""


_WHITESPACE = re.compile(r"\s+")


def normalise_query(text: str) -> str:
    """The exact-tier form of a query: casefolded, whitespace collapsed, trailing punctuation cut.

    Example:
        >>> normalise_query("  What is   the Capital of France?! ")
        'what is the capital of france'
    """
    text = _WHITESPACE.sub(" ", text.casefold()).strip()
    end = len(text)
    while end and (text[end - 1] == " " or unicodedata.category(text[end - 1]).startswith("P")):
        end -= 1
    return text[:end]


def params_digest(params: Mapping[str, Any]) -> str:
    """A stable hash of request parameters (key order does not matter).

    Example:
        >>> params_digest({"temperature": 0, "max_tokens": 5}) == params_digest(
        ...     {"max_tokens": 5, "temperature": 0})
        True
    """
    try:
        text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UncacheableResponseError(f"cache params must be JSON-serialisable: {exc}") from exc
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached response as the backends store it.

    Attributes:
        entry_id: unique id of the entry.
        query: the query as the caller wrote it.
        payload: the response, JSON-encoded (decoded afresh for every hit, so no caller can
            mutate what another one receives).
        stored_at: Unix time of the store.
        expires_at: Unix time after which the entry is never served.
    """

    entry_id: str
    query: str
    payload: str
    stored_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """What `SemanticCache.store` hands to a backend.

    Attributes:
        namespace: the tenant/user namespace (also part of both keys).
        exact_key: key of the exact tier.
        group: key of the semantic group (namespace + target + params).
        entry: the entry.
        vector: the L2-normalised query embedding, or None (exact tier only).
    """

    namespace: str
    exact_key: str
    group: str
    entry: CacheEntry
    vector: F32 | None


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached response served for a query.

    Attributes:
        response: the cached response (a fresh copy).
        tier: ``"exact"`` or ``"semantic"``.
        similarity: cosine between the two queries (1.0 for the exact tier).
        cached_query: the query the response was stored for.
        stored_at: Unix time of the store.
    """

    response: Mapping[str, Any]
    tier: Literal["exact", "semantic"]
    similarity: float
    cached_query: str
    stored_at: float


@dataclass(slots=True)
class CacheStats:
    """Counters of one `SemanticCache` (for metrics)."""

    lookups: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    guard_rejections: int = 0
    stores: int = 0

    @property
    def hit_ratio(self) -> float:
        """Hits per lookup (0.0 before the first lookup)."""
        return (self.exact_hits + self.semantic_hits) / self.lookups if self.lookups else 0.0


class CacheBackend(Protocol):
    """Storage of a `SemanticCache`. Both built-in backends implement it."""

    def now(self) -> float:
        """Current Unix time as the backend sees it (the memory backend's clock is injectable)."""
        ...

    async def get_exact(self, namespace: str, key: str) -> CacheEntry | None:
        """The live entry stored under `key`, or None."""
        ...

    async def nearest(
        self, namespace: str, group: str, vector: F32, threshold: float, limit: int
    ) -> list[tuple[CacheEntry, float]]:
        """Up to `limit` live entries of `group` with cosine >= `threshold`, best first."""
        ...

    async def put(self, record: CacheRecord, ttl_s: float) -> None:
        """Store `record` for `ttl_s` seconds (both tiers)."""
        ...

    async def clear(self, namespace: str | None = None) -> None:
        """Drop the entries of `namespace` (all of them when None)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


_BLOCK_ROWS = 1024
_HEAD = 64


class _VectorBlock:
    """Unit vectors of one semantic group in contiguous arrays, searched with vectorised products.

    Above 1024 rows a search first computes, with one product over every row's first 64
    coordinates, a lower bound of each row's distance to the query: for unit vectors
    |q - v|^2 = 2 - 2 cos, and the distance over 64 coordinates can only be smaller. Rows whose
    bound already exceeds 2 - 2 * threshold cannot qualify; the exact cosine is computed for
    the others only (a handful on sentence embeddings). The result is exact, and the memory
    read drops six-fold for 384-dimensional vectors.
    """

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.head = min(_HEAD, dimension) if dimension >= 2 * _HEAD else 0
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.vectors = np.empty((16, dimension), dtype=np.float32)
        self.heads = np.empty((16, self.head), dtype=np.float32)
        self.head_sq = np.empty(16, dtype=np.float32)
        self.expires = np.empty(16, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, entry_id: str, vector: F32, expires_at: float) -> None:
        if entry_id in self.rows:
            return
        if vector.shape != (self.dimension,):
            raise DimensionMismatchError(
                f"cache vectors have dimension {self.dimension}, got shape {vector.shape}"
            )
        n = len(self.ids)
        if n == len(self.expires):
            grow = [np.concatenate([a, np.empty_like(a)]) for a in self._arrays()]
            self.vectors, self.heads, self.head_sq, self.expires = grow
        self._set(n, vector, expires_at)
        self.rows[entry_id] = n
        self.ids.append(entry_id)

    def remove(self, entry_id: str) -> None:
        row = self.rows.pop(entry_id, None)
        if row is None:
            return
        last = len(self.ids) - 1
        if row != last:  # move the last row into the hole
            for array in self._arrays():
                array[row] = array[last]
            moved = self.ids[last]
            self.ids[row] = moved
            self.rows[moved] = row
        self.ids.pop()

    def search(
        self, query: F32, threshold: float, now: float, limit: int
    ) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0:
            return []
        if query.shape != (self.dimension,):
            raise DimensionMismatchError(
                f"cache vectors have dimension {self.dimension}, query has {query.shape[0]}"
            )
        rows, scores = self._candidates(query, threshold, n)
        keep = (scores >= threshold) & (self.expires[rows] > now)
        rows, scores = rows[keep], scores[keep]
        if len(rows) > limit:
            top = np.argpartition(-scores, limit - 1)[:limit]
            rows, scores = rows[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [(self.ids[i], float(s)) for i, s in zip(rows[order], scores[order], strict=True)]

    def expired(self, now: float) -> list[str]:
        return [self.ids[i] for i in np.flatnonzero(self.expires[: len(self.ids)] <= now)]

    def _arrays(self) -> list[NDArray[Any]]:
        return [self.vectors, self.heads, self.head_sq, self.expires]

    def _set(self, row: int, vector: F32, expires_at: float) -> None:
        self.vectors[row] = vector
        self.heads[row] = vector[: self.head]
        self.head_sq[row] = vector[: self.head] @ vector[: self.head]
        self.expires[row] = expires_at

    def _candidates(self, query: F32, threshold: float, n: int) -> tuple[NDArray[np.intp], F32]:
        """Rows that may reach `threshold`, with their exact cosines."""
        if self.head and n > _BLOCK_ROWS:
            q_head = query[: self.head]
            bound = self.head_sq[:n] - 2.0 * _product(self.heads, q_head, n) + q_head @ q_head
            rows = np.flatnonzero(bound <= 2.0 - 2.0 * threshold + 1e-4)  # slack: float error
            if 4 * len(rows) < n:  # selective: score the survivors only
                scores: F32 = self.vectors[rows] @ query
                return rows, scores
        return np.arange(n), _product(self.vectors, query, n)


def _product(matrix: F32, vector: F32, n: int) -> F32:
    """`matrix[:n] @ vector` in row blocks of 1024.

    OpenBLAS runs products of this size on one thread; one product over all rows goes
    multi-threaded, which costs 10-30x more on a busy machine.
    """
    if n <= _BLOCK_ROWS:
        out: F32 = matrix[:n] @ vector
        return out
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        np.matmul(matrix[start:stop], vector, out=out[start:stop])
    return out


@dataclass(slots=True)
class _Slot:
    entry: CacheEntry
    namespace: str
    exact_key: str
    group: str | None


class MemoryCacheBackend:
    """In-process cache storage: TTL by timestamps, least-recently-used eviction.

    Args:
        max_entries: most entries kept (over all namespaces); the least recently used goes first.
        clock: returns the current Unix time; inject a fake one in tests.

    Example:
        >>> backend = MemoryCacheBackend(max_entries=1000)
        >>> len(backend)
        0
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        """Create an empty store."""
        if max_entries < 1:
            raise ConfigError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # LRU order, oldest first
        self._exact: dict[tuple[str, str], str] = {}
        self._groups: dict[tuple[str, str], _VectorBlock] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def now(self) -> float:
        """The injected clock's time."""
        return self._clock()

    async def get_exact(self, namespace: str, key: str) -> CacheEntry | None:
        """The live entry under `key`; an expired one is dropped."""
        entry_id = self._exact.get((namespace, key))
        if entry_id is None:
            return None
        return self._touch(entry_id)

    async def nearest(
        self, namespace: str, group: str, vector: F32, threshold: float, limit: int
    ) -> list[tuple[CacheEntry, float]]:
        """Search the group's block (expired rows are masked, then dropped)."""
        block = self._groups.get((namespace, group))
        if block is None:
            return []
        now = self.now()
        found = block.search(vector, threshold, now, limit)
        if len(block) > 64 and len(found) == 0:  # amortised clean-up of expired rows
            for entry_id in block.expired(now):
                self._drop(entry_id)
        hits = []
        for entry_id, score in found:
            entry = self._touch(entry_id)
            if entry is not None:
                hits.append((entry, score))
        return hits

    async def put(self, record: CacheRecord, ttl_s: float) -> None:
        """Store both tiers of `record`, evicting the least recently used entries if full."""
        old = self._exact.get((record.namespace, record.exact_key))
        if old is not None:
            self._drop(old)
        group = None
        if record.vector is not None:
            group = record.group
            block = self._groups.get((record.namespace, group))
            if block is None:
                block = self._groups[(record.namespace, group)] = _VectorBlock(len(record.vector))
            block.add(record.entry.entry_id, record.vector, record.entry.expires_at)
        self._slots[record.entry.entry_id] = _Slot(
            record.entry, record.namespace, record.exact_key, group
        )
        self._exact[(record.namespace, record.exact_key)] = record.entry.entry_id
        while len(self._slots) > self.max_entries:
            self._drop(next(iter(self._slots)))

    async def clear(self, namespace: str | None = None) -> None:
        """Drop every entry of `namespace` (everything when None)."""
        doomed = [i for i, s in self._slots.items() if namespace in (None, s.namespace)]
        for entry_id in doomed:
            self._drop(entry_id)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _touch(self, entry_id: str) -> CacheEntry | None:
        slot = self._slots.get(entry_id)
        if slot is None:
            return None
        if slot.entry.expires_at <= self.now():
            self._drop(entry_id)
            return None
        self._slots.move_to_end(entry_id)
        return slot.entry

    def _drop(self, entry_id: str) -> None:
        slot = self._slots.pop(entry_id, None)
        if slot is None:
            return
        if self._exact.get((slot.namespace, slot.exact_key)) == entry_id:
            del self._exact[(slot.namespace, slot.exact_key)]
        if slot.group is not None:
            key = (slot.namespace, slot.group)
            block = self._groups[key]
            block.remove(entry_id)
            if not len(block):
                del self._groups[key]


class SemanticCache:
    """Two-tier response cache keyed by query, target and request params, per namespace.

    Args:
        backend: where entries live (`MemoryCacheBackend`, `RedisCacheBackend`, ...).
        encoder: encodes a query when `lookup`/`store` get no embedding; with None (and no
            embedding) only the exact tier is used.
        similarity_threshold: minimum cosine for a semantic hit. 0.90 was chosen together with
            the guard's soft model, which vetoes most pairs between 0.90 and 0.95 whose words
            differ in a way the cosine does not explain: on the half of the QQP pairs used for
            fitting it gives the best precision at recall >= 0.22 (`stratarouter bench cache
            --fit`). Set for all-MiniLM-L6-v2 cosines; other encoders need their own.
        ttl_s: seconds an entry lives.
        guard: vetoes semantic hits between queries that ask different things; None disables it
            (plain cosine, the usual and unsafe rule).
        namespace: default namespace; lookups in one namespace never see another's entries.
        max_candidates: how many entries above the threshold are offered to the guard.

    Example:
        >>> import asyncio, numpy as np
        >>> cache = SemanticCache(MemoryCacheBackend())
        >>> v = np.ones(4, dtype=np.float32) / 2
        >>> asyncio.run(cache.store("Cancel my order", v, target_key="openai:gpt-4o-mini",
        ...                         response={"text": "Done."}))
        >>> hit = asyncio.run(cache.lookup("cancel my order!", v, target_key="openai:gpt-4o-mini"))
        >>> hit.tier, hit.response["text"]
        ('exact', 'Done.')
        >>> asyncio.run(cache.lookup("Don't cancel my order", v, target_key="openai:gpt-4o-mini"))
    """

    def __init__(
        self,
        backend: CacheBackend,
        *,
        encoder: BaseEncoder | None = None,
        similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        ttl_s: float = 3600.0,
        guard: QueryGuard | None = DEFAULT_GUARD,
        namespace: str = "default",
        max_candidates: int = 8,
    ) -> None:
        """Validate the settings; nothing is contacted yet."""
        if not 0.0 < similarity_threshold <= 1.0:
            raise ConfigError(f"similarity_threshold must be in (0, 1], got {similarity_threshold}")
        if not ttl_s > 0:
            raise ConfigError(f"ttl_s must be > 0, got {ttl_s}")
        if max_candidates < 1:
            raise ConfigError(f"max_candidates must be >= 1, got {max_candidates}")
        _check_namespace(namespace)
        self.backend = backend
        self.encoder = encoder
        self.similarity_threshold = similarity_threshold
        self.ttl_s = ttl_s
        self.guard = guard
        self.namespace = namespace
        self.max_candidates = max_candidates
        self.stats = CacheStats()

    async def lookup(
        self,
        query: str,
        embedding: F32 | None = None,
        *,
        target_key: str,
        params: Mapping[str, Any] | None = None,
        namespace: str | None = None,
    ) -> CacheHit | None:
        """Return the cached response for `query`, or None on a miss.

        Args:
            query: the incoming query.
            embedding: its embedding (any scale; it is L2-normalised here), or None to use
                the cache's encoder (exact tier only when there is none).
            target_key: the model/handler the response comes from (e.g. "openai:gpt-4o").
            params: request parameters that change the answer (system prompt, temperature...).
            namespace: tenant/user namespace (the cache's default when None).
        """
        ns = self._namespace(namespace)
        normalised, pkey = _check_query(query), params_digest(params or {})
        self.stats.lookups += 1
        entry = await self.backend.get_exact(ns, _digest(target_key, pkey, normalised))
        if entry is not None:
            self.stats.exact_hits += 1
            return _hit(entry, "exact", 1.0)
        vector = await self._vector(query, embedding)
        if vector is None:
            return None
        candidates = await self.backend.nearest(
            ns, _digest(target_key, pkey), vector, self.similarity_threshold, self.max_candidates
        )
        for entry, similarity in candidates:
            if self.guard is None or self.guard.accepts(entry.query, query, similarity):
                self.stats.semantic_hits += 1
                return _hit(entry, "semantic", similarity)
            self.stats.guard_rejections += 1
        return None

    async def store(
        self,
        query: str,
        embedding: F32 | None = None,
        *,
        target_key: str,
        params: Mapping[str, Any] | None = None,
        response: Mapping[str, Any],
        namespace: str | None = None,
    ) -> None:
        """Cache a *completed* response for `query`.

        Never call this for an error, a timeout, a refusal you do not want replayed, or a
        stream that has not finished: whatever is stored is served to later, similar queries.

        Raises:
            UncacheableResponseError: `response` is not a JSON-serialisable mapping.
        """
        ns = self._namespace(namespace)
        normalised, pkey = _check_query(query), params_digest(params or {})
        payload = _encode_response(response)
        vector = await self._vector(query, embedding)
        now = self.backend.now()
        entry = CacheEntry(uuid.uuid4().hex, query, payload, now, now + self.ttl_s)
        record = CacheRecord(
            ns, _digest(target_key, pkey, normalised), _digest(target_key, pkey), entry, vector
        )
        await self.backend.put(record, self.ttl_s)
        self.stats.stores += 1

    async def get_or_compute(
        self,
        query: str,
        embedding: F32 | None = None,
        *,
        target_key: str,
        call: Callable[[], Awaitable[Mapping[str, Any]]],
        params: Mapping[str, Any] | None = None,
        namespace: str | None = None,
    ) -> tuple[Mapping[str, Any], CacheHit | None]:
        """Serve from the cache, or await `call()` and cache its result.

        An exception from `call` propagates and nothing is stored.

        Returns:
            The response, and the hit (None when `call` produced the response).
        """
        hit = await self.lookup(
            query, embedding, target_key=target_key, params=params, namespace=namespace
        )
        if hit is not None:
            return hit.response, hit
        response = await call()
        await self.store(
            query, embedding, target_key=target_key, params=params, response=response,
            namespace=namespace,
        )
        return response, None

    async def clear(self, namespace: str | None = None) -> None:
        """Drop the entries of `namespace` (all namespaces when None)."""
        await self.backend.clear(None if namespace is None else self._namespace(namespace))

    async def aclose(self) -> None:
        """Close the backend's connections."""
        await self.backend.aclose()

    def _namespace(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else _check_namespace(namespace)

    async def _vector(self, query: str, embedding: F32 | None) -> F32 | None:
        if embedding is None:
            if self.encoder is None:
                return None
            embedding = (await self.encoder.aencode([query]))[0]
        return _unit(embedding)


def _check_query(query: object) -> str:
    if not isinstance(query, str):
        raise InvalidQueryError(f"query must be a str, got {type(query).__name__}")
    normalised = normalise_query(query)
    if not normalised:
        raise InvalidQueryError("query is empty")
    return normalised


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(f"namespace must be a non-empty str, got {namespace!r}")
    return namespace


def _unit(embedding: Any) -> F32:
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise InvalidQueryError("query embedding is zero, NaN or infinite")
    return vector if abs(norm - 1.0) < 1e-4 else vector / np.float32(norm)


def _encode_response(response: object) -> str:
    if not isinstance(response, Mapping):
        raise UncacheableResponseError(
            f"only completed response mappings are cached, got {type(response).__name__}"
        )
    try:
        return json.dumps(response, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise UncacheableResponseError(f"response is not JSON-serialisable: {exc}") from exc


def _hit(entry: CacheEntry, tier: Literal["exact", "semantic"], similarity: float) -> CacheHit:
    response: Mapping[str, Any] = json.loads(entry.payload)
    return CacheHit(response, tier, similarity, entry.query, entry.stored_at)


_STORE_SCRIPT = """
local now_t = redis.call('TIME')
local seq = tonumber(now_t[1]) * 1000000 + tonumber(now_t[2])
redis.call('HSET', KEYS[3], 'v', ARGV[2], 'q', ARGV[3], 'p', ARGV[4], 't', ARGV[5], 'x', ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[8], 'LIMIT', 0, 128)
for _, id in ipairs(dead) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[9])
if extra > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, extra - 1)) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('UNLINK', ARGV[10] .. id)
  end
end
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[7]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[7])
  end
end
return seq
"""
"""Stores one semantic entry atomically: the entry hash (with its own TTL), its id in the group's
arrival index (scored by server time, so mirrors fetch only what is new) and in its expiry index;
prunes expired ids and caps the group at `max_entries` (oldest first)."""


@dataclass(slots=True)
class _Mirror:
    block: _VectorBlock | None = None
    last_seq: float = 0.0
    lookups: int = 0


class RedisCacheBackend:
    """Cache storage in Redis, shared by every process that uses the same URL and key prefix.

    Layout (``P`` = `key_prefix`, ``N`` = hash of the namespace, ``G`` = hash of target + params):

    - ``P:N:x:<key>``: the exact tier, a JSON string set with Redis' own expiry;
    - ``P:N:s:{G}:e:<id>``: one semantic entry (float32 vector bytes, query, response), with
      its own expiry;
    - ``P:N:s:{G}:seq`` / ``:exp``: sorted sets of the group's entry ids by arrival (server
      time) and by expiry.

    Each process mirrors a group's vectors in memory. A lookup asks Redis only for the ids
    that arrived since its last look (one round trip, nothing when nothing changed), searches
    the mirror with one matrix-vector product, then fetches the payload of the candidates; an
    entry that Redis has expired or evicted returns nothing and leaves the mirror.

    Args:
        url: Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
        key_prefix: prefix of every key (lets deployments share a database).
        max_entries: most semantic entries per (namespace, target, params) group; the oldest
            are evicted first.

    Example:
        >>> backend = RedisCacheBackend("redis://127.0.0.1:6379/0", key_prefix="myapp:cache")
        >>> backend.key_prefix
        'myapp:cache'
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "stratarouter:cache",
        max_entries: int = 100_000,
    ) -> None:
        """Remember the settings; the connection opens on first use."""
        self._redis_module = require("redis.asyncio", extra="redis")
        if max_entries < 1:
            raise ConfigError(f"max_entries must be >= 1, got {max_entries}")
        if not key_prefix:
            raise ConfigError("key_prefix must not be empty")
        self.url = url
        self.key_prefix = key_prefix
        self.max_entries = max_entries
        self._client: Redis | None = None
        self._store: Any = None
        self._mirrors: dict[tuple[str, str], _Mirror] = {}
        self._errors: tuple[type[BaseException], ...] = (
            require("redis", extra="redis").RedisError,
            OSError,
        )

    def now(self) -> float:
        """Wall-clock Unix time."""
        return time.time()

    async def get_exact(self, namespace: str, key: str) -> CacheEntry | None:
        """GET the exact-tier key (Redis has already dropped it if it expired)."""
        raw = await self._call(lambda r: r.get(self._exact_key(namespace, key)))
        if raw is None:
            return None
        data = json.loads(raw)
        if data["x"] <= self.now():
            return None
        return CacheEntry(data["id"], data["q"], data["p"], data["t"], data["x"])

    async def nearest(
        self, namespace: str, group: str, vector: F32, threshold: float, limit: int
    ) -> list[tuple[CacheEntry, float]]:
        """Bring the group's mirror up to date, search it, and fetch the candidates."""
        mirror = await self._sync(namespace, group, len(vector))
        assert mirror.block is not None
        found = mirror.block.search(vector, threshold, self.now(), limit)
        if not found:
            return []
        tag = self._group_tag(namespace, group)

        async def fetch(r: Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for entry_id, _ in found:
                pipe.hmget(f"{tag}:e:{entry_id}", ["q", "p", "t", "x"])
            return await pipe.execute()

        hits = []
        for (entry_id, score), values in zip(found, await self._call(fetch), strict=True):
            if values[0] is None:  # expired or evicted in Redis: forget it here too
                mirror.block.remove(entry_id)
                continue
            query, payload, stored, expires = (v.decode() for v in values)
            entry = CacheEntry(entry_id, query, payload, float(stored), float(expires))
            hits.append((entry, score))
        return hits

    async def put(self, record: CacheRecord, ttl_s: float) -> None:
        """SET the exact tier and run the store script for the semantic tier, in one round trip."""
        entry, ttl_ms = record.entry, max(1, round(ttl_s * 1000))
        exact = json.dumps(
            {"id": entry.entry_id, "q": entry.query, "p": entry.payload, "t": entry.stored_at,
             "x": entry.expires_at}
        )

        async def write(r: Redis) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.set(self._exact_key(record.namespace, record.exact_key), exact, px=ttl_ms)
            if record.vector is not None:
                tag = self._group_tag(record.namespace, record.group)
                await self._store_script(r)(
                    keys=[f"{tag}:seq", f"{tag}:exp", f"{tag}:e:{entry.entry_id}"],
                    args=[
                        entry.entry_id, record.vector.astype(np.float32).tobytes(), entry.query,
                        entry.payload, repr(entry.stored_at), repr(entry.expires_at), ttl_ms,
                        repr(self.now()), self.max_entries, f"{tag}:e:",
                    ],
                    client=pipe,
                )
            await pipe.execute()

        await self._call(write)

    async def clear(self, namespace: str | None = None) -> None:
        """UNLINK every key of `namespace` (all namespaces when None) under the key prefix."""
        pattern = f"{self.key_prefix}:{'*' if namespace is None else _ns_hash(namespace)}:*"

        async def unlink(r: Redis) -> None:
            batch: list[bytes] = []
            async for key in r.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await r.unlink(*batch)
                    batch.clear()
            if batch:
                await r.unlink(*batch)

        await self._call(unlink)
        for key in [k for k in self._mirrors if namespace in (None, k[0])]:
            del self._mirrors[key]

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client, self._store = self._client, None, None
            await client.aclose()

    async def _sync(self, namespace: str, group: str, dimension: int) -> _Mirror:
        mirror = self._mirrors.setdefault((namespace, group), _Mirror())
        if mirror.block is None:
            mirror.block = _VectorBlock(dimension)
        block, tag = mirror.block, self._group_tag(namespace, group)
        arrived = await self._call(
            lambda r: r.zrangebyscore(f"{tag}:seq", mirror.last_seq, "+inf", withscores=True)
        )
        fresh = [(i.decode(), s) for i, s in arrived if i.decode() not in block.rows]
        if fresh:

            async def fetch(r: Redis) -> list[Any]:
                pipe = r.pipeline(transaction=False)
                for entry_id, _ in fresh:
                    pipe.hmget(f"{tag}:e:{entry_id}", ["v", "x"])
                return await pipe.execute()

            rows = await self._call(fetch)
            for (entry_id, _), (vector, expires) in zip(fresh, rows, strict=True):
                if vector is not None and len(vector) == 4 * dimension:
                    block.add(entry_id, np.frombuffer(vector, dtype=np.float32), float(expires))
        if arrived:
            mirror.last_seq = max(mirror.last_seq, max(s for _, s in arrived))
        mirror.lookups += 1
        if mirror.lookups % 64 == 0:
            for entry_id in block.expired(self.now()):
                block.remove(entry_id)
        return mirror

    def _exact_key(self, namespace: str, key: str) -> str:
        return f"{self.key_prefix}:{_ns_hash(namespace)}:x:{key}"

    def _group_tag(self, namespace: str, group: str) -> str:
        return f"{self.key_prefix}:{_ns_hash(namespace)}:s:{{{group}}}"

    def _store_script(self, client: Redis) -> Any:
        if self._store is None:
            self._store = client.register_script(_STORE_SCRIPT)
        return self._store

    async def _call(self, operation: Callable[[Redis], Awaitable[Any]]) -> Any:
        if self._client is None:
            self._client = self._redis_module.Redis.from_url(self.url)
        try:
            return await operation(self._client)
        except self._errors as exc:
            raise CacheBackendError(f"Redis cache at {self.url} failed: {exc}") from exc


def _ns_hash(namespace: str) -> str:
    return hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:16]
