"""What every framework adapter records: one `RoutingDecision` per call, in a `DecisionLog`.

The adapters (LangChain, LangGraph, CrewAI, AutoGen) all speak the same words: a decision
names the text routed, the router's `route`, the adapter's `target` (the branch, node, agent
or label it used; None when it handed the choice back to the framework) and the router's
confidence. Every adapter keeps its recent decisions in `adapter.decisions`.

Example:
    >>> from stratarouter_core.testing import AdapterContract
    >>> router = AdapterContract.build_router()
    >>> log = DecisionLog(max_decisions=2)
    >>> for query in ("refund my last payment", "the app crashes", "what is the weather"):
    ...     _ = log.record(query, router.route(query), target="agent")
    >>> [d.text for d in log], log[-1].text
    (['the app crashes', 'what is the weather'], 'what is the weather')
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, overload

from .errors import ConfigError
from .types import RouteResult

__all__ = ["DEFAULT_MAX_DECISIONS", "DecisionLog", "RoutingDecision"]

DEFAULT_MAX_DECISIONS = 1000
"""How many recent decisions an adapter keeps unless told otherwise."""


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """One routing decision an adapter took.

    Attributes:
        text: The text that was routed (a query, a task description, a chat message).
        route: The router's decision (`RouteResult.route_id`); None when it abstained.
        target: What the adapter used: a branch, node, agent or label name. None when the
            adapter handed the choice back to the framework (its model selector, its LLM
            manager) or raised `NoRouteError`.
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

    @property
    def is_fallback(self) -> bool:
        """True when the router rejected its best candidate for lack of confidence."""
        return self.result.is_fallback

    def to_dict(self) -> dict[str, Any]:
        """Plain data for events and traces: route, target, confidence, is_fallback, latency_us."""
        return {
            "route": self.route,
            "target": self.target,
            "confidence": self.confidence,
            "is_fallback": self.result.is_fallback,
            "latency_us": self.latency_us,
        }


class DecisionLog:
    """The most recent `RoutingDecision`s of an adapter, oldest first; bounded and thread-safe.

    Adapters are called from worker threads (LangChain `batch`, CrewAI crews) and event loops
    at once, so every read works on a snapshot taken under a lock: iterating never fails
    because another thread appended meanwhile.

    Args:
        max_decisions: How many decisions are kept; older ones are dropped first.
    """

    def __init__(self, max_decisions: int = DEFAULT_MAX_DECISIONS) -> None:
        """Keep at most `max_decisions` decisions."""
        if isinstance(max_decisions, bool) or not isinstance(max_decisions, int) or (
            max_decisions < 1
        ):
            raise ConfigError(f"max_decisions must be a positive int, got {max_decisions!r}")
        self.max_decisions = max_decisions
        self._items: deque[RoutingDecision] = deque(maxlen=max_decisions)
        self._lock = threading.Lock()

    def append(self, decision: RoutingDecision) -> None:
        """Add `decision`, dropping the oldest one when the log is full."""
        with self._lock:
            self._items.append(decision)

    def record(
        self, text: str, result: RouteResult, target: str | None, start: float | None = None
    ) -> RoutingDecision:
        """Build, append and return the decision for `result`.

        Args:
            text: The text that was routed.
            result: The router's result.
            target: What the adapter used (None when it deferred to the framework).
            start: `time.perf_counter()` when the adapter call began; the latency is measured
                from it. Without it the router's own latency is used.
        """
        latency = (
            (time.perf_counter() - start) * 1e6 if start is not None else result.latency_us
        )
        decision = RoutingDecision(
            text=text,
            route=result.route_id,
            target=target,
            confidence=result.confidence,
            latency_us=latency,
            result=result,
        )
        self.append(decision)
        return decision

    def snapshot(self) -> list[RoutingDecision]:
        """A copy of the decisions, oldest first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every decision."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        """How many decisions are kept now."""
        return len(self._items)

    def __iter__(self) -> Iterator[RoutingDecision]:
        """Iterate over a snapshot, oldest first."""
        return iter(self.snapshot())

    @overload
    def __getitem__(self, index: int) -> RoutingDecision: ...

    @overload
    def __getitem__(self, index: slice) -> list[RoutingDecision]: ...

    def __getitem__(self, index: int | slice) -> RoutingDecision | list[RoutingDecision]:
        """`log[-1]` is the newest decision; slices return lists."""
        with self._lock:
            if isinstance(index, slice):
                return list(self._items)[index]
            return self._items[index]

    def __repr__(self) -> str:
        """Size and bound, not the whole content."""
        return f"DecisionLog({len(self)} of max {self.max_decisions})"
