"""`route_edge`: the router as the path of `StateGraph.add_conditional_edges`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.graph import END, START, StateGraph
from stratarouter_core import ConfigError, Router, RouteResult

from ._decision import TextFrom, arecord, complete_map, decision_data, record, state_text

__all__ = ["ABSTAIN", "RouteEdge", "route_edge"]

ABSTAIN = "__stratarouter_abstain__"
"""Path key returned when the router abstains (no route); `path_map` sends it to `fallback`."""


class RouteEdge(Runnable[Any, str]):
    """Path for `add_conditional_edges`: state -> route name (or `ABSTAIN`), plus its path map.

    Build it with `route_edge`, then `edge.attach(graph, source)`, which checks that every
    target is a node of the graph and passes the complete `path_map`: LangGraph would
    otherwise end the graph silently on a name it does not know. Each decision is traced as a
    run named `name` and emitted on the `custom` stream as `{"stratarouter_decision": {...}}`.

    Attributes:
        path_map: Route name -> node, for every route, plus `ABSTAIN` -> fallback.
    """

    def __init__(self, router: Router, *, text_from: TextFrom = "messages",
                 path_map: Mapping[str, str] | None = None, fallback: str = END,
                 name: str = "stratarouter") -> None:
        """See `route_edge`."""
        self.router = router
        self.text_from = text_from
        self.fallback = fallback
        self.name = name
        self.path_map = {**complete_map(router, path_map, fallback, name), ABSTAIN: fallback}

    def _key(self, result: RouteResult) -> str:
        return result.route_id if result.route_id is not None else ABSTAIN

    def _path(self, state: Any, run_manager: CallbackManagerForChainRun) -> str:
        result = self.router.route(state_text(state, self.text_from, self.get_name()))
        key = self._key(result)
        data = decision_data(result, self.get_name(), [self.path_map[key]])
        record(data, run_manager.get_child())
        return key

    async def _apath(self, state: Any, run_manager: AsyncCallbackManagerForChainRun) -> str:
        result = await self.router.aroute(state_text(state, self.text_from, self.get_name()))
        key = self._key(result)
        data = decision_data(result, self.get_name(), [self.path_map[key]])
        await arecord(data, run_manager.get_child())
        return key

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        """Route the state; returns a key of `path_map`."""
        return self._call_with_config(self._path, input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        """Async `invoke` (encodes without blocking the event loop)."""
        return await self._acall_with_config(self._apath, input, config)

    def attach(
        self, graph: StateGraph[Any, Any, Any, Any], source: str = START
    ) -> StateGraph[Any, Any, Any, Any]:
        """`graph.add_conditional_edges(source, self, self.path_map)` after checking the nodes.

        Add the target nodes first.

        Raises:
            ConfigError: `source` or a target of `path_map` is not a node of `graph`.
        """
        nodes = set(graph.nodes)
        if source != START and source not in nodes:
            raise ConfigError(f"{self.name}: source {source!r} is not a node of the graph")
        missing = sorted({t for t in self.path_map.values() if t != END and t not in nodes})
        if missing:
            raise ConfigError(f"{self.name}: target(s) {missing} are not nodes of the graph "
                              f"(nodes: {sorted(nodes)}); add them before attach()")
        path_map: dict[Hashable, str] = {key: node for key, node in self.path_map.items()}
        return graph.add_conditional_edges(source, self, path_map)


def route_edge(router: Router, *, text_from: TextFrom = "messages",
               path_map: Mapping[str, str] | None = None, fallback: str = END,
               name: str = "stratarouter") -> RouteEdge:
    """Build the path function for `add_conditional_edges`, with a complete path map.

    Args:
        router: A built `stratarouter_core.Router`.
        text_from: State key holding the query (str, message or message list: the last
            message is used), or a callable state -> str.
        path_map: Route name -> node name; must cover every route. Default: each route goes
            to the node of the same name. The router's `fallback_route`, if set and not a
            route, goes to `fallback` unless mapped here.
        fallback: Node (or `END`) taken when the router abstains.
        name: Run name in traces, and the branch name in the graph.

    Raises:
        ConfigError: `path_map` names an unknown route or misses one.

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
    """
    return RouteEdge(router, text_from=text_from, path_map=path_map, fallback=fallback, name=name)
