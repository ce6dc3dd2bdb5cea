"""Routes executed by Python code (an agent, a tool, a workflow) instead of a model."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from stratarouter_core.errors import ConfigError, StrataRouterError

from .results import NO_USAGE

__all__ = ["Handler", "HandlerError", "HandlerOutput", "HandlerRegistry", "handler_payload"]

HandlerOutput = str | Mapping[str, Any]
Handler = Callable[[str, Mapping[str, Any]], HandlerOutput | Awaitable[HandlerOutput]]
"""A route executed by Python code: ``fn(query, context) -> str | Mapping`` (sync or async)."""


class HandlerError(StrataRouterError, RuntimeError):
    """A registered handler raised, returned something unusable, or timed out."""


class HandlerRegistry:
    """The handlers of a bridge, by route.

    Example:
        >>> registry = HandlerRegistry()
        >>> registry.register("greet", lambda query, context: "hello!")
        >>> "greet" in registry, "other" in registry
        (True, False)
    """

    def __init__(self) -> None:
        """Start with no handler."""
        self._handlers: dict[str, Handler] = {}

    def __contains__(self, route: object) -> bool:
        return route in self._handlers

    def register(self, route: str, fn: Handler) -> None:
        """Execute `route` by calling ``fn(query, context)`` (an agent, tool or workflow).

        `fn` may be sync (run in a worker thread) or async, and returns the answer text or a
        mapping (its ``"response"`` key, if any, is the answer text; the mapping is kept as
        `ExecutionResult.output`). Handler results are never cached nor de-duplicated.
        """
        if not isinstance(route, str) or not route.strip():
            raise ConfigError(f"handler route must be a non-blank string, got {route!r}")
        if not callable(fn):
            raise ConfigError(f"handler for route {route!r} must be callable, got {fn!r}")
        self._handlers[route] = fn

    async def call(
        self, route: str, query: str, context: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Run the handler of `route` within `timeout` seconds; its output as a payload."""
        fn = self._handlers.get(route)
        if fn is None:
            raise ConfigError(f"no handler is registered for route {route!r}")
        frozen = MappingProxyType(dict(context))
        try:
            if inspect.iscoroutinefunction(fn):
                call: Awaitable[Any] = fn(query, frozen)
            else:
                call = asyncio.to_thread(fn, query, frozen)
            output = await asyncio.wait_for(call, timeout)
            if inspect.isawaitable(output):
                output = await asyncio.wait_for(output, timeout)
        except asyncio.TimeoutError as exc:
            raise HandlerError(f"handler for route {route!r} timed out after {timeout:g}s") from exc
        except StrataRouterError:
            raise
        except Exception as exc:  # the user's code: any failure becomes a HandlerError
            raise HandlerError(f"handler for route {route!r} failed: {exc!r}") from exc
        return handler_payload(route, output)


def handler_payload(route: str, output: object) -> dict[str, Any]:
    """The persisted form of a handler's return value."""
    base = {
        "provider": "handler",
        "model": route,
        "usage": dict(NO_USAGE),
        "cost_usd": 0.0,
        "finish_reason": "stop",
        "target_key": f"handler:{route}",
    }
    if isinstance(output, str):
        return {"response": output, **base}
    if isinstance(output, Mapping):
        text = output.get("response")
        if text is None:
            text = json.dumps(dict(output), default=str, ensure_ascii=False)
        return {"response": str(text), "output": dict(output), **base}
    raise HandlerError(
        f"handler for route {route!r} returned {type(output).__name__}; expected str or a mapping"
    )
