"""Target resolution: a routing decision -> a provider target or a handler, and its request."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import ConfigError, RouteNotFoundError
from stratarouter_core.types import RouteResult

from ..config import RuntimeConfig
from ..executor import Target
from ..providers.base import CompletionRequest, ProviderClient
from .handlers import HandlerRegistry

if TYPE_CHECKING:
    from stratarouter_core import ModelChoice, ModelRouter
    from stratarouter_core.router import Router

__all__ = ["Resolved", "build_request", "pool_target", "providers_from_config", "resolve_target"]

_ENV_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where an execution goes: a provider target or a handler, plus its cache/batch keys,
    and, for a model pool, the ModelRouter's choice that picked the target."""

    kind: Literal["provider", "handler"]
    key: str
    target: Target | None = None
    handler: str | None = None
    cache_params: Mapping[str, Any] = field(default_factory=dict)
    choice: ModelChoice | None = None

    @classmethod
    def for_target(cls, target: Target, choice: ModelChoice | None = None) -> Resolved:
        params = {"system_prompt": target.system_prompt, "params": dict(target.params)}
        return cls("provider", target.key, target=target, cache_params=params, choice=choice)

    @classmethod
    def for_handler(cls, route: str) -> Resolved:
        return cls("handler", f"handler:{route}", handler=route)

    def to_json(self) -> dict[str, Any]:
        if self.target is None:
            return {"kind": "handler", "route": self.handler}
        return {
            "kind": "provider",
            "provider": self.target.provider,
            "model": self.target.model,
            "system_prompt": self.target.system_prompt,
            "params": dict(self.target.params),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resolved:
        if data.get("kind") == "handler":
            return cls.for_handler(str(data["route"]))
        return cls.for_target(
            Target(
                provider=str(data["provider"]),
                model=str(data["model"]),
                system_prompt=data.get("system_prompt"),
                params=data.get("params") or {},
            )
        )


Embed = Callable[[], Awaitable[NDArray[np.float32] | None]]
"""The query's embedding, computed once and shared with the cache (None: not available)."""


async def resolve_target(
    decision: RouteResult,
    *,
    router: Router | None,
    handlers: HandlerRegistry,
    providers: Mapping[str, ProviderClient],
    default: Target | None,
    query: str = "",
    model_router: ModelRouter | None = None,
    embed: Embed | None = None,
) -> Resolved:
    """Where `decision` goes: its route's handler, the target in its route's metadata (one
    model, or the `model_router`'s pick among a ``models`` pool), else `default`; a target
    must name a configured provider. `embed` gives the query's vector in the
    `model_router`'s space (None: it encodes the query itself)."""
    route_id = decision.route_id
    if route_id is not None and route_id in handlers:
        return Resolved.for_handler(route_id)
    metadata: Mapping[str, Any] = {}
    if route_id is not None and router is not None:
        with contextlib.suppress(RouteNotFoundError):  # e.g. a fallback route name
            metadata = router.get_route(route_id).metadata
    choice = None
    if metadata.get("models"):
        target, choice = await pool_target(route_id, metadata, query, model_router, embed)
    elif metadata.get("provider") or metadata.get("model"):
        target = Target.from_metadata(metadata)
    elif default is not None:
        target = default
    elif route_id is None:
        raise RouteNotFoundError(
            f"the decision has no route (confidence {decision.confidence:.2f}) and "
            "RuntimeConfig.default_target is not set"
        )
    else:
        raise ConfigError(
            f"route {route_id!r} has no 'provider'/'model' in its metadata and no handler "
            "is registered for it; set RuntimeConfig.default_target or register a handler"
        )
    if target.provider not in providers:
        hint = (
            f"give ProviderConfig({target.provider}_api_key=...), or set "
            f"{_ENV_KEYS[target.provider]} and build the config with RuntimeConfig.from_env()"
            if target.provider in _ENV_KEYS
            else "add it"
        )
        raise ConfigError(
            f"route {route_id!r} needs provider {target.provider!r}, which is not configured: "
            f"{hint} (or pass providers={{{target.provider!r}: ...}})"
        )
    return Resolved.for_target(target, choice)


async def pool_target(
    route_id: str | None,
    metadata: Mapping[str, Any],
    query: str,
    model_router: ModelRouter | None,
    embed: Embed | None = None,
) -> tuple[Target, ModelChoice]:
    """The target a route's model pool resolves to for `query`, and the choice behind it.

    ``metadata["models"]`` lists model names (sharing the route's ``provider``,
    ``system_prompt`` and ``params``) or mappings that override those per model. The
    ModelRouter decides with the route's ``min_quality`` / ``cost_weight`` / ``max_cost`` (its
    own default rule when none is set) and ``min_graded_similarity``; when it picks a model
    outside the pool, the most preferred of its alternatives inside the pool runs.
    """
    shared = {k: metadata[k] for k in ("provider", "system_prompt", "params") if k in metadata}
    pool: dict[str, Target] = {}
    for entry in metadata["models"]:
        spec = {**shared, "model": entry} if isinstance(entry, str) else {**shared, **entry}
        target = Target.from_metadata(spec)
        pool[target.model] = target
    if model_router is None:
        raise ConfigError(
            f"route {route_id!r} lists a model pool {list(pool)}: give the bridge a fitted "
            "ModelRouter (model_router=...) to choose among them"
        )
    unknown = [m for m in pool if m not in model_router.model_names]
    if unknown:
        raise ConfigError(
            f"route {route_id!r}: models {unknown} are not models of the ModelRouter "
            f"({list(model_router.model_names)})"
        )
    keys = ("min_quality", "cost_weight", "max_cost", "min_graded_similarity")
    rule = {k: metadata[k] for k in keys if k in metadata}
    vector = None if embed is None else await embed()
    # aroute: encoding the query for the ModelRouter must not stall the event loop
    choice = await model_router.aroute(query, vector, **rule)
    for name in (choice.model, *(a.model for a in choice.alternatives)):
        if name in pool:
            return pool[name], choice
    raise AssertionError("unreachable: every pool model is a model of the router")


def providers_from_config(config: RuntimeConfig) -> dict[str, ProviderClient]:
    """Provider clients for the API keys the config holds (a missing key: no such provider)."""
    providers: dict[str, ProviderClient] = {}
    keys = config.providers
    if keys.openai_api_key:
        from ..providers.openai import OpenAIClient

        providers["openai"] = OpenAIClient(keys.openai_api_key, keys.openai_base_url)
    if keys.anthropic_api_key:
        from ..providers.anthropic import AnthropicClient

        providers["anthropic"] = AnthropicClient(keys.anthropic_api_key, keys.anthropic_base_url)
    if keys.google_api_key:
        from ..providers.google import GoogleClient

        providers["google"] = GoogleClient(keys.google_api_key, keys.google_base_url)
    return providers


def build_request(target: Target, query: str) -> CompletionRequest:
    """The request for `query`; ``temperature``/``max_tokens`` in the params get their fields."""
    params = dict(target.params)
    temperature, max_tokens = params.pop("temperature", None), params.pop("max_tokens", None)
    return CompletionRequest.from_text(
        target.model,
        query,
        system_prompt=target.system_prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        params=params,
    )
