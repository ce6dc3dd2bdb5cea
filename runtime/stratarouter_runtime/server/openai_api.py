"""OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``.

``model: "auto"`` routes on the last user message and runs on the chosen route's target
(its metadata's ``provider``/``model``, or the model the server's ModelRouter picks for the
last user message among the route's ``models`` pool). A one-turn conversation (one user message, no
system message of the client's) goes through the bridge: semantic cache, de-duplication,
durable record, per-tenant isolation. A longer conversation is sent whole to the route's
target through the bridge's executor (retries, breakers, fallbacks) and is never cached: a
cached answer to the last message alone would ignore the conversation. A concrete model name
(``provider:model``, or a bare name resolved to the provider of a route that uses it, else
`ServerConfig.default_provider`) passes through the same way. Streams use OpenAI's chunk
format (``data: {chat.completion.chunk}`` ... ``data: [DONE]``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from stratarouter_core.errors import ConfigError, InvalidQueryError, StrataRouterError

from ..bridge.targets import pool_target
from ..config import parse_target_spec
from ..executor import Target
from ..providers.base import ChatMessage, CompletionRequest, Usage
from .context import AuthPrincipal, current_router
from .errors import ModelNotFoundError, error_body, status_of

if TYPE_CHECKING:
    from stratarouter_core.router import Router

    from ..bridge import CoreRuntimeBridge
    from .context import ServerState

__all__ = ["ChatCompletionRequest", "add_openai_routes"]

AUTO = "auto"


class ChatMessageIn(BaseModel):
    """One message as OpenAI's API sends it (text content, or a list of text parts)."""

    model_config = ConfigDict(extra="allow")
    role: StrictStr
    content: StrictStr | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's chat completion request this server uses; others are ignored."""

    model_config = ConfigDict(extra="allow")
    model: StrictStr
    messages: Annotated[list[ChatMessageIn], Field(min_length=1)]
    stream: StrictBool = False
    temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None


def _messages(body: ChatCompletionRequest) -> list[ChatMessage]:
    out = []
    for position, message in enumerate(body.messages):
        if message.role not in ("system", "developer", "user", "assistant"):
            raise InvalidQueryError(
                f"messages[{position}].role {message.role!r} is not supported "
                "(system, developer, user, assistant)"
            )
        role = "system" if message.role == "developer" else message.role
        out.append(ChatMessage(role, message.text()))  # type: ignore[arg-type]
    return out


def _last_user(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user" and message.content.strip():
            return message.content
    raise InvalidQueryError("messages has no non-empty user message to route on")


async def _target_of(
    router: Router, route_id: str | None, query: str, bridge: CoreRuntimeBridge
) -> Target:
    """The target of a conversation's route: its metadata's model, or the bridge's
    ModelRouter's pick for the last user message among the route's ``models`` pool."""
    if route_id is None:
        raise ConfigError(
            "no route is confident enough for this conversation and none is a fallback"
        )
    metadata = router.get_route(route_id).metadata
    if metadata.get("models"):
        target, _ = await pool_target(route_id, metadata, query, bridge.model_router)
        return target
    if not (metadata.get("provider") or metadata.get("model")):
        raise ConfigError(f"route {route_id!r} names no provider/model in its metadata")
    return Target.from_metadata(metadata)


def _route_models(metadata: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """(provider or None, model) of every model a route's metadata names: its ``model``, and
    each entry of its ``models`` pool (a name, or a mapping that may set its own provider)."""
    provider = metadata.get("provider")
    named: list[tuple[str | None, str]] = []
    if metadata.get("model"):
        named.append((provider, str(metadata["model"])))
    for entry in metadata.get("models") or ():
        if isinstance(entry, Mapping):
            if entry.get("model"):
                named.append((entry.get("provider", provider), str(entry["model"])))
        else:
            named.append((provider, str(entry)))
    return [(None if p is None else str(p), m) for p, m in named]


def _concrete(state: ServerState, router: Router, model: str) -> Target:
    bridge = state.bridge
    assert bridge is not None
    if ":" in model:
        provider, name = parse_target_spec(model, field_name="model")
    else:
        uses = [
            provider
            for route in router.routes
            for provider, named in _route_models(route.metadata)
            if named == model and provider
        ]
        provider, name = (uses[0] if uses else state.config.default_provider), model
    if provider not in bridge.providers:
        raise ModelNotFoundError(
            f"model {model!r}: provider {provider!r} is not configured "
            f"(configured: {sorted(bridge.providers) or 'none'}); use 'auto' or 'provider:model'"
        )
    return Target(provider=provider, model=name)


def _completion(
    cid: str,
    created: int,
    model: str,
    text: str,
    finish: str | None,
    usage: Usage | None,
    route: str | None,
    execution_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish or "stop",
                "logprobs": None,
            }
        ],
        "usage": None if usage is None else usage.to_dict(),
        "system_fingerprint": None,
        # the execution id, when the bridge ran it: its answer can be graded with it
        "stratarouter": {"route": route, "execution_id": execution_id},
    }


def _chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None,
    extra: dict[str, Any] | None = None,
) -> str:
    data = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    if extra is not None:
        data["stratarouter"] = extra
    return f"data: {json.dumps(data)}\n\n"


def add_openai_routes(app: FastAPI, state: ServerState) -> None:
    """Register the OpenAI-compatible endpoints on `app`."""

    @app.get("/v1/models", tags=["openai"])
    async def models(principal: AuthPrincipal) -> dict[str, Any]:
        """``auto`` plus every model the caller's routes name."""
        router = state.store.get(principal.tenant).router
        names = {AUTO}
        for route in router.routes:
            for provider, model in _route_models(route.metadata):
                names.add(f"{provider or state.config.default_provider}:{model}")
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "stratarouter"}
                for n in sorted(names)
            ],
        }

    @app.post("/v1/chat/completions", tags=["openai"], response_model=None)
    async def chat(
        body: ChatCompletionRequest, principal: AuthPrincipal
    ) -> dict[str, Any] | StreamingResponse:
        """OpenAI chat completions; ``model: "auto"`` lets the router pick the target."""
        if state.bridge is None:
            raise StrataRouterError("this server has no runtime bridge: execution is off")
        bridge = state.bridge
        rs = state.store.get(principal.tenant)
        messages = _messages(body)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        route_id: str | None = None
        one_turn = [m.role for m in messages] == ["user"]
        if body.model == AUTO:
            query = _last_user(messages)
            decision, _ = await state.decide(rs, query, None)
            route_id = decision.route_id
            if one_turn:  # the bridge: cache, de-duplication, durable record, tenant isolation
                context = state.context(principal)
                if body.stream:
                    return StreamingResponse(
                        _bridge_stream(bridge, rs.router, decision, query, context, cid, created),
                        media_type="text/event-stream",
                    )
                token = current_router.set(rs.router)
                try:
                    result = await bridge.execute(decision, query, context)
                finally:
                    current_router.reset(token)
                return _completion(
                    cid,
                    created,
                    result.model,
                    result.response,
                    result.finish_reason,
                    result.usage,
                    route_id,
                    result.execution_id,
                )
            target = await _target_of(rs.router, route_id, query, bridge)
        else:
            target = _concrete(state, rs.router, body.model)
        request = CompletionRequest(
            model=target.model,
            messages=messages,
            system_prompt=target.system_prompt,
            temperature=body.temperature,
            max_tokens=body.max_tokens or body.max_completion_tokens,
        )
        if body.stream:
            return StreamingResponse(
                _direct_stream(bridge, target, request, cid, created),
                media_type="text/event-stream",
            )
        outcome = await bridge.executor.execute(target, request)
        response = outcome.response
        return _completion(
            cid,
            created,
            response.model or target.model,
            response.text,
            response.finish_reason,
            response.usage,
            route_id,
        )


async def _bridge_stream(
    bridge: CoreRuntimeBridge,
    router: Router,
    decision: Any,
    query: str,
    context: dict[str, Any],
    cid: str,
    created: int,
) -> AsyncIterator[str]:
    current_router.set(router)  # this generator runs in the response's own task
    model = decision.route_id or AUTO
    try:
        yield _chunk(cid, created, model, {"role": "assistant", "content": ""}, None)
        async with bridge.stream(decision, query, context) as stream:
            async for text in stream:
                yield _chunk(cid, created, model, {"content": text}, None)
            result = stream.result
        finish = (result.finish_reason if result else None) or "stop"
        # the last chunk names the execution, to grade its answer
        extra = {"route": decision.route_id, "execution_id": result and result.execution_id}
        yield _chunk(cid, created, model, {}, finish, extra)
        yield "data: [DONE]\n\n"
    except StrataRouterError as exc:  # headers are sent: the error goes in the stream
        yield f"data: {json.dumps(error_body(type(exc).__name__, str(exc), status_of(exc)))}\n\n"


async def _direct_stream(
    bridge: CoreRuntimeBridge, target: Target, request: CompletionRequest, cid: str, created: int
) -> AsyncIterator[str]:
    model = target.model
    try:
        yield _chunk(cid, created, model, {"role": "assistant", "content": ""}, None)
        chunks = bridge.executor.stream(target, request)
        async with chunks:
            async for text in chunks:
                yield _chunk(cid, created, model, {"content": text}, None)
        outcome = chunks.result
        finish = (outcome.response.finish_reason if outcome else None) or "stop"
        yield _chunk(cid, created, model, {}, finish)
        yield "data: [DONE]\n\n"
    except StrataRouterError as exc:
        yield f"data: {json.dumps(error_body(type(exc).__name__, str(exc), status_of(exc)))}\n\n"
