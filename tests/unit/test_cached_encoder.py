"""`CachedEncoder` keeps the wrapped encoder's async implementation instead of hiding it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from stratarouter_core import BaseEncoder, CachedEncoder, EncoderError
from stratarouter_core.testing import HashingEncoder


class AsyncOnly(BaseEncoder):
    """Encodes only asynchronously, on the event loop's thread, and records each call."""

    dimension = 16

    def __init__(self) -> None:
        self.inner = HashingEncoder(self.dimension)
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        raise AssertionError("the sync path must not be used by aencode")

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        self.threads.add(threading.get_ident())
        await asyncio.sleep(0)
        return self.inner.encode(texts)


async def test_aencode_awaits_the_wrapped_aencode_and_caches() -> None:
    inner = AsyncOnly()
    cached = CachedEncoder(inner, max_entries=10)
    first = await cached.aencode(["a", "b", "a"])
    assert inner.calls == [["a", "b"]]  # each distinct new text once
    assert inner.threads == {threading.get_ident()}  # awaited on the loop, not in a thread
    np.testing.assert_allclose(first, inner.inner.encode(["a", "b", "a"]))
    second = await cached.aencode(["b", "c"])
    assert inner.calls == [["a", "b"], ["c"]]
    np.testing.assert_allclose(second, inner.inner.encode(["b", "c"]))
    assert (cached.hits, cached.misses) == (2, 3)


async def test_sync_and_async_share_one_cache() -> None:
    inner = AsyncOnly()
    cached = CachedEncoder(inner)
    await cached.aencode(["x"])
    inner.encode = lambda texts: inner.inner.encode(texts)  # type: ignore[method-assign]
    np.testing.assert_allclose(cached.encode(["x"]), inner.inner.encode(["x"]))
    assert inner.calls == [["x"]] and cached.hits == 1


async def test_aencode_checks_the_wrapped_vectors() -> None:
    class Broken(AsyncOnly):
        async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
            return np.zeros((len(texts), 3), dtype=np.float32)

    with pytest.raises(EncoderError, match="expected"):
        await CachedEncoder(Broken()).aencode(["a"])
