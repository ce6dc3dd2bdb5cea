"""The encoder contract: texts in, L2-comparable float32 vectors out."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ..errors import EncoderError

__all__ = ["BaseEncoder", "CachedEncoder", "check_vectors"]


def check_vectors(
    vectors: object, n_texts: int, dimension: int, source: str
) -> NDArray[np.float32]:
    """`vectors` as a C-contiguous float32 (n_texts, dimension) array, else an EncoderError."""
    try:
        array = np.ascontiguousarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EncoderError(f"{source} returned something that is not a numeric array") from exc
    if array.shape != (n_texts, dimension):
        raise EncoderError(
            f"{source} returned shape {array.shape}, expected ({n_texts}, {dimension})"
        )
    if not np.isfinite(array).all():
        raise EncoderError(f"{source} returned NaN or infinite values")
    return array


class BaseEncoder(ABC):
    """Turns texts into vectors. Subclass it and implement `encode` and `dimension`.

    Example:
        >>> import numpy as np
        >>> class LengthEncoder(BaseEncoder):
        ...     dimension = 2
        ...     def encode(self, texts):
        ...         return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
        >>> LengthEncoder().encode(["hi", "hello"]).shape
        (2, 2)
    """

    dimension: int

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode `texts` into a float32 array of shape (len(texts), dimension)."""

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode without blocking the event loop (runs `encode` in a worker thread)."""
        return await asyncio.to_thread(self.encode, texts)

    @property
    def fingerprint(self) -> str:
        """Identifies the vector space; a saved router refuses an encoder with another one.

        The default hashes the class name and dimension. Encoders backed by a model override it
        to include the model's identity, so that two models of equal dimension are told apart.
        """
        return f"{type(self).__module__}.{type(self).__qualname__}:{self.dimension}"


class CachedEncoder(BaseEncoder):
    """Wraps an encoder with a thread-safe LRU cache keyed by the exact text.

    Repeated route examples and repeated queries are encoded once.

    Example:
        >>> from stratarouter_core.testing import HashingEncoder
        >>> encoder = CachedEncoder(HashingEncoder(dimension=8), max_entries=100)
        >>> _ = encoder.encode(["a", "b", "a"])
        >>> encoder.hits, encoder.misses
        (1, 2)
    """

    def __init__(self, inner: BaseEncoder, *, max_entries: int = 10_000) -> None:
        """Cache up to `max_entries` vectors of `inner`, evicting the least recently used."""
        if max_entries <= 0:
            raise EncoderError(f"max_entries must be positive, got {max_entries}")
        self.inner = inner
        self.dimension = inner.dimension
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """The wrapped encoder's fingerprint: caching does not change the vector space."""
        return self.inner.fingerprint

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode `texts`, calling the wrapped encoder only for texts not seen recently."""
        out, missing = self._lookup(texts)
        if missing:
            self._store(out, missing, self.inner.encode(list(missing)))
        return out

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Async `encode`: awaits the wrapped encoder's own `aencode` for texts not cached.

        An encoder with a real async implementation (an HTTP API client) thus keeps it; only
        the cache look-up, a few dictionary reads, runs on the event loop.
        """
        out, missing = self._lookup(texts)
        if missing:
            self._store(out, missing, await self.inner.aencode(list(missing)))
        return out

    def _lookup(
        self, texts: Sequence[str]
    ) -> tuple[NDArray[np.float32], dict[str, list[int]]]:
        """The output array with cached rows filled in, and the rows of each uncached text."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                vector = self._entries.get(text)
                if vector is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._entries.move_to_end(text)
                    out[i] = vector
            self.misses += len(missing)  # each distinct new text is encoded once
            self.hits += len(texts) - len(missing)
        return out, missing

    def _store(
        self, out: NDArray[np.float32], missing: dict[str, list[int]], encoded: object
    ) -> None:
        """Check the wrapped encoder's vectors, fill their rows of `out` and cache them."""
        new_texts = list(missing)
        vectors = check_vectors(encoded, len(new_texts), self.dimension, type(self.inner).__name__)
        with self._lock:
            for text, vector in zip(new_texts, vectors):
                out[missing[text]] = vector
                self._entries[text] = vector
                self._entries.move_to_end(text)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
