"""Value objects: what a route is, and what routing a query returns."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from .errors import InvalidResultError, RouteValidationError

__all__ = ["Candidate", "Route", "RouteResult"]

_NAME = re.compile(r"^[^\s].*$")


def _strings(value: Sequence[str] | str, what: str, route: str) -> tuple[str, ...]:
    # A mapping would iterate as its keys and a str as its characters: both are mistakes.
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        kind = "a string" if isinstance(value, str) else f"{type(value).__name__} {value!r:.40}"
        raise RouteValidationError(f"route {route!r}: {what} must be a list of strings, not {kind}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise RouteValidationError(f"route {route!r}: {what} must hold strings, got {item!r}")
    return tuple(item for item in items if item.strip())


@dataclass(frozen=True, eq=True)
class Route:
    """A target a query can be routed to, defined by what it looks like.

    Args:
        name: Unique route name; it is what `RouteResult.route_id` returns.
        examples: Example utterances (the strongest signal).
        description: What the route handles, in plain words (encoded like an example).
        keywords: Words or phrases whose presence is evidence for the route.
        patterns: Regular expressions (case-insensitive) whose match is evidence for the route.
        metadata: Free-form data for whoever executes the decision (model, provider, prompt...).
        threshold: Minimum confidence for this route; overrides the router-wide threshold.

    Example:
        >>> Route(name="billing", examples=["refund my invoice"], keywords=["invoice"]).name
        'billing'
    """

    name: str
    examples: Sequence[str] = ()
    description: str = ""
    keywords: Sequence[str] = ()
    patterns: Sequence[str] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or not _NAME.match(self.name):
            raise RouteValidationError(f"route name must be a non-blank string, got {self.name!r}")
        set_ = object.__setattr__
        set_(self, "examples", _strings(self.examples, "examples", self.name))
        set_(self, "keywords", _strings(self.keywords, "keywords", self.name))
        set_(self, "patterns", _strings(self.patterns, "patterns", self.name))
        if not isinstance(self.description, str):
            raise RouteValidationError(f"route {self.name!r}: description must be a string")
        if not isinstance(self.metadata, Mapping):
            raise RouteValidationError(f"route {self.name!r}: metadata must be a mapping")
        set_(self, "metadata", MappingProxyType(dict(self.metadata)))
        if not self.examples and not self.description.strip():
            raise RouteValidationError(
                f"route {self.name!r} has no examples and no description: nothing to match against"
            )
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise RouteValidationError(
                    f"route {self.name!r}: invalid regex {pattern!r}: {exc}"
                ) from exc
        if self.threshold is not None and not (
            isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0
        ):
            raise RouteValidationError(
                f"route {self.name!r}: threshold must be in [0, 1], got {self.threshold!r}"
            )

    @property
    def utterances(self) -> tuple[str, ...]:
        """The texts that are encoded for this route: its examples, then its description."""
        description = (self.description.strip(),) if self.description.strip() else ()
        return tuple(self.examples) + description

    def __hash__(self) -> int:
        return hash(self.name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, the inverse of `Route(**data)`."""
        return {
            "name": self.name,
            "examples": list(self.examples),
            "description": self.description,
            "keywords": list(self.keywords),
            "patterns": list(self.patterns),
            "metadata": dict(self.metadata),
            "threshold": self.threshold,
        }


class Candidate(NamedTuple):
    """One ranked route for a query, with each part of its score.

    A named tuple: cheap to build on the hot path, immutable, and readable by field name.

    Attributes:
        route_id: The route's name.
        confidence: Calibrated probability that this route is the right one.
        score: Fused score the ranking uses (higher is better).
        dense: Cosine similarity between the query and the route's prototype.
        sparse: BM25 score as a fraction of the best score the query could reach, in [0, 1].
        rule: 1.0 when a keyword or pattern of the route matched, else 0.0.
    """

    route_id: str
    confidence: float
    score: float
    dense: float
    sparse: float
    rule: float


@dataclass(frozen=True, slots=True)
class RouteResult:
    """The decision for one query.

    Attributes:
        route_id: The chosen route, the fallback route when nothing is confident enough, or
            None when there is no fallback. Out of scope is a normal result, not an error.
        confidence: Calibrated probability that the best-ranked route is right.
        candidates: Best-ranked routes, best first (the top one may have been rejected).
        latency_us: Time spent routing (encoding included when the router encoded), microseconds.
        is_fallback: True when the best candidate was rejected for lack of confidence and the
            configured fallback route was returned (without one, `route_id` is None).
    """

    route_id: str | None
    confidence: float
    candidates: tuple[Candidate, ...]
    latency_us: float
    is_fallback: bool = False

    @property
    def top(self) -> Candidate | None:
        """The best-ranked candidate, accepted or not."""
        return self.candidates[0] if self.candidates else None

    def __post_init__(self) -> None:
        if not math.isfinite(self.confidence):
            raise InvalidResultError(f"confidence must be finite, got {self.confidence!r}")
