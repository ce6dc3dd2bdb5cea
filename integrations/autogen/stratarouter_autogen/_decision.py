"""The decision record every AutoGen adapter keeps."""

from __future__ import annotations

from dataclasses import dataclass

from stratarouter_core import RouteResult

__all__ = ["RoutingDecision"]


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """One routing decision an adapter took.

    Attributes:
        text: The message text that was routed.
        route: The router's decision (`RouteResult.route_id`); None when it abstained.
        target: The agent name the adapter returned; None when it handed the choice back to
            the framework (model selector, ag2 fallback method).
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

