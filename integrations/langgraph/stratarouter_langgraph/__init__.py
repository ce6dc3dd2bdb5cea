"""StrataRouter for LangGraph: route between nodes.

- `route_edge(router, ...)`: the path of a conditional edge, with a complete, checked path map.
- `router_node(router, fallback=...)`: a node returning `Command(update=..., goto=...)`, so the
  decision lives in the state; optional top-k fan-out with `Send`.
"""

from __future__ import annotations

from ._decision import DECISION_EVENT, TextFrom
from .edge import ABSTAIN, RouteEdge, route_edge
from .node import RouterNode, RouterState, router_node

__all__ = [
    "ABSTAIN",
    "DECISION_EVENT",
    "RouteEdge",
    "RouterNode",
    "RouterState",
    "TextFrom",
    "route_edge",
    "router_node",
]
