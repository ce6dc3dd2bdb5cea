"""Test helpers shipped with the library: a dependency-free deterministic encoder.

`HashingEncoder` lets tests, examples and adapter packages build real routers with no model:
it hashes word unigrams/bigrams and character trigrams into a fixed number of buckets.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .encoders.base import BaseEncoder

__all__ = ["HashingEncoder"]

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEncoder(BaseEncoder):
    """Deterministic bag-of-features encoder: similar wording gives similar vectors.

    Example:
        >>> encoder = HashingEncoder(dimension=64)
        >>> vectors = encoder.encode(["refund my invoice", "refund the invoice", "weather today"])
        >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
        True
    """

    def __init__(self, dimension: int = 256) -> None:
        """Hash into `dimension` buckets."""
        self.dimension = dimension

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        features = list(words)
        features += [f"{a} {b}" for a, b in zip(words, words[1:])]
        for word in words:
            padded = f"#{word}#"
            features += [padded[i : i + 3] for i in range(len(padded) - 2)]
        return features

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode `texts` into L2-normalised hashed feature vectors."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = zlib.crc32(feature.encode("utf-8"))
                sign = 1.0 if digest & 1 else -1.0
                out[row, (digest >> 1) % self.dimension] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms
