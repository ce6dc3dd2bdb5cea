"""StrataRouter for LangGraph: route between nodes.

- `route_edge(router, targets=..., fallback=...)`: the path of a conditional edge; it returns
  node names, and `attach` checks them against the graph.
- `router_node(router, targets=..., fallback=...)`: a node returning
  `Command(update=..., goto=...)`, so the decision lives in the state; optional top-k fan-out.

Both keep their recent `RoutingDecision`s in `.decisions` (the vocabulary every StrataRouter
adapter shares).
"""

from __future__ import annotations

from ._decision import DECISION_EVENT, TextFrom
from .edge import RouteEdge, route_edge
from .node import RouterNode, RouterState, router_node

__all__ = [
    "DECISION_EVENT",
    "RouteEdge",
    "RouterNode",
    "RouterState",
    "TextFrom",
    "route_edge",
    "router_node",
]
