"""Exceptions raised by stratarouter_core.

Every error the library raises on purpose derives from `StrataRouterError`, and also from the
builtin a caller would naturally catch (`ValueError`, `KeyError`, `ImportError`, ...)::

    StrataRouterError
    ├── ConfigError(ValueError)               bad arguments, config or routes file
    │   ├── RouteValidationError              a Route that cannot be routed to (no text, bad regex)
    │   └── RoutesFileError                   a bad routes file; names the file, route and line
    ├── InvalidQueryError(ValueError)         empty / non-str query, NaN or zero-norm embedding
    │   └── DimensionMismatchError            embedding or encoder dimension != index dimension
    ├── InvalidResultError(ValueError)        a RouteResult built with impossible values
    ├── RouteNotFoundError(KeyError)          a route name the router does not know
    ├── NoRouteError(LookupError)             an adapter's router abstained and it has no fallback
    ├── DuplicateRouteError(ValueError)       two routes with the same name
    ├── ConfigError ── EmptyRouterError       build_index() with no routes
    ├── ConfigError ── InfeasibleTargetError  fit(): no threshold meets the objective's target
    ├── ConfigError ── BulkInputError         route-bulk: unreadable input, missing or bad column
    ├── BulkEngineError(RuntimeError)         route-bulk: the Ray cluster unreachable, a job failed
    ├── IndexNotBuiltError(RuntimeError)      route() before build_index()
    ├── NotFittedError(RuntimeError)          a learned component used before fit()
    ├── EncoderError(RuntimeError)            an encoder failed to produce vectors
    ├── MissingDependencyError(ImportError)   optional extra absent; the message names the extra
    └── PersistenceError(OSError)             unreadable or incompatible saved router
"""

from __future__ import annotations

__all__ = [
    "BulkEngineError",
    "BulkInputError",
    "ConfigError",
    "DimensionMismatchError",
    "DuplicateRouteError",
    "EmptyRouterError",
    "EncoderError",
    "IndexNotBuiltError",
    "InfeasibleTargetError",
    "InvalidQueryError",
    "InvalidResultError",
    "MissingDependencyError",
    "NoRouteError",
    "NotFittedError",
    "PersistenceError",
    "RouteNotFoundError",
    "RouteValidationError",
    "RoutesFileError",
    "StrataRouterError",
]


class StrataRouterError(Exception):
    """Root of every error raised by StrataRouter."""


class ConfigError(StrataRouterError, ValueError):
    """Invalid configuration, argument or routes file."""


class RouteValidationError(ConfigError):
    """A route definition that cannot be used (no examples nor description, invalid regex...)."""


class RoutesFileError(ConfigError):
    """A routes file that cannot be used; the message names the file, the route and the line.

    Attributes:
        path: The file.
        line: 1-based line of the offending node, when known.
    """

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        """`message` is complete (it already names the file and line)."""
        super().__init__(message)
        self.path = path
        self.line = line


class InvalidQueryError(StrataRouterError, ValueError):
    """A query or query embedding that cannot be routed."""


class DimensionMismatchError(InvalidQueryError):
    """A vector whose dimension differs from the one the router was built with."""


class InvalidResultError(StrataRouterError, ValueError):
    """A `RouteResult` built with impossible values, such as a non-finite confidence."""


class RouteNotFoundError(StrataRouterError, KeyError):
    """A route name the router does not know."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class NoRouteError(StrataRouterError, LookupError):
    """A framework adapter's router abstained and the adapter was given nothing to fall back on."""


class DuplicateRouteError(StrataRouterError, ValueError):
    """Two routes share one name."""


class IndexNotBuiltError(StrataRouterError, RuntimeError):
    """Routing was asked for before `Router.build_index()`."""


class NotFittedError(StrataRouterError, RuntimeError):
    """A learned component was used before it was fitted."""


class EncoderError(StrataRouterError, RuntimeError):
    """An encoder failed to turn texts into vectors."""


class MissingDependencyError(StrataRouterError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


class PersistenceError(StrataRouterError, OSError):
    """A saved router that cannot be read: missing files, other format version, other encoder."""


class EmptyRouterError(ConfigError):
    """`build_index()` on a router without routes: there is nothing to route to."""


class InfeasibleTargetError(ConfigError):
    """No threshold meets the requested precision, out-of-scope recall or in-scope loss."""


class BulkInputError(ConfigError):
    """Bulk routing input that cannot be used: not Parquet, a missing or bad column, a bad row.

    Attributes:
        path: The input file.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        """`message` is complete (it already names the file and the column)."""
        super().__init__(message)
        self.path = path  # restored from __dict__ when unpickled (Ray ships worker errors)


class BulkEngineError(StrataRouterError, RuntimeError):
    """The bulk routing engine failed for a reason other than the input (Ray unreachable...)."""
