"""StrataRouter for CrewAI: route tasks to agents, delegate without a manager LLM, route Flows.

- `SemanticDelegator`: pre-assign `task.agent` in sequential crews.
- `SemanticManagerAgent`: a `manager_agent` for `Process.hierarchical` that delegates by routing.
- `SemanticFlowRouter`: the label a Flow `@router` step returns, checked against its listeners.
"""

from __future__ import annotations

from ._decision import NoRouteError, RoutingDecision
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
