"""Cache storage in Redis, shared by processes; each keeps a mirror of the vectors."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from stratarouter_core.errors import ConfigError

from stratarouter_runtime._deps import require

from .base import F32, CacheBackendError, CacheEntry, CacheRecord
from .vectors import _VectorBlock

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCacheBackend"]


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
        max_connections: int = 64,
        pool_timeout: float = 5.0,
    ) -> None:
        """Remember the settings; the connection opens on first use.

        At most `max_connections` commands run at once; more concurrent calls wait up to
        `pool_timeout` seconds for a free connection instead of failing, so a burst of
        requests never turns into silent cache misses.
        """
        self._redis_module = require("redis.asyncio", extra="redis")
        if max_entries < 1:
            raise ConfigError(f"max_entries must be >= 1, got {max_entries}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections}")
        if pool_timeout <= 0:
            raise ConfigError(f"pool_timeout must be > 0, got {pool_timeout}")
        self.max_connections, self.pool_timeout = max_connections, pool_timeout
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
            pool = self._redis_module.BlockingConnectionPool.from_url(
                self.url, max_connections=self.max_connections, timeout=self.pool_timeout
            )
            self._client = self._redis_module.Redis.from_pool(pool)  # the client owns the pool
        try:
            return await operation(self._client)
        except self._errors as exc:
            raise CacheBackendError(f"Redis cache at {self.url} failed: {exc}") from exc


def _ns_hash(namespace: str) -> str:
    return hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:16]
