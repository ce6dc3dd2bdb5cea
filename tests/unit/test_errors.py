"""One error tree: the deliberate errors of the value objects and adapters are StrataRouterErrors."""

from __future__ import annotations

import math

import pytest

from stratarouter_core import errors
from stratarouter_core.errors import (
    InvalidResultError,
    NoRouteError,
    RoutesFileError,
    StrataRouterError,
)
from stratarouter_core.types import RouteResult


@pytest.mark.parametrize("confidence", [math.nan, math.inf, -math.inf])
def test_route_result_with_non_finite_confidence(confidence: float) -> None:
    with pytest.raises(InvalidResultError, match="confidence must be finite") as info:
        RouteResult(route_id="a", confidence=confidence, candidates=(), latency_us=1.0)
    assert isinstance(info.value, StrataRouterError) and isinstance(info.value, ValueError)


def test_new_errors_sit_in_the_tree() -> None:
    assert issubclass(NoRouteError, LookupError) and issubclass(NoRouteError, StrataRouterError)
    error = RoutesFileError("f.yaml:3: bad", path="f.yaml", line=3)
    assert isinstance(error, errors.ConfigError) and (error.path, error.line) == ("f.yaml", 3)


def test_the_drawn_tree_names_every_error() -> None:
    drawn = errors.__doc__ or ""
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), StrataRouterError)
        assert name in drawn, f"{name} is missing from the tree in errors.py's docstring"
