"""`SemanticCache`: the exact tier, then the guarded semantic tier, per namespace."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError

from ..guard import QueryGuard
from .base import F32, CacheBackend, CacheEntry, CacheHit, CacheRecord, CacheStats
from .keys import _check_namespace, _check_query, _digest, _encode_response, params_digest
from .vectors import _unit

__all__ = ["DEFAULT_GUARD", "DEFAULT_SIMILARITY_THRESHOLD", "SemanticCache"]

DEFAULT_GUARD = QueryGuard()
"""The guard a `SemanticCache` uses unless told otherwise (all checks on)."""
DEFAULT_SIMILARITY_THRESHOLD = 0.9
"""Default cosine threshold of the semantic tier (a round value, not fitted: `SemanticCache`)."""


class SemanticCache:
    """Two-tier response cache keyed by query, target and request params, per namespace.

    Args:
        backend: where entries live (`MemoryCacheBackend`, `RedisCacheBackend`, ...).
        encoder: encodes a query when `lookup`/`store` get no embedding; with None (and no
            embedding) only the exact tier is used.
        similarity_threshold: minimum cosine for a semantic hit. 0.90 is a round, strict value
            for all-MiniLM-L6-v2 cosines, not fitted on any data set: the guard's soft model then
            asks up to 0.95 of pairs whose cosine is mostly shared words (`guard_model`).
            Other encoders need their own; `stratarouter bench cache --fit` measures one on
            labelled pairs of your traffic.
        ttl_s: seconds an entry lives.
        guard: vetoes semantic hits between queries that ask different things; None disables it
            (plain cosine, the usual and unsafe rule).
        namespace: default namespace; lookups in one namespace never see another's entries.
        max_candidates: how many entries above the threshold are offered to the guard.

    Example:
        >>> import asyncio, numpy as np
        >>> from stratarouter_runtime.cache import MemoryCacheBackend
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


def _hit(entry: CacheEntry, tier: Literal["exact", "semantic"], similarity: float) -> CacheHit:
    response: Mapping[str, Any] = json.loads(entry.payload)
    return CacheHit(response, tier, similarity, entry.query, entry.stored_at)
