"""Retry policy and circuit breakers, on a fake clock."""

from __future__ import annotations

import random

import pytest
from stratarouter_core.errors import ConfigError

from stratarouter_runtime.errors import (
    CircuitOpenError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
)
from stratarouter_runtime.resilience import BreakerRegistry, CircuitBreaker, RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _error(kind, **kw):
    return kind("boom", provider="p", **kw)


# -- RetryPolicy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        _error(ProviderTimeoutError),
        _error(ProviderConnectionError),
        _error(RateLimitError, status=429),
        _error(ProviderServerError, status=503),
    ],
)
def test_retryable_errors_are_retried_up_to_max_retries(error):
    policy = RetryPolicy(max_retries=3)
    assert [policy.should_retry(error, failures) for failures in (1, 2, 3, 4, 5)] == [
        True,
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    "error",
    [
        _error(ProviderRequestError, status=400),
        _error(ProviderRequestError, status=401),
        _error(MalformedResponseError),
        _error(CircuitOpenError),
        ValueError("not a provider error"),
    ],
)
def test_final_errors_are_never_retried(error):
    assert not RetryPolicy(max_retries=10).should_retry(error, 1)


def test_zero_retries_means_one_attempt():
    assert not RetryPolicy(max_retries=0).should_retry(_error(ProviderServerError), 1)


def test_backoff_doubles_and_is_capped_without_jitter():
    policy = RetryPolicy(base_delay_ms=100, max_delay_ms=1000, jitter=False)
    assert [policy.delay_s(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.delay_s(500) == 1.0  # no overflow on absurd retry numbers


def test_full_jitter_draws_below_the_exponential_ceiling():
    policy = RetryPolicy(base_delay_ms=100, max_delay_ms=10_000, jitter=True)
    rng = random.Random(7)
    for retry, ceiling in ((1, 0.1), (3, 0.4), (8, 10.0)):
        draws = [policy.delay_s(retry, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8 and min(draws) < ceiling * 0.2  # spread, not fixed
        assert len(set(draws)) > 150


def test_retry_after_is_honoured_and_capped():
    policy = RetryPolicy(base_delay_ms=10, max_delay_ms=2000, jitter=True)
    assert policy.delay_s(1, _error(RateLimitError, retry_after=1.5)) == 1.5
    assert policy.delay_s(1, _error(RateLimitError, retry_after=60.0)) == 2.0
    no_hint = policy.delay_s(1, _error(RateLimitError))
    assert 0.0 <= no_hint <= 0.01


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"base_delay_ms": -1},
        {"base_delay_ms": 500, "max_delay_ms": 100},
    ],
)
def test_retry_policy_validates(kwargs):
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)


# -- CircuitBreaker ----------------------------------------------------------------------------


def _breaker(clock, changes=None, **kw):
    settings = {"failure_threshold": 3, "window_s": 60.0, "reset_timeout_s": 30.0} | kw
    hook = None if changes is None else (lambda name, old, new: changes.append((name, old, new)))
    return CircuitBreaker(**settings, clock=clock, on_state_change=hook, name="openai:gpt-4o")


def test_breaker_opens_after_threshold_failures_within_the_window():
    clock, changes = Clock(), []
    breaker = _breaker(clock, changes)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(30.0)
    assert changes == [("openai:gpt-4o", "closed", "open")]


def test_failures_older_than_the_window_do_not_count():
    clock = Clock()
    breaker = _breaker(clock, window_s=10.0)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(11)
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "open"


def test_successes_do_not_hide_failures_inside_the_window():
    breaker = _breaker(Clock())
    for _ in range(3):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "open"


def test_open_breaker_turns_half_open_after_reset_timeout_and_lets_one_probe_through():
    clock, changes = Clock(), []
    breaker = _breaker(clock, changes, failure_threshold=1)
    breaker.record_failure()
    clock.advance(29.9)
    assert breaker.state == "open" and not breaker.allow()
    clock.advance(0.2)
    assert breaker.state == "half_open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # concurrent callers are refused while it runs
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()
    assert [c[1:] for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_failed_probe_reopens_for_a_full_timeout():
    clock = Clock()
    breaker = _breaker(clock, failure_threshold=1)
    breaker.record_failure()
    clock.advance(31)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after() == pytest.approx(30.0)
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(2)
    assert breaker.allow()


def test_probe_released_without_verdict_frees_the_slot():
    clock = Clock()
    breaker = _breaker(clock, failure_threshold=1)
    breaker.record_failure()
    clock.advance(31)
    assert breaker.allow() and not breaker.allow()
    breaker.release()  # e.g. the probe was cancelled
    assert breaker.state == "half_open" and breaker.allow()


def test_closed_breaker_forgets_old_failures_after_recovering():
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(31)
    assert breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_reset_closes_the_breaker():
    breaker = _breaker(Clock(), failure_threshold=1)
    breaker.record_failure()
    breaker.reset()
    assert breaker.state == "closed" and breaker.allow()


@pytest.mark.parametrize(
    "kwargs", [{"failure_threshold": 0}, {"window_s": 0}, {"reset_timeout_s": -1}]
)
def test_breaker_validates(kwargs):
    with pytest.raises(ConfigError):
        CircuitBreaker(**kwargs)


# -- BreakerRegistry ---------------------------------------------------------------------------


def test_registry_keeps_one_breaker_per_provider_and_model():
    clock, changes = Clock(), []
    registry = BreakerRegistry(
        failure_threshold=1,
        reset_timeout_s=5,
        clock=clock,
        on_state_change=lambda *change: changes.append(change),
    )
    mini, full = registry.get("openai", "gpt-4o-mini"), registry.get("openai", "gpt-4o")
    assert registry.get("openai", "gpt-4o-mini") is mini and mini is not full
    mini.record_failure()
    assert registry.states() == {"openai:gpt-4o-mini": "open", "openai:gpt-4o": "closed"}
    assert changes == [("openai:gpt-4o-mini", "closed", "open")]
    clock.advance(6)
    assert registry.states()["openai:gpt-4o-mini"] == "half_open"
    assert len(registry) == 2
    with pytest.raises(ConfigError):
        BreakerRegistry(failure_threshold=0)
