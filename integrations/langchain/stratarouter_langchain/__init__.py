"""StrataRouter for LangChain: route inside a Runnable chain.

- `StrataRouterRunnable(router)`: a `Runnable` returning the `RouteResult`.
- `SemanticRouteDispatch(router, targets, fallback=...)`: routes, then runs (or streams) the
  target runnable; no route and no fallback raises `stratarouter_core.NoRouteError`.
- `ModelRouterRunnable({"gpt-4o": llm_a, "gpt-4o-mini": llm_b}, model_router)`: runs (or
  streams) each input on the chat model a `stratarouter_core.ModelRouter` picks.

Both keep their recent `RoutingDecision`s in `.decisions` (the vocabulary every StrataRouter
adapter shares).
"""

from __future__ import annotations

from ._text import RouterInput
from .dispatch import FALLBACK_TARGET, NoBranchError, SemanticRouteDispatch
from .model_router import ModelRouterRunnable
from .runnable import StrataRouterRunnable

__all__ = [
    "FALLBACK_TARGET",
    "ModelRouterRunnable",
    "NoBranchError",
    "RouterInput",
    "SemanticRouteDispatch",
    "StrataRouterRunnable",
]
