"""BatchCoordinator: single-flight de-duplication of concurrent (near-)identical requests."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from stratarouter_core.errors import ConfigError

from stratarouter_runtime.batching import BatchCoordinator, BatchResult

DIM = 16


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def near(vector: np.ndarray, cosine: float, seed: int = 7) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(DIM)
    noise -= noise @ vector * vector
    noise /= np.linalg.norm(noise)
    return (cosine * vector + np.sqrt(1 - cosine**2) * noise).astype(np.float32)


class Provider:
    """Counts calls; each call waits on `gate` (if given, else `delay`), returns a numbered answer."""

    def __init__(
        self,
        delay: float = 0.02,
        error: BaseException | None = None,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.calls = 0
        self.cancelled = 0
        self.delay = delay
        self.error = error
        self.gate = gate

    def call(self, answer: str = "answer"):
        async def run() -> str:
            self.calls += 1
            number = self.calls
            try:
                if self.gate is not None:
                    await self.gate.wait()
                else:
                    await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            if self.error is not None:
                raise self.error
            return f"{answer}#{number}"

        return run


async def test_identical_concurrent_requests_make_exactly_one_call() -> None:
    coordinator, provider = BatchCoordinator(), Provider()
    results = await asyncio.gather(*(
        coordinator.run("What is our refund policy?", unit(1), "openai:gpt-4o", provider.call())
        for _ in range(20)
    ))
    assert provider.calls == 1
    assert {r.value for r in results} == {"answer#1"}
    assert sum(not r.shared for r in results) == 1  # one leader, 19 served by its call
    assert all(isinstance(r, BatchResult) for r in results)
    stats = coordinator.stats
    assert (stats.requests, stats.calls, stats.saved) == (20, 1, 19)


async def test_identical_text_merges_without_embeddings() -> None:
    coordinator, provider = BatchCoordinator(), Provider()
    results = await asyncio.gather(
        coordinator.run("What is our refund policy?", None, "t", provider.call()),
        coordinator.run("what is our refund policy", None, "t", provider.call()),
    )
    assert provider.calls == 1 and results[1].shared and results[1].similarity == 1.0


async def test_near_identical_requests_are_merged() -> None:
    coordinator, provider = BatchCoordinator(similarity_threshold=0.98), Provider()
    v = unit(2)
    results = await asyncio.gather(
        coordinator.run("How do I reset my password?", v, "t", provider.call()),
        coordinator.run("how can I reset my password", near(v, 0.99), "t", provider.call()),
        coordinator.run("password reset how?", near(v, 0.97, seed=3), "t", provider.call()),
    )
    assert provider.calls == 2  # the third is below 0.98
    assert results[1].shared and results[1].similarity == pytest.approx(0.99, abs=1e-4)
    assert not results[2].shared


async def test_different_targets_are_never_merged() -> None:
    coordinator, provider = BatchCoordinator(), Provider()
    v = unit(3)
    results = await asyncio.gather(
        coordinator.run("summarise this", v, "openai:gpt-4o", provider.call("a")),
        coordinator.run("summarise this", v, "anthropic:claude", provider.call("b")),
    )
    assert provider.calls == 2
    assert not results[0].shared and not results[1].shared


async def test_guard_rejected_pairs_are_not_merged() -> None:
    coordinator, provider = BatchCoordinator(), Provider()
    v = unit(4)
    results = await asyncio.gather(
        coordinator.run("cancel my order", v, "t", provider.call("cancel")),
        coordinator.run("don't cancel my order", v, "t", provider.call("keep")),
        coordinator.run("flights from Paris to Rome", unit(5), "t", provider.call("PR")),
        coordinator.run("flights from Rome to Paris", unit(5), "t", provider.call("RP")),
    )
    assert provider.calls == 4
    assert [r.value.split("#")[0] for r in results] == ["cancel", "keep", "PR", "RP"]
    unguarded, provider = BatchCoordinator(guard=None), Provider()
    await asyncio.gather(
        unguarded.run("cancel my order", v, "t", provider.call()),
        unguarded.run("don't cancel my order", v, "t", provider.call()),
    )
    assert provider.calls == 1


async def test_max_size_closes_a_group() -> None:
    coordinator, provider = BatchCoordinator(max_size=4), Provider()
    results = await asyncio.gather(*(
        coordinator.run("same question", unit(6), "t", provider.call()) for _ in range(10)
    ))
    assert provider.calls == 3  # 4 + 4 + 2
    assert max(r.group_size for r in results) == 4
    values = sorted(r.value for r in results)
    assert values == ["answer#1"] * 4 + ["answer#2"] * 4 + ["answer#3"] * 2


async def test_max_size_one_disables_merging() -> None:
    coordinator, provider = BatchCoordinator(max_size=1), Provider()
    await asyncio.gather(*(coordinator.run("q", None, "t", provider.call()) for _ in range(3)))
    assert provider.calls == 3


async def test_the_leaders_exception_fans_out_to_every_member() -> None:
    coordinator = BatchCoordinator()
    provider = Provider(error=ConnectionResetError("upstream closed"))
    results = await asyncio.gather(
        *(coordinator.run("q", unit(7), "t", provider.call()) for _ in range(5)),
        return_exceptions=True,
    )
    assert provider.calls == 1
    assert all(isinstance(r, ConnectionResetError) for r in results)
    provider.error = None  # a failure is not shared with later requests
    result = await coordinator.run("q", unit(7), "t", provider.call())
    assert provider.calls == 2 and result.value == "answer#2" and not result.shared


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def started(provider: Provider, calls: int = 1) -> None:
    """Let the loop run until `calls` calls have started (no wall-clock wait to guess)."""
    for _ in range(1000):
        if provider.calls >= calls:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{calls} call(s) never started")


async def test_cancelling_a_follower_does_not_cancel_the_shared_call() -> None:
    gate = asyncio.Event()
    coordinator, provider = BatchCoordinator(), Provider(gate=gate)
    leader = asyncio.ensure_future(coordinator.run("q", None, "t", provider.call()))
    follower = asyncio.ensure_future(coordinator.run("q", None, "t", provider.call()))
    await started(provider)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    gate.set()
    assert (await leader).value == "answer#1"
    assert provider.cancelled == 0 and provider.calls == 1


async def test_cancelling_the_leader_does_not_cancel_the_shared_call() -> None:
    gate = asyncio.Event()
    coordinator, provider = BatchCoordinator(), Provider(gate=gate)
    leader = asyncio.ensure_future(coordinator.run("q", None, "t", provider.call()))
    follower = asyncio.ensure_future(coordinator.run("q", None, "t", provider.call()))
    await started(provider)
    leader.cancel()
    gate.set()
    assert (await follower).value == "answer#1"
    assert provider.cancelled == 0


async def test_the_call_is_cancelled_when_every_waiter_has_gone() -> None:
    coordinator, provider = BatchCoordinator(), Provider(gate=asyncio.Event())  # never set
    waiters = [asyncio.ensure_future(coordinator.run("q", None, "t", provider.call()))
               for _ in range(3)]
    await started(provider)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await asyncio.sleep(0)
    assert provider.cancelled == 1
    result = await asyncio.wait_for(
        coordinator.run("q", None, "t", Provider(delay=0).call("fresh")), 1
    )
    assert result.value == "fresh#1" and not result.shared


async def test_a_finished_result_is_shared_within_the_window_only() -> None:
    clock = FakeClock()
    coordinator, provider = BatchCoordinator(window_ms=200, clock=clock), Provider(delay=0.0)
    first = await coordinator.run("q", None, "t", provider.call())
    clock.now += 0.199
    second = await coordinator.run("q", None, "t", provider.call())
    assert provider.calls == 1 and second.shared and second.value == first.value
    clock.now += 0.002  # 201 ms after the group opened
    third = await coordinator.run("q", None, "t", provider.call())
    assert provider.calls == 2 and not third.shared


async def test_in_flight_calls_take_members_after_the_window() -> None:
    clock, gate = FakeClock(), asyncio.Event()
    coordinator, provider = BatchCoordinator(window_ms=10, clock=clock), Provider(gate=gate)
    leader = asyncio.ensure_future(coordinator.run("q", None, "t", provider.call()))
    await started(provider)
    clock.now += 5.0  # far past the window, but the call is still running
    late = asyncio.ensure_future(coordinator.run("q", None, "t", provider.call()))
    await asyncio.sleep(0)
    gate.set()
    late_result = await late
    assert provider.calls == 1 and late_result.shared and (await leader).value == late_result.value


def test_settings_are_validated() -> None:
    for bad in ({"window_ms": -1}, {"window_ms": float("inf")}, {"max_size": 0},
                {"similarity_threshold": 0}, {"similarity_threshold": 1.1}):
        with pytest.raises(ConfigError):
            BatchCoordinator(**bad)
