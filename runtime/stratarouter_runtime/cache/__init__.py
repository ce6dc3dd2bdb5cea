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

from .base import (
    CacheBackend,
    CacheBackendError,
    CacheEntry,
    CacheHit,
    CacheRecord,
    CacheStats,
)
from .keys import UncacheableResponseError, normalise_query, params_digest
from .memory import MemoryCacheBackend
from .redis_backend import RedisCacheBackend
from .semantic import DEFAULT_GUARD, DEFAULT_SIMILARITY_THRESHOLD, SemanticCache
from .vectors import _unit as _unit  # the batch coordinator shares these two
from .vectors import _VectorBlock as _VectorBlock

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
