"""`router_node`: a node that routes and returns `Command(update=..., goto=...)`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langgraph.graph import END, MessagesState, StateGraph
from langgraph.types import Command, Send
from stratarouter_core import ConfigError, DecisionLog, Router, RouteResult

from ._decision import TextFrom, arecord, complete_map, decision_data, record, state_text

__all__ = ["RouterNode", "RouterState", "router_node"]


class RouterState(MessagesState):
    """`MessagesState` plus the keys a `RouterNode` writes: `route` and `confidence`."""

    route: str | None
    confidence: float


class RouterNode(Runnable[Any, Command[str]]):
    """A graph node: routes the state, writes the decision to it and goes to the route's node.

    Returns `Command(update={"route", "confidence"}, goto=node)`. With `fan_out_top_k`, a
    multi-intent query whose runner-up routes are confident enough goes to several nodes at
    once (`Send`, each carrying its own `route`/`confidence`). Add it with `add_to`, which
    declares the destinations so the graph drawing shows the edges and `compile()` checks them.
    The decision is also emitted on the `custom` stream and as a `stratarouter_decision`
    custom event of the node's run (the node opens no run of its own), and kept in
    `decisions` (target: the node of the router's decision).
    """

    def __init__(self, router: Router, *, targets: Mapping[str, str] | None = None,
                 fallback: str = END, text_from: TextFrom = "messages",
                 fan_out_top_k: int | None = None, min_confidence_for_fan_out: float = 0.5,
                 name: str = "stratarouter", max_decisions: int = 1000) -> None:
        """See `router_node`."""
        if fan_out_top_k is not None and fan_out_top_k < 1:
            raise ConfigError(f"{name}: fan_out_top_k must be >= 1 or None, got {fan_out_top_k}")
        self.router = router
        self.fallback = fallback
        self.targets = complete_map(router, targets, fallback, name)
        self.text_from = text_from
        self.fan_out_top_k = fan_out_top_k
        if not 0.0 <= min_confidence_for_fan_out <= 1.0:
            raise ConfigError(f"{name}: min_confidence_for_fan_out must be in [0, 1], "
                              f"got {min_confidence_for_fan_out!r}")
        self.min_confidence_for_fan_out = min_confidence_for_fan_out
        self.name = name
        self.decisions = DecisionLog(max_decisions)

    def _command(self, state: Any, result: RouteResult) -> Command[str]:
        update = {"route": result.route_id, "confidence": result.confidence}
        node = self.targets[result.route_id] if result.route_id is not None else self.fallback
        rejected = result.is_fallback or result.route_id is None
        picks = [] if rejected or not self.fan_out_top_k else [
            c for c in result.candidates[: self.fan_out_top_k]
            if c.confidence >= self.min_confidence_for_fan_out
        ]
        if len({self.targets[c.route_id] for c in picks}) < 2:
            return Command(update=update, goto=node)
        sends = [Send(self.targets[c.route_id], _with_route(state, c.route_id, c.confidence))
                 for c in picks]
        return Command(update=update, goto=sends)

    def _goto_names(self, command: Command[str]) -> list[str]:
        goto = command.goto if isinstance(command.goto, (list, tuple)) else [command.goto]
        return [g.node if isinstance(g, Send) else str(g) for g in goto]

    # No run of its own: LangGraph already traces the node, and the decision event joins it.
    def invoke(self, input: Any, config: RunnableConfig | None = None,
               **kwargs: Any) -> Command[str]:
        """Route the state; returns the `Command`."""
        start = time.perf_counter()
        config = ensure_config(config)
        text = state_text(input, self.text_from, self.get_name())
        command, data = self._decide(input, text, self.router.route(text), start)
        record(data, config.get("callbacks"))
        return command

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> Command[str]:
        """Async `invoke` (encodes without blocking the event loop)."""
        start = time.perf_counter()
        config = ensure_config(config)
        text = state_text(input, self.text_from, self.get_name())
        command, data = self._decide(input, text, await self.router.aroute(text), start)
        await arecord(data, config.get("callbacks"))
        return command

    def _decide(self, state: Any, text: str, result: RouteResult,
                start: float) -> tuple[Command[str], dict[str, Any]]:
        command = self._command(state, result)
        node = self.targets[result.route_id] if result.route_id is not None else self.fallback
        decision = self.decisions.record(text, result, node, start)
        return command, decision_data(decision, self.get_name(), self._goto_names(command))

    @property
    def destinations(self) -> tuple[str, ...]:
        """Every node this node can go to (the route nodes and the fallback), deduplicated."""
        return tuple(dict.fromkeys([*self.targets.values(), self.fallback]))

    def add_to(self, graph: StateGraph[Any, Any, Any, Any],
               node_name: str = "router") -> StateGraph[Any, Any, Any, Any]:
        """`graph.add_node(node_name, self, destinations=...)` after checking the state keys.

        Raises:
            ConfigError: The graph's state has no `route` or `confidence` key (LangGraph would
                drop the update silently); extend `RouterState`.
        """
        missing = [k for k in ("route", "confidence") if k not in graph.channels]
        if missing:
            raise ConfigError(f"{self.name}: the graph state has no key(s) {missing}, so the "
                              f"decision would be dropped; use or extend RouterState")
        return graph.add_node(node_name, self, destinations=self.destinations)


def _with_route(state: Any, route: str, confidence: float) -> Any:
    if isinstance(state, Mapping):
        return {**state, "route": route, "confidence": confidence}
    return state


def router_node(router: Router, *, targets: Mapping[str, str] | None = None,
                fallback: str = END, text_from: TextFrom = "messages",
                fan_out_top_k: int | None = None, min_confidence_for_fan_out: float = 0.5,
                name: str = "stratarouter", max_decisions: int = 1000) -> RouterNode:
    """Build a router node returning `Command(update={"route", "confidence"}, goto=...)`.

    Args:
        router: A built `stratarouter_core.Router`.
        targets: Route name -> node, for routes whose node is not named like the route.
        fallback: Node (or `END`) taken when the router abstains.
        text_from: State key holding the query, or a callable state -> str.
        fan_out_top_k: If set, fan out with `Send` to the nodes of up to this many top
            candidates whose confidence reaches `min_confidence_for_fan_out`.
        min_confidence_for_fan_out: Calibrated confidence each fanned-out candidate needs;
            confidences are probabilities, so 0.5 means "more likely right than not".
        name: Run name in traces.
        max_decisions: How many recent decisions `decisions` keeps.

    Raises:
        ConfigError: `targets` names an unknown route.

    Example:
        >>> from langgraph.graph import END, START, StateGraph
        >>> from stratarouter_core.testing import AdapterContract
        >>> graph = StateGraph(RouterState)
        >>> _ = router_node(AdapterContract.build_router(), fallback=END).add_to(graph)
        >>> for name in ("billing", "tech_support", "sales"):
        ...     _ = graph.add_node(name, lambda state: {})
        >>> app = graph.add_edge(START, "router").compile()
        >>> app.invoke({"messages": [("user", "refund my last payment")]})["route"]
        'billing'
    """
    return RouterNode(router, targets=targets, fallback=fallback, text_from=text_from,
                      fan_out_top_k=fan_out_top_k,
                      min_confidence_for_fan_out=min_confidence_for_fan_out, name=name,
                      max_decisions=max_decisions)
