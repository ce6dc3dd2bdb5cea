"""The gRPC service (``stratarouter-runtime[grpc]``): Route, RouteBatch, Execute, Health.

It serves the REST app's own `ServerState` from the same event loop: the same route sets
(one reference per tenant, swapped atomically by ``PUT /v1/routes``), the same encoding
micro-batcher, the same API keys (``authorization: Bearer <key>`` metadata, compared in
constant time), tenants and per-key rate limit, and the same runtime bridge. `stratarouter
serve --grpc-port N` starts it beside uvicorn (`create_app` does, in its lifespan, when
`ServerConfig.grpc_port` is set); `start_grpc_server` starts it for an app you serve yourself.

Every deliberate error becomes a gRPC status with the error's type and message in the
details: INVALID_ARGUMENT (bad query, embedding, top_k), UNAUTHENTICATED, RESOURCE_EXHAUSTED
(rate limit, with ``retry-after`` trailing metadata; batch or message size), NOT_FOUND,
UNAVAILABLE (encoder, provider or circuit), FAILED_PRECONDITION (execution off).
The messages are in ``proto/stratarouter.proto``.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import InvalidQueryError, StrataRouterError
from stratarouter_core.types import RouteResult

from .._deps import require
from .context import (
    current_router,
    execution_json,
    probe_backends,
    require_bridge,
    require_grading,
)
from .errors import LimitExceededError, status_of
from .security import Principal, RateLimitedError

require("grpc", extra="grpc")

import grpc  # noqa: E402
from grpc import aio  # noqa: E402

from .proto import stratarouter_pb2 as pb  # noqa: E402

# (looked up, not imported: mypy has no protobuf stubs here)
DecodeError: type[Exception] = importlib.import_module("google.protobuf.message").DecodeError

if TYPE_CHECKING:
    from .context import ServerState
    from .routeset import RouteSet

__all__ = ["StrataRouterService", "grpc_code", "start_grpc_server"]

logger = logging.getLogger("stratarouter_runtime.server.grpc")

_T = TypeVar("_T")

# HTTP status of a deliberate error (errors.status_of) -> its gRPC code: one table for both.
_CODES = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
}


def grpc_code(exc: StrataRouterError) -> grpc.StatusCode:
    """The gRPC status of a deliberate error (FAILED_PRECONDITION when none fits better)."""
    return _CODES.get(status_of(exc), grpc.StatusCode.FAILED_PRECONDITION)


class StrataRouterService:
    """The servicer of ``stratarouter.v1.StrataRouter`` over a REST app's `ServerState`."""

    def __init__(self, state: ServerState) -> None:
        """Serve `state` (``app.state.server`` of `create_app`)."""
        self.state = state

    async def Route(
        self, request: pb.RouteRequest, context: aio.ServicerContext
    ) -> pb.RouteResponse:
        """One decision."""
        return await self._guard(context, self._route(request, context))

    async def RouteBatch(
        self, request: pb.RouteBatchRequest, context: aio.ServicerContext
    ) -> pb.RouteBatchResponse:
        """Decisions for up to ``max_batch`` queries."""
        return await self._guard(context, self._route_batch(request, context))

    async def Execute(
        self, request: pb.ExecuteRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.ExecuteEvent]:
        """Route then execute: ``chunk`` events, then one ``result``."""
        try:
            async for event in self._execute(request, context):
                yield event
        except StrataRouterError as exc:
            await _abort(context, exc)
        except Exception:  # a bug, not bad input: logged, INTERNAL without the details
            logger.exception("gRPC Execute failed")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (logged)")

    async def GradeExecution(
        self, request: pb.GradeExecutionRequest, context: aio.ServicerContext
    ) -> pb.GradeExecutionResponse:
        """Grade an execution's answer for the model that gave it (its tenant only, once)."""
        return await self._guard(context, self._grade(request, context))

    async def Health(
        self, request: pb.HealthRequest, context: aio.ServicerContext
    ) -> pb.HealthResponse:
        """Readiness, as ``GET /readyz`` reports it (open, like the probe)."""
        rs = self.state.store.default
        backends = await probe_backends(self.state)
        built = rs.router.is_built
        degraded = any(v != "ok" for v in backends.values())
        return pb.HealthResponse(
            status="not ready" if not built else ("degraded" if degraded else "ready"),
            router_built=built,
            routes=len(rs.router.routes),
            route_set_version=rs.version,
            backends=backends,
        )

    async def _guard(self, context: aio.ServicerContext, work: Awaitable[_T]) -> _T:
        try:
            return await work
        except StrataRouterError as exc:
            await _abort(context, exc)
        except Exception:
            logger.exception("gRPC call failed")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (logged)")
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _authorize(self, context: aio.ServicerContext) -> Principal:
        """The API key of the call's metadata (UNAUTHENTICATED), then its rate limit."""
        authorization = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value if isinstance(value, str) else value.decode()
        principal = self.state.auth.check(authorization, client=_peer_host(context.peer()))
        self.state.limiter.acquire(principal.key_id)
        return principal

    async def _decide(
        self, rs: RouteSet, query: str, embedding: NDArray[np.float32] | None
    ) -> RouteResult:
        self.state.check_query(query)
        if embedding is None:
            embedding = await self.state.batcher.encode(query)
        return rs.router.route(query, embedding=embedding)

    async def _route(
        self, request: pb.RouteRequest, context: aio.ServicerContext
    ) -> pb.RouteResponse:
        _well_formed(request)
        principal = self._authorize(context)
        started = time.perf_counter()
        top_k = self._top_k(request)
        rs = self.state.store.get(principal.tenant)
        result = await self._decide(rs, request.query, _vector(request.embedding, "embedding"))
        ms = (time.perf_counter() - started) * 1000
        return _decision(result, top_k, ms, rs.version)

    async def _route_batch(
        self, request: pb.RouteBatchRequest, context: aio.ServicerContext
    ) -> pb.RouteBatchResponse:
        _well_formed(request)
        principal = self._authorize(context)
        started = time.perf_counter()
        top_k, queries = self._top_k(request), list(request.queries)
        limit = self.state.config.max_batch
        if not queries:
            raise InvalidQueryError("queries must hold at least one query")
        if len(queries) > limit:
            raise LimitExceededError(
                f"{len(queries)} queries in one batch; the limit is {limit} "
                "(ServerConfig.max_batch)"
            )
        for query in queries:
            self.state.check_query(query)
        rs = self.state.store.get(principal.tenant)
        vectors = await self._batch_vectors(queries, request.embeddings)
        results = rs.router.route_batch(queries, vectors)
        ms = (time.perf_counter() - started) * 1000
        return pb.RouteBatchResponse(
            results=[_decision(r, top_k, ms, rs.version) for r in results],
            latency_ms=ms,
            route_set_version=rs.version,
        )

    async def _batch_vectors(
        self, queries: list[str], embeddings: Any
    ) -> NDArray[np.float32]:
        if not embeddings:
            return await self.state.batcher.encode_many(queries)
        if len(embeddings) != len(queries):
            raise InvalidQueryError(f"{len(queries)} queries but {len(embeddings)} embeddings")
        rows = [_vector(e.values, f"embeddings[{i}]") for i, e in enumerate(embeddings)]
        widths = sorted({len(r) if r is not None else 0 for r in rows})
        if len(widths) != 1 or widths[0] == 0:
            raise InvalidQueryError(f"embeddings must be non-empty and of one length: {widths}")
        return np.stack(cast("list[NDArray[np.float32]]", rows))

    async def _execute(
        self, request: pb.ExecuteRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.ExecuteEvent]:
        _well_formed(request)
        principal = self._authorize(context)
        bridge = require_bridge(self.state)
        rs = self.state.store.get(principal.tenant)
        decision = await self._decide(
            rs, request.query, _vector(request.embedding, "embedding")
        )
        current_router.set(rs.router)  # this handler runs in its own task
        async with bridge.stream(
            decision, request.query, self.state.context(principal)
        ) as stream:
            async for chunk in stream:
                yield pb.ExecuteEvent(chunk=chunk)
            result = stream.result
        yield pb.ExecuteEvent(result=_execute_result(execution_json(result), decision))

    async def _grade(
        self, request: pb.GradeExecutionRequest, context: aio.ServicerContext
    ) -> pb.GradeExecutionResponse:
        _well_formed(request)
        principal = self._authorize(context)
        bridge = require_grading(self.state)
        grade = await bridge.grade_execution(
            request.execution_id, request.score, tenant=principal.tenant
        )
        model, score = next(iter(grade.scores.items()))
        return pb.GradeExecutionResponse(
            execution_id=request.execution_id, model=model, score=score, seq=grade.seq
        )

    def _top_k(self, request: pb.RouteRequest | pb.RouteBatchRequest) -> int:
        if not request.HasField("top_k"):
            return self.state.config.default_top_k
        if not 1 <= request.top_k <= 1000:
            raise InvalidQueryError(f"top_k must be in [1, 1000], got {request.top_k}")
        return int(request.top_k)


@dataclass(frozen=True)
class _Malformed:
    """What the deserializer hands the handler for bytes that are not the request message
    (gRPC's own deserializer would end the call with INTERNAL)."""

    message: str
    problem: str


def _parser(cls: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return _Malformed(cls.DESCRIPTOR.full_name, str(exc))

    return parse


def _well_formed(request: object) -> None:
    if isinstance(request, _Malformed):
        raise InvalidQueryError(f"the request is not a valid {request.message}: {request.problem}")


def _handlers(service: StrataRouterService) -> Any:
    """The service's method handlers (as protoc's ``add_..._to_server`` builds them, but with
    a deserializer that lets a malformed request become INVALID_ARGUMENT)."""
    unary, stream = grpc.unary_unary_rpc_method_handler, grpc.unary_stream_rpc_method_handler
    methods = {
        "Route": unary(service.Route, _parser(pb.RouteRequest), pb.RouteResponse.SerializeToString),
        "RouteBatch": unary(
            service.RouteBatch,
            _parser(pb.RouteBatchRequest),
            pb.RouteBatchResponse.SerializeToString,
        ),
        "Execute": stream(
            service.Execute, _parser(pb.ExecuteRequest), pb.ExecuteEvent.SerializeToString
        ),
        "GradeExecution": unary(
            service.GradeExecution,
            _parser(pb.GradeExecutionRequest),
            pb.GradeExecutionResponse.SerializeToString,
        ),
        "Health": unary(
            service.Health, _parser(pb.HealthRequest), pb.HealthResponse.SerializeToString
        ),
    }
    return grpc.method_handlers_generic_handler("stratarouter.v1.StrataRouter", methods)


def _peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5555`` -> ``127.0.0.1`` (the rate-limit bucket of an open server)."""
    address = peer.split(":", 1)[-1]
    return address.rsplit(":", 1)[0] if ":" in address else address


def _vector(values: Any, field: str) -> NDArray[np.float32] | None:
    """A repeated float field as a vector; None when empty (the server encodes)."""
    if not values:
        return None
    vector = np.asarray(values, dtype=np.float32)
    if not np.isfinite(vector).all():
        raise InvalidQueryError(f"{field} holds NaN or infinite values")
    return vector


def _decision(result: RouteResult, top_k: int, latency_ms: float, version: int) -> pb.RouteResponse:
    candidates = [
        pb.Candidate(
            route=c.route_id,
            confidence=c.confidence,
            score=c.score,
            dense=c.dense,
            sparse=c.sparse,
            rule=c.rule,
        )
        for c in result.candidates[:top_k]
    ]
    return pb.RouteResponse(
        route=result.route_id,
        confidence=result.confidence,
        is_fallback=result.is_fallback,
        candidates=candidates,
        latency_ms=latency_ms,
        route_set_version=version,
    )


def _execute_result(payload: dict[str, Any], decision: RouteResult) -> pb.ExecuteResult:
    usage = payload.pop("usage")
    cost = payload.pop("cost_usd")
    fields = {k: v for k, v in payload.items() if v is not None}
    return pb.ExecuteResult(
        confidence=decision.confidence,
        cost_usd=cost if isinstance(cost, float) and math.isfinite(cost) else 0.0,
        usage=None if usage is None else pb.Usage(**usage),
        **fields,
    )


async def _abort(context: aio.ServicerContext, exc: StrataRouterError) -> None:
    code = grpc_code(exc)
    if isinstance(exc, RateLimitedError):
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        context.set_trailing_metadata((("retry-after", retry),))
    await context.abort(code, f"{type(exc).__name__}: {exc}")


async def start_grpc_server(
    state: ServerState, host: str, port: int, *, max_message_bytes: int | None = None
) -> tuple[aio.Server, int]:
    """Start the gRPC service on ``host:port`` (0: a free port) in the running event loop.

    Returns the started server and its bound port; stop it with ``await server.stop(grace)``.
    Messages over `max_message_bytes` (default ``ServerConfig.max_body_bytes``) are refused
    with RESOURCE_EXHAUSTED by gRPC itself.
    """
    limit = max_message_bytes or state.config.max_body_bytes
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared listener
        ]
    )
    server.add_generic_rpc_handlers((_handlers(StrataRouterService(state)),))
    bound = server.add_insecure_port(f"{_bracketed(host)}:{port}")
    if bound == 0:
        raise StrataRouterError(f"cannot bind the gRPC port {host}:{port}")
    await server.start()
    logger.info("gRPC serving on %s:%d", host, bound)
    return server, bound


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
