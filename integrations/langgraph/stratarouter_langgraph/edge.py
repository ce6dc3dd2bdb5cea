"""`route_edge`: the router as the path of `StateGraph.add_conditional_edges`."""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.graph import END, START, StateGraph
from stratarouter_core import ConfigError, DecisionLog, Router, RouteResult

from ._decision import TextFrom, arecord, complete_map, decision_data, record, state_text

__all__ = ["RouteEdge", "route_edge"]


class RouteEdge(Runnable[Any, str]):
    """Path for `add_conditional_edges`: state -> the name of the node to run next.

    It returns node names (the routed node, or `fallback` when the router abstains), so it
    works like any LangGraph path function: `graph.add_conditional_edges(START, edge)`,
    with `edge.path_map`, or through `edge.attach(graph, source)`, which also checks that every
    target is a node of the graph (a name LangGraph does not know would end the run
    silently). It is callable (`edge(state)`) as well as a `Runnable`. Each decision is traced
    as a run named `name`, emitted on the `custom` stream as `{"stratarouter_decision": {...}}`
    and kept in `decisions`.

    Attributes:
        targets: Route name -> node, for every route.
        path_map: Every node the path can return, as `add_conditional_edges` takes it.
        decisions: The recent `RoutingDecision`s (target: the node returned).
    """

    def __init__(self, router: Router, *, targets: Mapping[str, str] | None = None,
                 fallback: str = END, text_from: TextFrom = "messages",
                 name: str = "stratarouter", max_decisions: int = 1000) -> None:
        """See `route_edge`."""
        self.router = router
        self.text_from = text_from
        self.fallback = fallback
        self.name = name
        self.targets = complete_map(router, targets, fallback, name)
        self.decisions = DecisionLog(max_decisions)

    @property
    def path_map(self) -> dict[Hashable, str]:
        """Node -> node for every node the path can return (drawing and LangGraph's checks)."""
        nodes = dict.fromkeys([*self.targets.values(), self.fallback])
        return {node: node for node in nodes}

    def _node(self, text: str, result: RouteResult, start: float) -> tuple[str, dict[str, Any]]:
        node = self.targets[result.route_id] if result.route_id is not None else self.fallback
        decision = self.decisions.record(text, result, node, start)
        return node, decision_data(decision, self.get_name(), [node])

    def _path(self, state: Any, run_manager: CallbackManagerForChainRun) -> str:
        start = time.perf_counter()
        text = state_text(state, self.text_from, self.get_name())
        node, data = self._node(text, self.router.route(text), start)
        record(data, run_manager.get_child())
        return node

    async def _apath(self, state: Any, run_manager: AsyncCallbackManagerForChainRun) -> str:
        start = time.perf_counter()
        text = state_text(state, self.text_from, self.get_name())
        node, data = self._node(text, await self.router.aroute(text), start)
        await arecord(data, run_manager.get_child())
        return node

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        """Route the state; returns the node to run next (or `END`)."""
        return self._call_with_config(self._path, input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        """Async `invoke` (encodes without blocking the event loop)."""
        return await self._acall_with_config(self._apath, input, config)

    def __call__(self, state: Any, config: RunnableConfig | None = None) -> str:
        """`invoke`: a path function is called with the state (and optionally the config)."""
        return self.invoke(state, config)

    def attach(
        self, graph: StateGraph[Any, Any, Any, Any], source: str = START
    ) -> StateGraph[Any, Any, Any, Any]:
        """`graph.add_conditional_edges(source, self, self.path_map)` after checking the nodes.

        Add the target nodes first.

        Raises:
            ConfigError: `source` or a target is not a node of `graph`.
        """
        nodes = set(graph.nodes)
        if source != START and source not in nodes:
            raise ConfigError(f"{self.name}: source {source!r} is not a node of the graph")
        missing = sorted({t for t in self.path_map.values() if t != END and t not in nodes})
        if missing:
            raise ConfigError(f"{self.name}: target(s) {missing} are not nodes of the graph "
                              f"(nodes: {sorted(nodes)}); add them before attach()")
        return graph.add_conditional_edges(source, self, self.path_map)


def route_edge(router: Router, *, targets: Mapping[str, str] | None = None,
               fallback: str = END, text_from: TextFrom = "messages",
               name: str = "stratarouter", max_decisions: int = 1000) -> RouteEdge:
    """Build the path function for `add_conditional_edges`.

    Args:
        router: A built `stratarouter_core.Router`.
        targets: Route name -> node name, for routes whose node is not named like the route.
            The router's `fallback_route`, if set and not a route, goes to `fallback` unless
            mapped here.
        fallback: Node (or `END`) taken when the router abstains.
        text_from: State key holding the query (str, message or message list: the last
            message is used), or a callable state -> str.
        name: Run name in traces, and the branch name in the graph.
        max_decisions: How many recent decisions `decisions` keeps.

    Raises:
        ConfigError: `targets` names an unknown route.

    Example:
        >>> from langgraph.graph import END, START, MessagesState, StateGraph
        >>> from stratarouter_core.testing import AdapterContract
        >>> graph = StateGraph(MessagesState)
        >>> for name in ("billing", "tech_support", "sales"):
        ...     _ = graph.add_node(name, lambda state: {})
        >>> edge = route_edge(AdapterContract.build_router(), fallback=END)
        >>> _ = edge.attach(graph, START)
        >>> app = graph.compile()
        >>> [list(u) for u in app.stream({"messages": [("user", "refund my last payment")]},
        ...                               stream_mode="updates")]
        [['billing']]
        >>> edge({"messages": [("user", "recommend a lasagna recipe")]}) == END
        True
    """
    return RouteEdge(router, targets=targets, fallback=fallback, text_from=text_from, name=name,
                     max_decisions=max_decisions)
