"""Retry policy (exponential backoff, full jitter) and circuit breakers per provider and model.

`RetryPolicy` is the core's (`stratarouter_core.encoders.openai_policy`), so provider calls and
`OpenAIEncoder` retry the same failures the same way; it is re-exported here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal

from stratarouter_core.encoders.openai_policy import RetryPolicy
from stratarouter_core.errors import ConfigError

__all__ = [
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "RetryPolicy",
    "StateChangeHook",
]

BreakerState = Literal["closed", "open", "half_open"]
StateChangeHook = Callable[[str, BreakerState, BreakerState], None]
"""Called as `hook(breaker_name, old_state, new_state)` after each transition."""


class CircuitBreaker:
    """Stops calling a target that keeps failing, and probes it before trusting it again.

    `closed`: calls go through; `failure_threshold` failures within `window_s` seconds open it.
    `open`: calls are refused for `reset_timeout_s` seconds, then it turns `half_open`.
    `half_open`: exactly one call (the probe) goes through, concurrent ones are refused; the
    probe's success closes the breaker, its failure opens it again for another timeout.

    Callers ask `allow()` before a call and report `record_success()` / `record_failure()` after
    it, or `release()` when the call ended without saying anything about the target's health
    (cancelled, or refused as a bad request). Thread-safe.

    Example:
        >>> now = [0.0]
        >>> breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=30, clock=lambda: now[0])
        >>> breaker.record_failure(); breaker.record_failure(); breaker.state
        'open'
        >>> breaker.allow()
        False
        >>> now[0] = 31.0
        >>> breaker.state, breaker.allow(), breaker.allow()
        ('half_open', True, False)
        >>> breaker.record_success(); breaker.state
        'closed'
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        window_s: float = 60.0,
        reset_timeout_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeHook | None = None,
        name: str = "breaker",
    ) -> None:
        """Start closed."""
        if failure_threshold < 1:
            raise ConfigError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if window_s <= 0 or reset_timeout_s <= 0:
            raise ConfigError(
                f"window_s and reset_timeout_s must be > 0, got {window_s}, {reset_timeout_s}"
            )
        self.failure_threshold = failure_threshold
        self.window_s = window_s
        self.reset_timeout_s = reset_timeout_s
        self.name = name
        self.on_state_change = on_state_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """`"closed"`, `"open"` or `"half_open"` (an open breaker past its timeout is half-open)."""
        with self._lock:
            change = self._refresh()
            state = self._state
        self._notify(change)
        return state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through; 0.0 when not open."""
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self._opened_at + self.reset_timeout_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go now; in half-open state this claims the single probe slot."""
        with self._lock:
            change = self._refresh()
            if self._state == "closed":
                allowed = True
            elif self._state == "half_open" and not self._probing:
                self._probing = allowed = True
            else:
                allowed = False
        self._notify(change)
        return allowed

    def record_success(self) -> None:
        """A call succeeded: a half-open breaker closes."""
        with self._lock:
            change = None
            if self._state == "half_open":
                change = self._move("closed")
            self._probing = False
        self._notify(change)

    def record_failure(self) -> None:
        """A call failed: count it, or reopen a half-open breaker."""
        with self._lock:
            now = self._clock()
            change = self._refresh()
            if self._state == "half_open":
                change = self._open(now)
            elif self._state == "closed":
                self._failures.append(now)
                self._prune(now)
                if len(self._failures) >= self.failure_threshold:
                    change = self._open(now)
            self._probing = False
        self._notify(change)

    def release(self) -> None:
        """A call ended without a verdict: free the probe slot it may hold."""
        with self._lock:
            self._probing = False

    def reset(self) -> None:
        """Force the breaker closed and forget past failures."""
        with self._lock:
            change = self._move("closed")
            self._probing = False
        self._notify(change)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state!r})"

    # -- internals: call with the lock held; notify after releasing it ------------------------

    def _refresh(self) -> tuple[BreakerState, BreakerState] | None:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_timeout_s:
            return self._move("half_open")
        return None

    def _open(self, now: float) -> tuple[BreakerState, BreakerState] | None:
        self._opened_at = now
        return self._move("open")

    def _move(self, state: BreakerState) -> tuple[BreakerState, BreakerState] | None:
        old, self._state = self._state, state
        if state != "open":
            self._failures.clear()
        return None if old == state else (old, state)

    def _prune(self, now: float) -> None:
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()

    def _notify(self, change: tuple[BreakerState, BreakerState] | None) -> None:
        if change is not None and self.on_state_change is not None:
            self.on_state_change(self.name, *change)


class BreakerRegistry:
    """One `CircuitBreaker` per (provider, model), created on first use with shared settings.

    Breakers are named `"provider:model"`, the key the executor and metrics use.

    Example:
        >>> registry = BreakerRegistry(failure_threshold=3)
        >>> registry.get("openai", "gpt-4o") is registry.get("openai", "gpt-4o")
        True
        >>> registry.states()
        {'openai:gpt-4o': 'closed'}
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        window_s: float = 60.0,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeHook | None = None,
    ) -> None:
        """Validate the settings every breaker will get."""
        CircuitBreaker(failure_threshold, window_s, reset_timeout_s)  # validates the settings
        self._settings = (failure_threshold, window_s, reset_timeout_s)
        self._clock = clock
        self.on_state_change = on_state_change
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, provider: str, model: str) -> CircuitBreaker:
        """The breaker of (`provider`, `model`), created closed if new."""
        key = (provider, model)
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = CircuitBreaker(
                    *self._settings,
                    clock=self._clock,
                    on_state_change=self._forward,
                    name=f"{provider}:{model}",
                )
                self._breakers[key] = breaker
            return breaker

    def states(self) -> dict[str, BreakerState]:
        """`{"provider:model": state}` for every breaker created so far."""
        return {breaker.name: breaker.state for breaker in self}

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._breakers)

    def _forward(self, name: str, old: BreakerState, new: BreakerState) -> None:
        if self.on_state_change is not None:
            self.on_state_change(name, old, new)
