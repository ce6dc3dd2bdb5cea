"""The decision record every CrewAI adapter keeps, and the errors they share."""

from __future__ import annotations

from dataclasses import dataclass

from stratarouter_core import RouteResult, StrataRouterError

__all__ = ["NoRouteError", "RoutingDecision", "role_key"]


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """One routing decision an adapter took.

    Attributes:
        text: The text that was routed (a task description, a flow input).
        route: The router's decision (`RouteResult.route_id`); None when it abstained.
        target: What the adapter used: an agent role or a flow label. None when the adapter
            handed the choice back to CrewAI (the manager LLM).
        confidence: The router's calibrated confidence in its best route.
        latency_us: Time the adapter spent on the call, routing included, in microseconds.
        result: The full `RouteResult` (candidates, router latency, fallback flag).
    """

    text: str
    route: str | None
    target: str | None
    confidence: float
    latency_us: float
    result: RouteResult


class NoRouteError(StrataRouterError, LookupError):
    """The router abstained and the adapter was given nothing to fall back on."""


def role_key(role: str) -> str:
    """Normalise a role the way CrewAI's delegation tool matches coworkers.

    Whitespace is collapsed, double quotes removed and case folded, so the route
    `"billing specialist"` names the agent whose role is `"Billing  Specialist"`.
    """
    return " ".join(role.split()).replace('"', "").casefold()
