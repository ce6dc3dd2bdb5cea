"""The REST app: `create_app(router, ...)` returns a FastAPI application.

Endpoints (all under ``/v1`` need the API key when keys are configured):

- ``POST /v1/route``, ``POST /v1/route/batch``: routing decisions;
- ``GET /v1/routes``, ``PUT /v1/routes`` (atomic replacement), ``DELETE /v1/routes/{name}``;
- ``POST /v1/execute`` (JSON, or server-sent events with ``stream: true``),
  ``GET /v1/executions/{id}``;
- ``POST /v1/executions/{id}/grade``, ``POST /v1/model-router/grades``: grades of answers,
  learned by the ModelRouter of every server over the store (`bridge.grades`);
- ``POST /v1/chat/completions``, ``GET /v1/models`` (OpenAI-compatible, `openai_api`);
- ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (open, for probes and scrapers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, cast

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import ConfigError, InvalidQueryError, StrataRouterError
from stratarouter_core.types import RouteResult

from .._deps import require
from ..config import ObservabilityConfig, RuntimeConfig
from ..observability import PrometheusMetrics
from ..providers.base import ProviderClient
from .batching import EncodeBatcher
from .config import ServerConfig, is_loopback
from .context import (
    AuthPrincipal,
    ServerState,
    current_router,
    execution_json,
    probe_backends,
    require_bridge,
    require_grading,
)
from .errors import LimitExceededError, NotFoundError, error_body, status_of
from .routeset import RouteStore, parse_routes_document
from .routesync import RouteSetSync
from .security import (
    ApiKey,
    Authenticator,
    Principal,
    RateLimitedError,
    RateLimiter,
    load_keys_file,
    parse_key_entries,
)

require("fastapi", extra="server")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

if TYPE_CHECKING:
    from stratarouter_core.router import Router

    from ..bridge import CoreRuntimeBridge

__all__ = ["ServerState", "create_app", "current_router"]

logger = logging.getLogger("stratarouter_runtime.server")

# Embeddings are float32: a finite float64 beyond its range would overflow to infinity.
_F32_MAX = float(np.finfo(np.float32).max)
FiniteFloat = Annotated[
    float, Field(allow_inf_nan=False, strict=True, ge=-_F32_MAX, le=_F32_MAX)
]
TopK = Annotated[StrictInt, Field(ge=1, le=1000)]


class RouteRequest(BaseModel):
    """Body of ``POST /v1/route``."""

    model_config = ConfigDict(extra="forbid")
    query: StrictStr
    embedding: list[FiniteFloat] | None = None
    top_k: TopK | None = None


class BatchRequest(BaseModel):
    """Body of ``POST /v1/route/batch``."""

    model_config = ConfigDict(extra="forbid")
    queries: Annotated[list[StrictStr], Field(min_length=1)]
    embeddings: list[list[FiniteFloat]] | None = None
    top_k: TopK | None = None


class ExecuteRequest(BaseModel):
    """Body of ``POST /v1/execute``."""

    model_config = ConfigDict(extra="forbid")
    query: StrictStr
    embedding: list[FiniteFloat] | None = None
    stream: StrictBool = False


Score = Annotated[float, Field(allow_inf_nan=False, strict=True, ge=0.0, le=1.0)]


class GradeRequest(BaseModel):
    """Body of ``POST /v1/executions/{id}/grade``."""

    model_config = ConfigDict(extra="forbid")
    score: Score


class GradedQuery(BaseModel):
    """One query's grades: ``{model: quality in [0, 1]}`` (null: not graded)."""

    model_config = ConfigDict(extra="forbid")
    query: StrictStr
    scores: Annotated[dict[StrictStr, Score | None], Field(min_length=1)]


class GradesRequest(BaseModel):
    """Body of ``POST /v1/model-router/grades``."""

    model_config = ConfigDict(extra="forbid")
    grades: Annotated[list[GradedQuery], Field(min_length=1)]


class _RequestRouter:
    """What the bridge needs of a router (`get_route`, `encode`), read from `current_router`."""

    def __init__(self, fallback: Callable[[], Router]) -> None:
        self._fallback = fallback

    def _router(self) -> Router:
        return current_router.get(None) or self._fallback()

    def get_route(self, name: str) -> Any:
        return self._router().get_route(name)

    def encode(self, texts: Any) -> NDArray[np.float32]:
        return self._router().encode(texts)


def decision_json(
    result: RouteResult, top_k: int, latency_ms: float, version: int
) -> dict[str, Any]:
    """A decision as the API returns it."""
    return {
        "route": result.route_id,
        "confidence": result.confidence,
        "is_fallback": result.is_fallback,
        "candidates": [
            {
                "route": c.route_id,
                "confidence": c.confidence,
                "score": c.score,
                "dense": c.dense,
                "sparse": c.sparse,
                "rule": c.rule,
            }
            for c in result.candidates[:top_k]
        ],
        "latency_ms": latency_ms,
        "route_set_version": version,
    }


class _JsonBodies:
    """ASGI middleware: a POST body under /v1 is JSON whatever its declared type.

    ``curl -d '{...}'`` declares ``application/x-www-form-urlencoded``; every POST endpoint
    here takes JSON only, so the body is read as JSON (malformed JSON is still a 422) instead
    of failing with a confusing "expected an object".
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/v1/")
        ):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


class _BodyLimit:
    """ASGI middleware: bodies over `limit` bytes get 413 before the app reads them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send, int(declared))
            return
        if declared is not None:  # the server holds the body to its declared length
            await self.app(scope, receive, send)
            return
        # Chunked, no declared length: read it here, up to the limit, then replay it. (An
        # error raised from inside the app's own body read would become FastAPI's 400.)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                await self._reject(send, seen)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # disconnect notifications after the body
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, size: int) -> None:
        body = json.dumps(
            error_body(
                "LimitExceededError",
                f"request body of {size} bytes (or more) is over the limit of {self.limit} bytes "
                "(ServerConfig.max_body_bytes)",
                413,
            )
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _keys(config: ServerConfig, keys: list[ApiKey] | None) -> list[ApiKey]:
    if keys is not None:
        return keys
    found = parse_key_entries(config.api_keys)
    if config.api_keys_file:
        found += load_keys_file(config.api_keys_file)
    return found


def _server_metrics(registry: Any) -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    return {
        "requests": Counter(
            "http_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            namespace="stratarouter",
            registry=registry,
        ),
        "latency": Histogram(
            "http_request_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            namespace="stratarouter",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        ),
        "encode_batch": Histogram(
            "encode_batch_size",
            "Queries per encoder call of the server's micro-batcher.",
            namespace="stratarouter",
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        ),
    }


def create_app(
    router: Router,
    *,
    config: ServerConfig | None = None,
    keys: list[ApiKey] | None = None,
    bridge: CoreRuntimeBridge | None = None,
    runtime_config: RuntimeConfig | None = None,
    providers: Mapping[str, ProviderClient] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the server for `router` (already built with `build_index`).

    Args:
        router: The initial route set, served to every tenant until it replaces its own.
        config: Server settings (default `ServerConfig()`).
        keys: Accepted API keys (default: those `config` names, from its list and file).
        bridge: The runtime bridge for ``/v1/execute`` and chat completions; by default one is
            built from `runtime_config` and `providers`, started and closed with the app.
        runtime_config: Settings of the default bridge (default: `RuntimeConfig()` with
            Prometheus metrics on).
        providers: Provider clients of the default bridge (default: from the runtime config,
            plus ``local`` when ``config.provider_url`` is set).
        clock: Monotonic clock of the rate limiter (tests inject one).
    """
    config = config or ServerConfig()
    router.state  # noqa: B018  (raises IndexNotBuiltError now rather than on the first request)
    store = RouteStore(router, router.encoder)
    auth = Authenticator(_keys(config, keys))
    if auth.open and not is_loopback(config.host):
        logger.warning(
            "NO API KEYS CONFIGURED and the server binds %s: anyone who can reach it can "
            "route, execute (spending provider credit) and REPLACE THE ROUTES. Set "
            "STRATAROUTER_API_KEYS or api_keys_file.",
            config.host,
        )
    owns_bridge = bridge is None
    if bridge is None:
        bridge = _default_bridge(store, config, runtime_config, providers)
    metrics_backend = bridge.observability.metrics
    if isinstance(metrics_backend, PrometheusMetrics):
        registry = metrics_backend.registry
    else:
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
    metrics = _server_metrics(registry)
    batch_sizes = metrics["encode_batch"]

    def encode(texts: Any) -> NDArray[np.float32]:
        # every route set shares the server's encoder: any set's router encodes alike
        batch_sizes.observe(len(texts))
        return store.default.router.encode(texts)

    state = ServerState(
        config=config,
        store=store,
        batcher=EncodeBatcher(
            encode, max_wait_s=config.encode_wait_ms / 1000, max_batch=config.encode_max_batch
        ),
        auth=auth,
        limiter=RateLimiter(config.rate_limit_per_s, config.rate_limit_burst, clock=clock),
        bridge=bridge,
        registry=registry,
        owns_bridge=owns_bridge,
        metrics=metrics,
        route_sync=_route_sync(config, runtime_config or (bridge.config if bridge else None)),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.bridge is not None and state.owns_bridge:
            await state.bridge.start()
        await _start_route_sync(state)  # the latest shared sets are live before serving
        grpc_server = None
        if config.grpc_port is not None:  # the gRPC service shares this state and loop
            from .grpc_api import start_grpc_server

            grpc_server, app.state.grpc_port = await start_grpc_server(
                state, config.host, config.grpc_port
            )
        try:
            yield
        finally:
            if grpc_server is not None:  # in-flight calls get the drain time REST had
                await grpc_server.stop(config.graceful_timeout_s)
            if state.route_sync is not None:
                await state.route_sync.close()
            if state.bridge is not None and state.owns_bridge:
                await state.bridge.aclose()

    app = FastAPI(
        title="StrataRouter",
        version="1",
        description="Semantic routing, execution and an OpenAI-compatible endpoint.",
        lifespan=lifespan,
    )
    app.state.server = state
    _install_errors(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(
        _Metrics, requests=state.metrics["requests"], latency=state.metrics["latency"]
    )
    app.add_middleware(_JsonBodies)
    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    _add_health_routes(app, state)
    _add_routing_routes(app, state)
    _add_execution_routes(app, state)
    from .openai_api import add_openai_routes

    add_openai_routes(app, state)
    return app


def _default_bridge(
    store: RouteStore,
    config: ServerConfig,
    runtime_config: RuntimeConfig | None,
    providers: Mapping[str, ProviderClient] | None,
) -> CoreRuntimeBridge:
    from ..bridge import CoreRuntimeBridge
    from ..bridge.targets import providers_from_config

    runtime_config = runtime_config or RuntimeConfig(
        observability=ObservabilityConfig(metrics=True)
    )
    if providers is None:
        built = dict(providers_from_config(runtime_config))
        if config.provider_url:
            from ..providers.local import LocalClient

            built["local"] = LocalClient(config.provider_url)
        providers = built
    view = cast("Router", _RequestRouter(lambda: store.default.router))
    model_router = None
    if config.model_router_dir:
        from stratarouter_core import ModelRouter

        # with the routes' encoder: the model router's vectors must be the routes' (checked)
        model_router = ModelRouter.load(config.model_router_dir, store.default.router.encoder)
    return CoreRuntimeBridge(
        runtime_config,
        view,
        providers,
        encoder=store.default.router.encoder,
        model_router=model_router,
    )


def _route_sync(config: ServerConfig, runtime: RuntimeConfig | None) -> RouteSetSync | None:
    """Share route sets through PostgreSQL when the execution store is there (or when told)."""
    if config.route_sync == "off":
        return None
    state = runtime.state if runtime is not None else None
    if state is None or state.backend != "postgresql" or state.database_url is None:
        if config.route_sync == "postgresql":
            raise ConfigError(
                "ServerConfig.route_sync='postgresql' needs the PostgreSQL state backend "
                "(DATABASE_URL)"
            )
        return None
    return RouteSetSync(state.database_url, schema=state.schema, poll_s=config.route_sync_poll_s)


async def _start_route_sync(state: ServerState) -> None:
    if state.route_sync is not None:
        await state.route_sync.start(state.store)


def _if_match(header: str | None) -> int | None:
    """The version an ``If-Match`` header names (``3`` or ``"3"``), or None."""
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidQueryError(
            f"If-Match must be a route set version (an integer), got {header!r}"
        )
    return int(text)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(StrataRouterError)
    async def deliberate(request: Request, exc: StrataRouterError) -> JSONResponse:
        status = status_of(exc)
        headers = {}
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(max(1, int(np.ceil(exc.retry_after_s))))
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(
            error_body(type(exc).__name__, str(exc), status), status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
                "problem": err.get("msg", ""),
            }
            for err in exc.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return JSONResponse(
            error_body("RequestValidationError", message, 422, problems=problems), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("HTTPError", str(exc.detail), exc.status_code),
            exc.status_code,
            headers=dict(exc.headers or {}),
        )


class _Metrics:
    """ASGI middleware counting requests by endpoint template and status, with latency.

    Plain ASGI, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs every
    request through an extra task group and costs more than routing a query.
    """

    def __init__(self, app: ASGIApp, requests: Any, latency: Any) -> None:
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")  # the template: ids never a label
            self.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)


def _add_health_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Ready to route (503 if not); ``degraded`` when a backend is unreachable."""
        rs = state.store.default
        backends = await probe_backends(state)
        built = rs.router.is_built
        degraded = any(v != "ok" for v in backends.values())
        body = {
            "status": "not ready" if not built else ("degraded" if degraded else "ready"),
            "router": {"built": built, "routes": len(rs.router.routes), "version": rs.version},
            "backends": backends,
        }
        return JSONResponse(body, 200 if built else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        """Prometheus metrics: the server's and the runtime bridge's."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


def _add_routing_routes(app: FastAPI, state: ServerState) -> None:
    config = state.config

    @app.post("/v1/route", tags=["routing"])
    async def route(body: RouteRequest, principal: AuthPrincipal) -> dict[str, Any]:
        """Route one query (give ``embedding`` to skip encoding)."""
        rs = state.store.get(principal.tenant)
        result, ms = await state.decide(rs, body.query, body.embedding)
        _log_decision(state, principal, body.query, result)
        return decision_json(result, body.top_k or config.default_top_k, ms, rs.version)

    @app.post("/v1/route/batch", tags=["routing"])
    async def route_batch(body: BatchRequest, principal: AuthPrincipal) -> dict[str, Any]:
        """Route up to ``max_batch`` queries in one vectorised pass."""
        if len(body.queries) > config.max_batch:
            raise LimitExceededError(
                f"{len(body.queries)} queries in one batch; the limit is {config.max_batch} "
                "(ServerConfig.max_batch)"
            )
        rs = state.store.get(principal.tenant)
        started = time.perf_counter()
        for query in body.queries:
            state.check_query(query)
        if body.embeddings is None:
            vectors = await state.batcher.encode_many(body.queries)
        else:
            if len(body.embeddings) != len(body.queries):
                raise InvalidQueryError(
                    f"{len(body.queries)} queries but {len(body.embeddings)} embeddings"
                )
            vectors = _matrix(body.embeddings)
        results = rs.router.route_batch(body.queries, vectors)
        ms = (time.perf_counter() - started) * 1000
        top_k = body.top_k or config.default_top_k
        return {
            "results": [decision_json(r, top_k, ms, rs.version) for r in results],
            "latency_ms": ms,
            "route_set_version": rs.version,
        }

    @app.get("/v1/routes", tags=["routes"])
    async def get_routes(principal: AuthPrincipal) -> JSONResponse:
        """The caller's live route set as a routes document (a valid ``PUT`` body); its
        version is in the ``X-Route-Set-Version`` header."""
        rs = state.store.get(principal.tenant)
        return JSONResponse(rs.to_json(), headers={"X-Route-Set-Version": str(rs.version)})

    @app.put(
        "/v1/routes",
        tags=["routes"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "A routes document: the routes-file structure, JSON or YAML.",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/yaml": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def put_routes(request: Request, principal: AuthPrincipal) -> dict[str, Any]:
        """Replace the caller's route set atomically (built aside; in-flight requests finish
        on the old one; an invalid document changes nothing). With ``If-Match: <version>``
        the replacement happens only if that version is still the live one (409 if not)."""
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        routes, router_config = parse_routes_document(body, json_format="json" in content_type)
        published = await state.store.replace(
            principal.tenant,
            routes,
            router_config,
            expected_version=_if_match(request.headers.get("if-match")),
        )
        logger.info(
            "route set replaced",
            extra={
                "tenant": principal.tenant,
                "version": published.version,
                "key": principal.key_id,
            },
        )
        return {"version": published.version, "routes": list(published.router.route_names)}

    @app.delete("/v1/routes/{name}", tags=["routes"])
    async def delete_route(name: str, principal: AuthPrincipal) -> dict[str, Any]:
        """Remove one route from the caller's set (a new set, swapped atomically)."""
        published = await state.store.delete(principal.tenant, name)
        return {"version": published.version, "routes": list(published.router.route_names)}


def _add_execution_routes(app: FastAPI, state: ServerState) -> None:
    @app.post("/v1/execute", tags=["execution"], response_model=None)
    async def execute(
        body: ExecuteRequest, principal: AuthPrincipal
    ) -> dict[str, Any] | StreamingResponse:
        """Route, then execute on the route's target (cache, retries, durable record)."""
        bridge = require_bridge(state)
        rs = state.store.get(principal.tenant)
        decision, _ = await state.decide(rs, body.query, body.embedding)
        context = state.context(principal)
        if body.stream:
            return StreamingResponse(
                _sse_execution(bridge, rs.router, decision, body.query, context),
                media_type="text/event-stream",
            )
        token = current_router.set(rs.router)
        try:
            result = await bridge.execute(decision, body.query, context)
        finally:
            current_router.reset(token)
        return {"confidence": decision.confidence, **execution_json(result)}

    @app.get("/v1/executions/{execution_id}", tags=["execution"])
    async def get_execution(execution_id: str, principal: AuthPrincipal) -> dict[str, Any]:
        """One execution record; a tenant sees only its own."""
        bridge = require_bridge(state)
        record = await bridge.state.get(execution_id)
        if record is None or record.context.get("tenant_id") != principal.tenant:
            raise NotFoundError(f"no execution {execution_id!r}")
        return {
            "id": record.id,
            "status": record.status,
            "route": record.route_id,
            "confidence": record.confidence,
            "target": record.target_key,
            "response": (record.result or {}).get("response"),
            "error": record.error,
            "created_at": record.created_at,
        }

    @app.post("/v1/executions/{execution_id}/grade", tags=["grades"])
    async def grade_execution(
        execution_id: str, body: GradeRequest, principal: AuthPrincipal
    ) -> dict[str, Any]:
        """Grade an execution's answer (``score`` in [0, 1]) for the model that gave it; the
        ModelRouter learns it at once, every server over the store within ``grade_poll_s``.
        Once per execution (409 after); a tenant grades only its own executions."""
        bridge = require_grading(state)
        grade = await bridge.grade_execution(execution_id, body.score, tenant=principal.tenant)
        logger.info(
            "execution graded",
            extra={"execution_id": execution_id, "tenant": principal.tenant, "seq": grade.seq},
        )
        model, score = next(iter(grade.scores.items()))
        return {"execution": execution_id, "model": model, "score": score, "seq": grade.seq}

    @app.post("/v1/model-router/grades", tags=["grades"])
    async def add_grades(body: GradesRequest, principal: AuthPrincipal) -> dict[str, Any]:
        """Grades of answers given elsewhere (an evaluation, a judge model), up to
        ``max_batch`` queries: learned as execution grades are."""
        if len(body.grades) > state.config.max_batch:
            raise LimitExceededError(
                f"{len(body.grades)} graded queries in one request; the limit is "
                f"{state.config.max_batch} (ServerConfig.max_batch)"
            )
        bridge = require_grading(state)
        for graded in body.grades:
            state.check_query(graded.query)
        logged = await bridge.add_grades(
            [g.query for g in body.grades],
            [g.scores for g in body.grades],
            tenant=principal.tenant,
        )
        return {"added": len(logged), "seqs": [g.seq for g in logged]}


def _matrix(rows: list[list[float]]) -> NDArray[np.float32]:
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InvalidQueryError(f"embeddings have different lengths: {sorted(widths)}")
    return np.asarray(rows, dtype=np.float32)


async def _sse_execution(
    bridge: CoreRuntimeBridge,
    router: Router,
    decision: RouteResult,
    query: str,
    context: Mapping[str, Any],
) -> AsyncIterator[str]:
    """``event: chunk`` per piece of text, then ``event: result`` (or ``event: error``)."""
    current_router.set(router)  # this generator runs in the response's own task
    try:
        async with bridge.stream(decision, query, context) as stream:
            async for chunk in stream:
                yield f"event: chunk\ndata: {json.dumps({'text': chunk})}\n\n"
            result = stream.result
        payload = {"confidence": decision.confidence, **execution_json(result)}
        yield f"event: result\ndata: {json.dumps(payload)}\n\n"
    except StrataRouterError as exc:  # headers are sent: the error goes in the stream
        body = error_body(type(exc).__name__, str(exc), status_of(exc))
        yield f"event: error\ndata: {json.dumps(body)}\n\n"


def _log_decision(
    state: ServerState, principal: Principal, query: str, result: RouteResult
) -> None:
    extra: dict[str, Any] = {
        "key": principal.key_id,
        "tenant": principal.tenant,
        "route": result.route_id,
        "confidence": round(result.confidence, 4),
    }
    if state.config.log_queries:
        extra["query"] = query
    logger.debug("routed", extra=extra)
