"""What the REST, gRPC and OpenAI-compatible endpoints share.

`ServerState` (built by `create_app`), the route set of the request being served
(`current_router`), the API-key dependency (`AuthPrincipal`), the readiness probes and the
JSON form of an execution. The endpoint modules import this one, never each other.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from stratarouter_core.errors import InvalidQueryError, StrataRouterError
from stratarouter_core.types import RouteResult

from .._deps import require
from .batching import EncodeBatcher
from .config import ServerConfig
from .errors import NotFoundError
from .routeset import RouteSet, RouteStore
from .routesync import RouteSetSync
from .security import Authenticator, Principal, RateLimiter

require("fastapi", extra="server")

from fastapi import Depends, Request  # noqa: E402

if TYPE_CHECKING:
    from stratarouter_core.router import Router

    from ..bridge import CoreRuntimeBridge

__all__ = [
    "AuthPrincipal",
    "ServerState",
    "authorized",
    "current_router",
    "execution_json",
    "probe_backends",
    "require_bridge",
]

# The route set of the request being served. The bridge resolves a decision's target through
# `router.get_route`; it is given a view reading this variable, so an execution resolves
# against the set its own request routed with, even while another tenant's set is swapped.
current_router: contextvars.ContextVar[Router] = contextvars.ContextVar("stratarouter_router")


@dataclass
class ServerState:
    """Everything the endpoints share; `create_app` builds it (``app.state.server``)."""

    config: ServerConfig
    store: RouteStore
    batcher: EncodeBatcher
    auth: Authenticator
    limiter: RateLimiter
    bridge: CoreRuntimeBridge | None
    registry: Any
    owns_bridge: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    route_sync: RouteSetSync | None = None

    async def decide(
        self, rs: RouteSet, query: str, embedding: list[float] | None
    ) -> tuple[RouteResult, float]:
        """The decision for `query` on `rs`, encoding through the micro-batcher; and ms taken."""
        started = time.perf_counter()
        self.check_query(query)
        if embedding is None:
            vector = await self.batcher.encode(query)
            result = rs.router.route(query, embedding=vector)
        else:
            result = rs.router.route(query, embedding=np.asarray(embedding, dtype=np.float32))
        return result, (time.perf_counter() - started) * 1000

    def check_query(self, query: str) -> None:
        """Reject blank and over-long queries before any work is spent on them."""
        if not query.strip():
            raise InvalidQueryError("query must be a non-blank string")
        if not query.isascii():  # JSON may escape lone surrogates, which no encoder takes
            try:
                query.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidQueryError(
                    f"query is not valid Unicode: {exc.reason} at character {exc.start}"
                ) from None
        if len(query) > self.config.max_query_chars:
            raise InvalidQueryError(
                f"query is {len(query)} characters long; the limit is "
                f"{self.config.max_query_chars} (ServerConfig.max_query_chars)"
            )

    def context(self, principal: Principal) -> dict[str, Any]:
        """Execution context: the tenant isolates cache entries and execution records."""
        return {"tenant_id": principal.tenant} if principal.tenant else {}


async def authorized(request: Request) -> Principal:
    """Dependency of every /v1 endpoint: the API key (401), then its rate limit (429)."""
    state: ServerState = request.app.state.server
    client = request.client.host if request.client else "unknown"
    principal = state.auth.check(request.headers.get("authorization"), client=client)
    state.limiter.acquire(principal.key_id)
    return principal


# Module level: FastAPI resolves the endpoints' (postponed) annotations in this namespace.
AuthPrincipal = Annotated[Principal, Depends(authorized)]


def require_bridge(state: ServerState) -> CoreRuntimeBridge:
    """The bridge, or the error that says execution is off on this server."""
    if state.bridge is None:
        raise StrataRouterError("this server has no runtime bridge: execution is off")
    return state.bridge


def require_grading(state: ServerState) -> CoreRuntimeBridge:
    """The bridge, when this server learns grades; else the NotFoundError that says why not."""
    bridge = require_bridge(state)
    if not state.config.accept_grades:
        raise NotFoundError("grading is off on this server (ServerConfig.accept_grades)")
    if bridge.grades is None:
        raise NotFoundError(
            "this server has no ModelRouter to learn grades: start it with model_router_dir"
        )
    return bridge


def execution_json(result: Any) -> dict[str, Any]:
    """An `ExecutionResult` as the API returns it."""
    usage = result.usage
    return {
        "route": result.route_id,
        "response": result.response,
        "provider": result.provider,
        "model": result.model,
        "cached": result.cached,
        "deduplicated": result.deduplicated,
        "latency_ms": result.latency_ms,
        "cost_usd": result.cost_usd,
        "finish_reason": result.finish_reason,
        "execution_id": result.execution_id,
        "usage": None if usage is None else usage.to_dict(),
    }


async def probe_backends(state: ServerState) -> dict[str, str]:
    """``ok`` or the error of a cheap read from each backend of the bridge (1 s each), and
    each provider target whose circuit breaker is open or half-open.

    Both make the server ``degraded``, never unready: a provider outage hits every replica at
    once, and pulling them all out of the load balancer would also stop routing and cache hits.
    """
    if state.bridge is None:
        return {}
    bridge = state.bridge
    probes: dict[str, Awaitable[Any]] = {"state": bridge.state.get("readyz-probe")}
    if bridge.cache is not None:
        probes["cache"] = bridge.cache.backend.get_exact("readyz", "probe")
    results = {}
    for name, probe in probes.items():
        try:
            await asyncio.wait_for(probe, timeout=1.0)
            results[name] = "ok"
        except Exception as exc:  # a probe reports any failure, it never raises
            results[name] = f"unreachable: {type(exc).__name__}: {exc}"[:200]
    for breaker in bridge.breakers:
        breaker_state = breaker.state
        if breaker_state == "open":
            results[f"provider {breaker.name}"] = (
                f"breaker open: calls refused for {breaker.retry_after():.1f} s more"
            )
        elif breaker_state == "half_open":
            results[f"provider {breaker.name}"] = "breaker half-open: probing the provider"
    return results
