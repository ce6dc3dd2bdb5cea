"""Extra time per call that the LangGraph adapter adds on top of `router.route` (median).

The encoding cache is warm. Measured directly (`RouteEdge.invoke`, `RouterNode.invoke`) and
inside a compiled graph, against the same graph whose edge/node calls `router.route` by hand.

    python integrations/langgraph/benchmarks/overhead.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from stratarouter_core import Router
from stratarouter_core.testing import AdapterContract

from stratarouter_langgraph import RouterState, route_edge, router_node

QUERY = "I was charged twice, please refund my payment"
STATE: dict[str, Any] = {"messages": [HumanMessage(QUERY)]}
N = 2000


def paired_us(func: Callable[[], Any], reference: Callable[[], Any] | None = None,
              n: int = N) -> tuple[float, float]:
    """Median of `func()` and median extra over `reference()`, in microseconds.

    The two are called alternately and the extra is the median of the per-pair differences,
    which cancels most of the drift of a busy machine.
    """
    for _ in range(100):
        func()
        if reference is not None:
            reference()
    own, extra = [], []
    for _ in range(n):
        start = time.perf_counter_ns()
        func()
        middle = time.perf_counter_ns()
        if reference is not None:
            reference()
        end = time.perf_counter_ns()
        own.append(middle - start)
        extra.append((middle - start) - (end - middle))
    return statistics.median(own) / 1000, statistics.median(extra) / 1000 if reference else 0.0


def graphs(router: Router) -> dict[str, Any]:
    """Four one-hop graphs: hand-written edge / our edge, hand-written node / our node."""
    def hand_path(state: RouterState) -> str:
        return router.route(state["messages"][-1].text).route_id or END

    def hand_node(state: RouterState) -> Command[str]:
        result = router.route(state["messages"][-1].text)
        return Command(update={"route": result.route_id, "confidence": result.confidence},
                       goto=result.route_id or END)

    built = {}
    for kind in ("hand edge", "route_edge", "hand node", "router_node"):
        graph = StateGraph(RouterState)
        for name in router.route_names:
            graph.add_node(name, lambda state: {})
        if kind == "hand edge":
            graph.add_conditional_edges(START, hand_path, [*router.route_names, END])
        elif kind == "route_edge":
            route_edge(router, fallback=END).attach(graph, START)
        else:
            node = hand_node if kind == "hand node" else router_node(router, fallback=END)
            graph.add_node("router", node, destinations=(*router.route_names, END))
            graph.add_edge(START, "router")
        built[kind] = graph.compile()
    return built


def main() -> None:
    """Print the table."""
    router = AdapterContract.build_router()
    edge = route_edge(router, fallback=END)
    node = router_node(router, fallback=END)
    apps = graphs(router)

    def route() -> Any:
        return router.route(QUERY)

    def run(kind: str) -> Callable[[], Any]:
        return lambda: apps[kind].invoke(STATE)

    rows = [
        ("router.route (baseline)", *paired_us(route)),
        ("RouteEdge.invoke (outside a graph)", *paired_us(lambda: edge.invoke(STATE), route)),
        ("RouterNode.invoke (outside a graph)", *paired_us(lambda: node.invoke(STATE), route)),
        ("graph.invoke, route_edge vs hand-written path fn",
         *paired_us(run("route_edge"), run("hand edge"), 500)),
        ("graph.invoke, router_node vs hand-written Command node",
         *paired_us(run("router_node"), run("hand node"), 500)),
    ]
    print(f"{'call (median of interleaved pairs)':56} {'us':>8} {'extra us':>9}")
    for name, own, extra in rows:
        print(f"{name:56} {own:8.1f} {extra:9.1f}" if extra else f"{name:56} {own:8.1f}")


if __name__ == "__main__":
    main()
