"""What the LangGraph adapters share: reading the query from state, recording the decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackManager, CallbackManager
from langchain_core.messages import BaseMessage
from langgraph.config import get_stream_writer
from stratarouter_core import ConfigError, InvalidQueryError, Router, RoutingDecision

__all__ = [
    "DECISION_EVENT", "TextFrom", "arecord", "complete_map", "decision_data", "record",
    "state_text",
]

TextFrom: TypeAlias = str | Callable[[Any], str]
"""A state key (its value: str, message or message list) or a callable state -> str."""

DECISION_EVENT = "stratarouter_decision"


def state_text(state: Any, text_from: TextFrom, owner: str) -> str:
    """The query to route: `text_from(state)`, or the text at key `text_from` of `state`."""
    if callable(text_from):
        value: Any = text_from(state)
    elif isinstance(state, Mapping):
        if text_from not in state:
            raise KeyError(f"{owner}: state has no key {text_from!r} (keys: {sorted(state)}); "
                           f"pass text_from=<key or callable>")
        value = state[text_from]
    else:
        value = getattr(state, text_from)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise InvalidQueryError(f"{owner}: state[{text_from!r}] is empty, nothing to route")
        value = value[-1]
    if isinstance(value, BaseMessage):
        return str(value.text)
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    if isinstance(value, str):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        return value[1]  # a ("user", "text") message tuple, before LangGraph converts it
    raise TypeError(f"{owner} cannot route a {type(value).__name__} taken from the state: "
                    f"expected str, a message or a list of messages")


def complete_map(router: Router, mapping: Mapping[str, str] | None, fallback: str,
                 owner: str) -> dict[str, str]:
    """Route name -> node for every route (default: same name), checked to be complete.

    `mapping` may name only some routes: the others go to the node of the same name. The
    router's configured `fallback_route`, when it is not a route, goes to `fallback` unless
    `mapping` names it.
    """
    routes = router.route_names
    extra = router.config.fallback_route
    given = dict(mapping or {})
    unknown = [k for k in given if k not in routes and k != extra]
    if unknown:
        raise ConfigError(f"{owner}: targets {unknown} are not routes of the router "
                          f"(routes: {list(routes)})")
    result = {route: given.get(route, route) for route in routes}
    if extra is not None and extra in given:
        result[extra] = given[extra]
    if extra is not None:
        result.setdefault(extra, fallback)
    return result


def decision_data(decision: RoutingDecision, source: str, goto: Sequence[str]) -> dict[str, Any]:
    """The decision as plain data: the `RoutingDecision` fields, the adapter and every node."""
    return {**decision.to_dict(), "source": source, "goto": list(goto)}


def _stream(data: dict[str, Any]) -> None:
    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):  # called outside a running graph
        return
    writer({DECISION_EVENT: data})


def _manager(callbacks: object) -> BaseCallbackManager | None:
    """The callback manager of the enclosing run, if there is one (no new manager is built)."""
    if isinstance(callbacks, BaseCallbackManager) and callbacks.parent_run_id is not None:
        return callbacks
    return None


def record(data: dict[str, Any], callbacks: object) -> None:
    """Emit the decision on the graph's `custom` stream and as a custom event of the run.

    `callbacks` is the child callback manager of the run the event belongs to (a config's
    `callbacks`); outside any run only the stream write happens.
    """
    _stream(data)
    manager = _manager(callbacks)
    if isinstance(manager, CallbackManager):
        manager.on_custom_event(DECISION_EVENT, data, run_id=manager.parent_run_id)


async def arecord(data: dict[str, Any], callbacks: object) -> None:
    """Async `record`."""
    _stream(data)
    manager = _manager(callbacks)
    if isinstance(manager, AsyncCallbackManager):
        await manager.on_custom_event(DECISION_EVENT, data, run_id=manager.parent_run_id)
    elif isinstance(manager, CallbackManager):
        manager.on_custom_event(DECISION_EVENT, data, run_id=manager.parent_run_id)
