"""The bridge's use of the semantic cache: built from the config, and never a reason to fail."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import StrataRouterError

from ..cache import (
    CacheBackendError,
    CacheHit,
    MemoryCacheBackend,
    RedisCacheBackend,
    SemanticCache,
    UncacheableResponseError,
)
from ..config import RuntimeConfig
from ..observability import Metrics
from .targets import Resolved

__all__ = ["build_cache", "cache_lookup", "cache_store"]

logger = logging.getLogger("stratarouter_runtime")


def build_cache(config: RuntimeConfig) -> SemanticCache | None:
    """The semantic cache ``config.cache`` describes; None when caching is off."""
    if not config.cache.enabled:
        return None
    backend = (
        MemoryCacheBackend()
        if config.cache.backend == "memory"
        else RedisCacheBackend(str(config.cache.redis_url))
    )
    return SemanticCache(
        backend,
        similarity_threshold=config.cache.similarity_threshold,
        ttl_s=float(config.cache.ttl_s),
        namespace=config.cache.namespace,
    )


async def cache_lookup(
    cache: SemanticCache,
    metrics: Metrics,
    query: str,
    embedding: NDArray[np.float32] | None,
    resolved: Resolved,
    namespace: str,
) -> CacheHit | None:
    """The cached answer for `query` on this target, or None (also when the cache fails)."""
    try:
        hit = await cache.lookup(
            query,
            embedding,
            target_key=resolved.key,
            params=resolved.cache_params,
            namespace=namespace,
        )
    except StrataRouterError as exc:  # a cache outage must not fail the execution
        _cache_trouble(metrics, "lookup", exc)
        return None
    metrics.cache_lookup(hit=hit is not None)
    return hit


async def cache_store(
    cache: SemanticCache | None,
    metrics: Metrics,
    query: str,
    embedding: NDArray[np.float32] | None,
    resolved: Resolved,
    namespace: str,
    payload: Mapping[str, Any],
) -> None:
    """Cache a provider answer (handler answers never are); a cache failure is only logged."""
    if cache is None or resolved.kind != "provider":
        return
    try:
        await cache.store(
            query,
            embedding,
            target_key=resolved.key,
            params=resolved.cache_params,
            response=payload,
            namespace=namespace,
        )
    except StrataRouterError as exc:
        _cache_trouble(metrics, "store", exc)


def _cache_trouble(metrics: Metrics, operation: str, exc: StrataRouterError) -> None:
    kind = type(exc).__name__
    metrics.error(kind)
    level = logging.DEBUG if isinstance(exc, UncacheableResponseError) else logging.WARNING
    logger.log(
        level,
        "cache %s skipped: %s",
        operation,
        exc,
        extra={"error_type": kind, "backend_error": isinstance(exc, CacheBackendError)},
    )
