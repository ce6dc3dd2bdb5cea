"""Server-side micro-batching of query encoding.

Encoding one query at a time wastes the encoder: a transformer's cost per text falls with
the batch. `EncodeBatcher` queues the texts of concurrent requests and one worker task
encodes them: it waits at most ``max_wait_s`` after the oldest queued text arrived (less if
``max_batch`` texts are queued; not at all while traffic comes one request at a time, i.e.
the last batch was one text and nothing arrived while it was encoded), encodes up to
``max_batch`` in one call in a worker thread, and meanwhile the next batch fills up; texts
that waited through an encoding go next without any further wait. Calls never overlap: the
encoder uses the cores already.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["EncodeBatcher"]

EncodeFn = Callable[[Sequence[str]], NDArray[np.float32]]
_Item = tuple[str, "asyncio.Future[NDArray[np.float32]]"]


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
        self._pending: list[_Item] = []
        self._oldest = 0.0  # when the oldest pending text was queued (perf_counter)
        self._worker: asyncio.Task[None] | None = None
        # Whether the last batch had company (more texts, or texts arriving while it was
        # encoded); the first batch waits, as concurrency is what a server is for.
        self._concurrent = True
        self.calls = 0
        self.texts = 0

    async def encode(self, text: str) -> NDArray[np.float32]:
        """The (dim,) vector of `text`, encoded together with concurrent requests' texts."""
        row: NDArray[np.float32] = (await self.encode_many([text]))[0]
        return row

    async def encode_many(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The (n, dim) vectors of `texts` (they may share calls with other requests)."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            self._oldest = time.perf_counter()
        futures = []
        for text in texts:
            future: asyncio.Future[NDArray[np.float32]] = loop.create_future()
            self._pending.append((text, future))
            futures.append(future)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        rows = await asyncio.gather(*futures)
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    async def _drain(self) -> None:
        """Encode the queue batch by batch until it is empty."""
        while self._pending:
            wait = self.max_wait_s - (time.perf_counter() - self._oldest)
            # Waiting pays only under concurrency: a lone client would just be slower.
            if wait > 0 and len(self._pending) < self.max_batch and self._concurrent:
                await asyncio.sleep(wait)
            batch = self._pending[: self.max_batch]
            self._pending = self._pending[self.max_batch :]
            self._oldest = time.perf_counter()  # the rest already waited: no further wait
            if self._pending:
                self._oldest -= self.max_wait_s
            self._concurrent = len(batch) > 1 or bool(self._pending)
            try:
                await self._encode_into(batch)
                self._concurrent = self._concurrent or bool(self._pending)
            except Exception:  # a batch of one already holds its error
                # one bad text must not fail the requests it happened to share a call with
                for item in batch if len(batch) > 1 else ():
                    with contextlib.suppress(Exception):
                        await self._encode_into([item])
            except BaseException:  # cancelled (shutdown): every waiter is cancelled too
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending = []
                raise

    async def _encode_into(self, batch: list[_Item]) -> None:
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
