"""The StrataRouter server: REST + OpenAI-compatible API (``stratarouter-runtime[server]``).

`create_app(router, config=ServerConfig(...))` returns a FastAPI app; `stratarouter serve`
(`stratarouter_runtime.server.cli`) runs it with uvicorn. Importing this package without
FastAPI installed raises `MissingDependencyError` naming the extra.
"""

from __future__ import annotations

from .app import create_app
from .batching import EncodeBatcher
from .config import ServerConfig, load_server_config
from .context import ServerState
from .routeset import RouteSet, RouteSetConflictError, RouteStore
from .routesync import RouteSetSync
from .security import ApiKey, Authenticator, RateLimiter

__all__ = [
    "ApiKey",
    "Authenticator",
    "EncodeBatcher",
    "RateLimiter",
    "RouteSet",
    "RouteSetConflictError",
    "RouteSetSync",
    "RouteStore",
    "ServerConfig",
    "ServerState",
    "create_app",
    "load_server_config",
]
