"""What the cache's front and its backends exchange: entries, records, hits, the protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import StrataRouterError

__all__ = [
    "CacheBackend", "CacheBackendError", "CacheEntry", "CacheHit", "CacheRecord", "CacheStats",
]

F32 = NDArray[np.float32]


class CacheBackendError(StrataRouterError, RuntimeError):
    """The cache storage failed (Redis unreachable, a command error); `__cause__` has details."""


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
