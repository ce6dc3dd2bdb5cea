"""StrataRouter for CrewAI: route tasks to agents, delegate without a manager LLM, route Flows.

- `SemanticDelegator`: pre-assign `task.agent` in sequential crews.
- `SemanticManagerAgent`: a `manager_agent` for `Process.hierarchical` that delegates by routing.
- `SemanticFlowRouter`: the label a Flow `@router` step returns, checked against its listeners.

All take `(router, ..., targets={route: role or label}, fallback=...)`, raise
`NoRouteError` when the router abstains and there is nothing to fall back on, and keep their
recent `RoutingDecision`s in `.decisions`. `NoRouteError` and `RoutingDecision` are
`stratarouter_core`'s, re-exported here for the imports written before they moved there.
"""

from __future__ import annotations

from stratarouter_core import NoRouteError, RoutingDecision

from .delegator import SemanticDelegator
from .flow import SemanticFlowRouter
from .manager import SemanticManagerAgent

__all__ = [
    "NoRouteError",
    "RoutingDecision",
    "SemanticDelegator",
    "SemanticFlowRouter",
    "SemanticManagerAgent",
]
