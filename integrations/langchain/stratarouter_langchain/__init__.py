"""StrataRouter for LangChain: route inside a Runnable chain.

- `StrataRouterRunnable(router)`: a `Runnable` returning the `RouteResult`.
- `SemanticRouteDispatch(router, branches, default)`: routes, then runs (or streams) the branch.
"""

from __future__ import annotations

from ._text import RouterInput
from .dispatch import NoBranchError, SemanticRouteDispatch
from .runnable import StrataRouterRunnable

__all__ = ["NoBranchError", "RouterInput", "SemanticRouteDispatch", "StrataRouterRunnable"]
