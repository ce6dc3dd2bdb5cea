"""Route a CrewAI Flow: a `@router` step returns the label of the routed listener."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from crewai.flow.flow import Flow
from pydantic import BaseModel
from stratarouter_core import ConfigError, DecisionLog, NoRouteError, Router, RouteResult

__all__ = ["SemanticFlowRouter"]


class SemanticFlowRouter:
    """Turn a routing decision into a Flow event label, checked against the flow's listeners.

    A label no `@listen(...)` method waits for silently ends a CrewAI flow, so every label
    this helper can return (one per route, plus `fallback`) must be heard by the flow, or the
    constructor raises `ConfigError`. Each call writes the label and the confidence to the
    flow state (`state.route` and `state.confidence` by default).

    CrewAI refuses a listener method named like the label it listens to (`@listen("billing")
    def billing`: "infinite loop"), and it does so when the flow is created, before this
    helper sees it. To keep such method names, map the route to another label:
    `targets={"billing": "to_billing"}` with `@listen("to_billing") def billing(self)`.

    Args:
        router: A built router.
        flow: The flow instance whose `@router` step calls `route`.
        targets: Label of each route, when it is not the route name itself.
        fallback: Label returned when the router abstains; None raises `NoRouteError`
            from the router step instead (the flow stops with that error).
        route_key: State field (or dict key) receiving the returned label.
        confidence_key: State field (or dict key) receiving the router's confidence.
        max_decisions: How many recent decisions `decisions` keeps.

    Example:
        >>> from crewai.flow.flow import Flow, listen, router, start
        >>> from stratarouter_core.testing import AdapterContract
        >>> class Tickets(Flow[dict]):
        ...     @start()
        ...     def receive(self): return self.state["query"]
        ...     @router(receive)
        ...     def pick(self): return self.semantic.route(self.state["query"])
        ...     @listen("billing")
        ...     def do_billing(self): return "billing team"
        ...     @listen("tech_support")
        ...     def do_tech(self): return "tech team"
        ...     @listen("sales")
        ...     def do_sales(self): return "sales team"
        ...     @listen("human")
        ...     def escalate(self): return "a human"
        >>> flow = Tickets(suppress_flow_events=True)
        >>> router = AdapterContract.build_router()
        >>> flow.semantic = SemanticFlowRouter(router, flow, fallback="human")
        >>> flow.kickoff(inputs={"query": "refund my last payment"})
        'billing team'
        >>> flow.state["route"]
        'billing'
    """

    def __init__(
        self,
        router: Router,
        flow: Flow[Any],
        *,
        targets: Mapping[str, str] | None = None,
        fallback: str | None = None,
        route_key: str = "route",
        confidence_key: str = "confidence",
        max_decisions: int = 1000,
    ) -> None:
        """Check every label against the flow's listeners and the state's fields."""
        self.router = router
        self.flow = flow
        self.fallback = fallback
        self.route_key = route_key
        self.confidence_key = confidence_key
        self.targets = _labels(router, targets or {})
        self.decisions = DecisionLog(max_decisions)
        heard = dict(self.targets)
        if fallback is not None:
            heard["<fallback>"] = fallback
        _check_heard(flow, heard)
        _check_state(flow.state, (route_key, confidence_key))

    def route(self, text: str) -> str:
        """Route `text`, write the decision to the flow state and return the label."""
        start = time.perf_counter()
        return self._emit(text, self.router.route(text), start)

    async def aroute(self, text: str) -> str:
        """Async `route`, through `Router.aroute`, for `async def` router steps."""
        start = time.perf_counter()
        return self._emit(text, await self.router.aroute(text), start)

    def _emit(self, text: str, result: RouteResult, start: float) -> str:
        routed = self.targets.get(result.route_id) if result.route_id else None
        label = routed if routed is not None else self.fallback
        self.decisions.record(text, result, label, start)
        if label is None:
            raise NoRouteError(
                f"{type(self.flow).__name__}: the router abstained on {text[:60]!r} "
                f"(confidence {result.confidence:.2f}) and SemanticFlowRouter has no fallback "
                "label: pass fallback=<label of a listener>"
            )
        state = self.flow.state
        if isinstance(state, dict):
            state[self.route_key] = label
            state[self.confidence_key] = result.confidence
        else:
            setattr(state, self.route_key, label)
            setattr(state, self.confidence_key, result.confidence)
        return label


def _labels(router: Router, labels: Mapping[str, str]) -> dict[str, str]:
    known = set(router.route_names)
    if router.config.fallback_route:
        known.add(router.config.fallback_route)
    unknown = sorted(set(labels) - known)
    if unknown:
        raise ConfigError(f"targets given for unknown route(s) {unknown} "
                          f"(routes: {sorted(known)})")
    return {name: labels.get(name, name) for name in sorted(known, key=str)}


def _conditions(condition: Any) -> Iterator[str]:
    """Every event name in a Flow condition (a string, or {"and"|"or": [conditions]})."""
    if isinstance(condition, str):
        yield condition
    elif isinstance(condition, dict):
        for branches in condition.values():
            for branch in branches:
                yield from _conditions(branch)


def _check_heard(flow: Flow[Any], labels: Mapping[str, str]) -> None:
    heard: set[str] = set()
    for method in type(flow).flow_definition().methods.values():
        heard.update(_conditions(method.listen))
        if not isinstance(method.start, bool):
            heard.update(_conditions(method.start))
    unheard = {route: label for route, label in labels.items() if label not in heard}
    if unheard:
        raise ConfigError(
            f"{type(flow).__name__} has no @listen(...) for label(s) {unheard} (route -> "
            f"label); a router label nobody listens to silently ends the flow. Listened-to: "
            f"{sorted(heard)}"
        )


def _check_state(state: Any, keys: tuple[str, ...]) -> None:
    if isinstance(state, dict):
        return
    if not isinstance(state, BaseModel):
        raise ConfigError(f"flow state must be a dict or a pydantic model, got {type(state)}")
    allows_extra = type(state).model_config.get("extra") == "allow"
    missing = [key for key in keys if key not in type(state).model_fields and not allows_extra]
    if missing:
        raise ConfigError(
            f"{type(state).__name__} has no field(s) {missing} for the routing decision: add "
            f"them (e.g. route: str = '', confidence: float = 0.0) or pass route_key=/"
            "confidence_key="
        )
