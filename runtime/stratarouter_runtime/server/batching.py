"""Server-side micro-batching of query encoding.

Encoding one query at a time wastes the encoder: a transformer's cost per text falls steeply
with the batch. `EncodeBatcher` gathers the texts of concurrent requests for at most
``max_wait_s`` (or until ``max_batch`` are waiting) and encodes them in one call, in a worker
thread so the event loop keeps accepting requests; while one batch is being encoded, the
next one fills up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["EncodeBatcher"]

EncodeFn = Callable[[Sequence[str]], NDArray[np.float32]]


class EncodeBatcher:
    """Batches concurrent `encode` calls into fewer calls of `encode_fn`.

    Args:
        encode_fn: Texts -> (n, dim) float32 vectors (e.g. `Router.encode`).
        max_wait_s: Longest a text waits for others before its batch is encoded.
        max_batch: Most texts per call.

    Attributes:
        calls: Encoder calls made so far; texts: texts encoded so far.
    """

    def __init__(self, encode_fn: EncodeFn, *, max_wait_s: float = 0.002, max_batch: int = 64):
        """An idle batcher; it needs a running event loop only once `encode` is awaited."""
        self._encode_fn = encode_fn
        self.max_wait_s, self.max_batch = max_wait_s, max_batch
        self._pending: list[tuple[str, asyncio.Future[NDArray[np.float32]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._one_at_a_time: asyncio.Lock | None = None
        self.calls = 0
        self.texts = 0

    async def encode(self, text: str) -> NDArray[np.float32]:
        """The (dim,) vector of `text`, encoded together with concurrent requests' texts."""
        row: NDArray[np.float32] = (await self.encode_many([text]))[0]
        return row

    async def encode_many(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The (n, dim) vectors of `texts` (they may share calls with other requests)."""
        loop = asyncio.get_running_loop()
        futures = []
        for text in texts:
            future: asyncio.Future[NDArray[np.float32]] = loop.create_future()
            self._pending.append((text, future))
            futures.append(future)
            if len(self._pending) >= self.max_batch:
                self._flush()
        if self._pending and self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        rows = await asyncio.gather(*futures)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:  # more than one batch waiting: the rest goes next, without delay
            self._timer = asyncio.get_running_loop().call_later(0, self._flush)
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[str, asyncio.Future[NDArray[np.float32]]]]) -> None:
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        async with self._one_at_a_time:  # the encoder uses every core already: no overlap
            try:
                await self._encode_into(batch)
            except Exception:  # a batch of one already holds its error
                # one bad text must not fail the requests it happened to share a call with
                for item in batch if len(batch) > 1 else ():
                    with contextlib.suppress(Exception):
                        await self._encode_into([item])
            except BaseException:  # cancelled (shutdown): the waiters are cancelled too
                for _, future in batch:
                    future.cancel()
                raise

    async def _encode_into(
        self, batch: list[tuple[str, asyncio.Future[NDArray[np.float32]]]]
    ) -> None:
        """Encode `batch` in one call and resolve its futures (with the error if it fails)."""
        try:
            vectors = await asyncio.to_thread(self._encode_fn, [text for text, _ in batch])
        except Exception as exc:
            if len(batch) == 1 and not batch[0][1].done():
                batch[0][1].set_exception(exc)
            raise
        finally:
            self.calls += 1
        self.texts += len(batch)
        for row, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(vectors[row])
