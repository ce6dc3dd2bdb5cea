"""Progress checkpoints of long (streamed) executions."""

from __future__ import annotations

import time

from .records import StateStore

__all__ = ["StreamCheckpointer"]


class StreamCheckpointer:
    """Accumulates a stream's chunks and persists progress every `interval` chunks.

    Args:
        store: Where to checkpoint.
        execution_id: The streaming execution.
        interval: Chunks between two checkpoints (`StateConfig.checkpoint_interval`).
    """

    def __init__(self, store: StateStore, execution_id: str, interval: int) -> None:
        """Start with no chunks."""
        self._store = store
        self._execution_id = execution_id
        self._interval = max(1, interval)
        self._parts: list[str] = []
        self.n_checkpoints = 0

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._parts)

    @property
    def n_chunks(self) -> int:
        """Chunks received so far."""
        return len(self._parts)

    async def add(self, chunk: str) -> None:
        """Record one chunk; checkpoint when `interval` chunks arrived since the last one."""
        self._parts.append(chunk)
        if len(self._parts) % self._interval == 0:
            await self.flush()

    async def flush(self) -> None:
        """Persist the progress now."""
        progress = {"chunks": len(self._parts), "text": self.text, "at": time.time()}
        await self._store.checkpoint(self._execution_id, progress)
        self.n_checkpoints += 1
