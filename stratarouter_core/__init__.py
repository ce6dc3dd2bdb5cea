"""StrataRouter: semantic routing with calibrated confidence.

Example:
    >>> from stratarouter_core import Route, Router, RouterConfig
    >>> from stratarouter_core.testing import HashingEncoder
    >>> router = Router(encoder=HashingEncoder())
    >>> router.add_routes([
    ...     Route(name="greet", examples=["hello there", "hi there", "hello friend"]),
    ...     Route(name="bye", examples=["goodbye", "see you later", "bye for now"]),
    ... ])
    >>> router.build_index()
    >>> router.route("hello").route_id
    'greet'
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .calibration import IsotonicCalibrator
from .config import FusionWeights, IndexConfig, RouterConfig
from .decisions import DecisionLog, RoutingDecision
from .encoders.base import BaseEncoder, CachedEncoder
from .errors import (
    ConfigError,
    DimensionMismatchError,
    DuplicateRouteError,
    EncoderError,
    IndexNotBuiltError,
    InvalidQueryError,
    InvalidResultError,
    MissingDependencyError,
    NoRouteError,
    NotFittedError,
    PersistenceError,
    RouteNotFoundError,
    RoutesFileError,
    RouteValidationError,
    StrataRouterError,
)
from .model_routing import (
    ModelChoice,
    ModelRouter,
    ModelRouterConfig,
    ModelRoutingReport,
    ModelSpec,
)
from .router import Router
from .simd import simd_enabled
from .types import Candidate, Route, RouteResult

try:
    __version__ = version("stratarouter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "BaseEncoder",
    "CachedEncoder",
    "Candidate",
    "ConfigError",
    "DecisionLog",
    "DimensionMismatchError",
    "DuplicateRouteError",
    "EncoderError",
    "FusionWeights",
    "IndexConfig",
    "IndexNotBuiltError",
    "InvalidQueryError",
    "InvalidResultError",
    "IsotonicCalibrator",
    "MissingDependencyError",
    "ModelChoice",
    "ModelRouter",
    "ModelRouterConfig",
    "ModelRoutingReport",
    "ModelSpec",
    "NoRouteError",
    "NotFittedError",
    "PersistenceError",
    "Route",
    "RouteNotFoundError",
    "RouteResult",
    "RouteValidationError",
    "Router",
    "RouterConfig",
    "RoutesFileError",
    "RoutingDecision",
    "StrataRouterError",
    "__version__",
    "simd_enabled",
]
