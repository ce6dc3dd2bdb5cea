"""Encoders turn texts into vectors.

`LocalEncoder`, `OpenAIEncoder` and `SentenceTransformerEncoder` import their optional
dependencies only when constructed, so importing this package stays cheap and never fails
for want of an extra; the missing extra is named by the `MissingDependencyError` raised then.
"""

from __future__ import annotations

from .base import BaseEncoder, CachedEncoder
from .local import LocalEncoder
from .openai import OpenAIEncoder
from .sentence_transformers import SentenceTransformerEncoder

__all__ = [
    "BaseEncoder",
    "CachedEncoder",
    "LocalEncoder",
    "OpenAIEncoder",
    "SentenceTransformerEncoder",
]
