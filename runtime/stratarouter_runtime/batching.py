"""Single-flight de-duplication of concurrent, identical or near-identical requests.

When many users ask the same thing at once (a launch, a shared link, a retry storm), only one
provider call is needed. `BatchCoordinator.run` joins a request to an open group of the same
target when its text is identical after normalisation, or when its embedding's cosine to the
group leader's is at least `similarity_threshold` *and* the `QueryGuard` accepts the pair (so
"cancel my order" never rides on "don't cancel my order"). The leader's call starts at once (no
request waits for the window); its result, or its exception, fans out to every member.

A group accepts members while its call is in flight or, after a successful call, until
`window_ms` after it opened (the result is shared within the window); it closes for good at
`max_size` members or when its call fails. Cancelling one waiter never cancels the shared call;
only when every waiter has gone is the call cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import ConfigError

from .cache import DEFAULT_GUARD, _unit, _VectorBlock, normalise_query
from .guard import QueryGuard

__all__ = ["BatchCoordinator", "BatchResult", "BatchStats"]

T = TypeVar("T")


@dataclass(frozen=True)
class BatchResult(Generic[T]):
    """The outcome of one request that went through a `BatchCoordinator`.

    Attributes:
        value: what the shared call returned.
        shared: True when another request's call served this one (a saved call).
        group_size: members of the group when this request got its result.
        similarity: cosine to the leader's embedding (1.0 for the leader and identical texts).
    """

    value: T
    shared: bool
    group_size: int
    similarity: float


@dataclass(slots=True)
class BatchStats:
    """Counters: `requests` seen, provider `calls` made, and calls `saved` by joining a group."""

    requests: int = 0
    calls: int = 0
    saved: int = 0


@dataclass(eq=False)
class _Group:
    group_id: str
    target_key: str
    text: str
    normalised: str
    opened_at: float
    task: asyncio.Task[Any]
    size: int = 1
    waiters: int = 0
    closed: bool = False


class BatchCoordinator:
    """De-duplicates concurrent requests for the same target into one call (single-flight).

    Args:
        window_ms: how long after it opened a group still takes members once its call is done.
        max_size: most requests one call may serve; a full group takes no more members.
        similarity_threshold: minimum cosine between embeddings to join a group.
        guard: must accept (leader text, request text) for a near-identical join; None turns
            the lexical check off.
        clock: monotonic seconds deciding whether a finished group's window is still open;
            default the running event loop's clock. Inject a fake one in tests. (A loop timer
            also drops a finished group from memory when its window ends; it never lets a
            request join a group the clock says is past its window.)

    Example:
        >>> import asyncio
        >>> coordinator = BatchCoordinator(window_ms=50)
        >>> calls = []
        >>> async def answer():
        ...     calls.append(1)
        ...     await asyncio.sleep(0.01)
        ...     return "42"
        >>> async def main():
        ...     return await asyncio.gather(*(
        ...         coordinator.run("What is the answer?", None, "gpt", answer) for _ in range(5)))
        >>> [r.value for r in asyncio.run(main())], len(calls), coordinator.stats.saved
        (['42', '42', '42', '42', '42'], 1, 4)
    """

    def __init__(
        self,
        *,
        window_ms: float = 50.0,
        max_size: int = 32,
        similarity_threshold: float = 0.98,
        guard: QueryGuard | None = DEFAULT_GUARD,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Validate the settings."""
        if not (window_ms >= 0 and math.isfinite(window_ms)):
            raise ConfigError(f"window_ms must be a finite number >= 0, got {window_ms}")
        if max_size < 1:
            raise ConfigError(f"max_size must be >= 1, got {max_size}")
        if not 0.0 < similarity_threshold <= 1.0:
            raise ConfigError(f"similarity_threshold must be in (0, 1], got {similarity_threshold}")
        self.window_s = window_ms / 1000.0
        self.max_size = max_size
        self.similarity_threshold = similarity_threshold
        self.guard = guard
        self._clock = clock
        self.stats = BatchStats()
        self._ids = itertools.count()
        self._groups: dict[str, _Group] = {}
        self._by_text: dict[tuple[str, str], _Group] = {}
        self._blocks: dict[str, _VectorBlock] = {}

    async def run(
        self,
        key_text: str,
        embedding: NDArray[np.float32] | None,
        target_key: str,
        call: Callable[[], Awaitable[T]],
    ) -> BatchResult[T]:
        """Run `call`, or wait for an equivalent call already running for `target_key`.

        Args:
            key_text: the request's query text.
            embedding: its embedding, or None to join only on identical (normalised) text.
            target_key: the provider/model/handler; requests for other targets never merge.
            call: makes the request; called at most once per group.

        Raises:
            Exception: whatever the group's call raised, in every member.
        """
        self.stats.requests += 1
        vector = None if embedding is None else _unit(embedding)
        now = self._now()
        group, similarity = self._find(key_text, vector, target_key, now)
        if group is None:
            return await self._wait(self._open(key_text, vector, target_key, now, call), 1.0, False)
        group.size += 1
        self.stats.saved += 1
        if group.size >= self.max_size:
            self._close(group)
        return await self._wait(group, similarity, True)

    def _find(
        self, text: str, vector: NDArray[np.float32] | None, target_key: str, now: float
    ) -> tuple[_Group | None, float]:
        group = self._by_text.get((target_key, normalise_query(text)))
        if group is not None and self._joinable(group, now):
            return group, 1.0
        block = self._blocks.get(target_key)
        if vector is None or block is None or block.dimension != len(vector):
            return None, 0.0
        for group_id, similarity in block.search(vector, self.similarity_threshold, 0.0, 8):
            group = self._groups[group_id]
            if self._joinable(group, now) and (
                self.guard is None or self.guard.accepts(group.text, text)
            ):
                return group, similarity
        return None, 0.0

    def _joinable(self, group: _Group, now: float) -> bool:
        if group.closed or group.size >= self.max_size:
            return False
        return not group.task.done() or now - group.opened_at <= self.window_s

    def _open(
        self,
        text: str,
        vector: NDArray[np.float32] | None,
        target_key: str,
        now: float,
        call: Callable[[], Awaitable[T]],
    ) -> _Group:
        self.stats.calls += 1
        task: asyncio.Task[T] = asyncio.ensure_future(call())
        group = _Group(
            f"g{next(self._ids)}", target_key, text, normalise_query(text), now, task
        )
        task.add_done_callback(lambda t: self._finished(group, t))
        self._groups[group.group_id] = group
        self._by_text[(target_key, group.normalised)] = group
        if vector is not None:
            block = self._blocks.setdefault(target_key, _VectorBlock(len(vector)))
            if block.dimension == len(vector):  # another dimension: joins on identical text only
                block.add(group.group_id, vector, math.inf)
        if self.max_size == 1:
            self._close(group)
        return group

    async def _wait(self, group: _Group, similarity: float, shared: bool) -> BatchResult[T]:
        group.waiters += 1
        try:
            value: T = await asyncio.shield(group.task)
        except asyncio.CancelledError:
            group.waiters -= 1
            if group.waiters == 0 and not group.task.done():
                group.task.cancel()  # nobody is left to receive the result
                self._close(group)
            raise
        group.waiters -= 1
        return BatchResult(value, shared, group.size, similarity)

    def _finished(self, group: _Group, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._close(group)  # a failure is shared with current members only
            return
        remaining = group.opened_at + self.window_s - self._now()
        if remaining <= 0:
            self._close(group)
        else:  # the result stays shareable until the window ends
            asyncio.get_running_loop().call_later(remaining, self._close, group)

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _close(self, group: _Group) -> None:
        if group.closed:
            return
        group.closed = True
        self._groups.pop(group.group_id, None)
        if self._by_text.get((group.target_key, group.normalised)) is group:
            del self._by_text[(group.target_key, group.normalised)]
        block = self._blocks.get(group.target_key)
        if block is not None:
            block.remove(group.group_id)
