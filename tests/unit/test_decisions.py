"""The decision log every adapter keeps: bounded, thread-safe, one `RoutingDecision` shape."""

from __future__ import annotations

import doctest
import threading

import pytest

import stratarouter_core.decisions as decisions
from stratarouter_core import ConfigError, DecisionLog, RoutingDecision
from stratarouter_core.testing import AdapterContract


def test_docstring_examples() -> None:
    result = doctest.testmod(decisions)
    assert result.attempted > 0 and result.failed == 0


def test_records_route_target_confidence_and_latency() -> None:
    router = AdapterContract.build_router()
    log = DecisionLog()
    result = router.route("refund my last payment")
    decision = log.record("refund my last payment", result, "Billing Specialist")
    assert isinstance(decision, RoutingDecision) and log[-1] is decision
    assert (decision.route, decision.target) == ("billing", "Billing Specialist")
    assert decision.confidence == result.confidence
    assert decision.latency_us == result.latency_us  # no start given: the router's own
    assert decision.to_dict() == {"route": "billing", "target": "Billing Specialist",
                                  "confidence": result.confidence,
                                  "is_fallback": result.is_fallback,
                                  "latency_us": result.latency_us}


def test_bounded_oldest_dropped_first() -> None:
    router = AdapterContract.build_router()
    result = router.route("refund my last payment")
    log = DecisionLog(max_decisions=3)
    for i in range(5):
        log.record(f"q{i}", result, None)
    assert [d.text for d in log] == ["q2", "q3", "q4"] and len(log) == 3
    assert [d.text for d in log[:2]] == ["q2", "q3"]
    log.clear()
    assert len(log) == 0
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="max_decisions"):
            DecisionLog(max_decisions=bad)  # type: ignore[arg-type]


def test_iterating_while_other_threads_append_never_fails() -> None:
    result = AdapterContract.build_router().route("refund my last payment")
    log = DecisionLog(max_decisions=50)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        while not stop.is_set():
            log.record("q", result, "t")

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2000):
            try:
                assert len(list(log)) <= 50
            except BaseException as exc:  # "deque mutated during iteration" without the lock
                errors.append(exc)
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
