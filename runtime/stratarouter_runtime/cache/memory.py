"""In-process cache storage: TTL by timestamps, least-recently-used eviction."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from stratarouter_core.errors import ConfigError

from .base import F32, CacheEntry, CacheRecord
from .vectors import _VectorBlock

__all__ = ["MemoryCacheBackend"]


@dataclass(slots=True)
class _Slot:
    entry: CacheEntry
    namespace: str
    exact_key: str
    group: str | None


class MemoryCacheBackend:
    """In-process cache storage: TTL by timestamps, least-recently-used eviction.

    Args:
        max_entries: most entries kept (over all namespaces); the least recently used goes first.
        clock: returns the current Unix time; inject a fake one in tests.

    Example:
        >>> backend = MemoryCacheBackend(max_entries=1000)
        >>> len(backend)
        0
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        """Create an empty store."""
        if max_entries < 1:
            raise ConfigError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # LRU order, oldest first
        self._exact: dict[tuple[str, str], str] = {}
        self._groups: dict[tuple[str, str], _VectorBlock] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def now(self) -> float:
        """The injected clock's time."""
        return self._clock()

    async def get_exact(self, namespace: str, key: str) -> CacheEntry | None:
        """The live entry under `key`; an expired one is dropped."""
        entry_id = self._exact.get((namespace, key))
        if entry_id is None:
            return None
        return self._touch(entry_id)

    async def nearest(
        self, namespace: str, group: str, vector: F32, threshold: float, limit: int
    ) -> list[tuple[CacheEntry, float]]:
        """Search the group's block (expired rows are masked, then dropped)."""
        block = self._groups.get((namespace, group))
        if block is None:
            return []
        now = self.now()
        found = block.search(vector, threshold, now, limit)
        if len(block) > 64 and len(found) == 0:  # amortised clean-up of expired rows
            for entry_id in block.expired(now):
                self._drop(entry_id)
        hits = []
        for entry_id, score in found:
            entry = self._touch(entry_id)
            if entry is not None:
                hits.append((entry, score))
        return hits

    async def put(self, record: CacheRecord, ttl_s: float) -> None:
        """Store both tiers of `record`, evicting the least recently used entries if full."""
        old = self._exact.get((record.namespace, record.exact_key))
        if old is not None:
            self._drop(old)
        group = None
        if record.vector is not None:
            group = record.group
            block = self._groups.get((record.namespace, group))
            if block is None:
                block = self._groups[(record.namespace, group)] = _VectorBlock(len(record.vector))
            block.add(record.entry.entry_id, record.vector, record.entry.expires_at)
        self._slots[record.entry.entry_id] = _Slot(
            record.entry, record.namespace, record.exact_key, group
        )
        self._exact[(record.namespace, record.exact_key)] = record.entry.entry_id
        while len(self._slots) > self.max_entries:
            self._drop(next(iter(self._slots)))

    async def clear(self, namespace: str | None = None) -> None:
        """Drop every entry of `namespace` (everything when None)."""
        doomed = [i for i, s in self._slots.items() if namespace in (None, s.namespace)]
        for entry_id in doomed:
            self._drop(entry_id)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _touch(self, entry_id: str) -> CacheEntry | None:
        slot = self._slots.get(entry_id)
        if slot is None:
            return None
        if slot.entry.expires_at <= self.now():
            self._drop(entry_id)
            return None
        self._slots.move_to_end(entry_id)
        return slot.entry

    def _drop(self, entry_id: str) -> None:
        slot = self._slots.pop(entry_id, None)
        if slot is None:
            return
        if self._exact.get((slot.namespace, slot.exact_key)) == entry_id:
            del self._exact[(slot.namespace, slot.exact_key)]
        if slot.group is not None:
            key = (slot.namespace, slot.group)
            block = self._groups[key]
            block.remove(entry_id)
            if not len(block):
                del self._groups[key]
