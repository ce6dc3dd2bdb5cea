"""Tokenisation shared by the sparse scorer and the keyword rules."""

from __future__ import annotations

import re

__all__ = ["tokenize"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (Unicode letters, digits and underscore).

    Example:
        >>> tokenize("Refund invoice #42, please!")
        ['refund', 'invoice', '42', 'please']
    """
    return _TOKEN.findall(text.lower())

