"""Keyword and regex rules: evidence that a route applies, independent of embeddings."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ..text import tokenize
from ..types import Route

__all__ = ["RuleMatcher"]


class RuleMatcher:
    """Finds which routes' keywords (whole words or phrases) or patterns match a query.

    Keywords are matched on word tokens, case-insensitively ("refund" does not match
    "refunded"; "credit card" matches the two words in sequence). Patterns are regular
    expressions searched case-insensitively. One combined regex screens all patterns, so
    a query that matches none costs a single scan.

    Example:
        >>> routes = [Route(name="billing", examples=["x"], keywords=["invoice"]),
        ...           Route(name="tech", examples=["y"], patterns=[r"error \\d+"])]
        >>> RuleMatcher(routes).match("Error 500 on my invoice").tolist()
        [1.0, 1.0]
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        """Compile the keywords and patterns of `routes` (in router order)."""
        self.n_routes = len(routes)
        self._phrases: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        compiled: list[tuple[re.Pattern[str], int]] = []
        for route_id, route in enumerate(routes):
            for keyword in route.keywords:
                tokens = tuple(tokenize(keyword))
                if tokens:
                    self._phrases.setdefault(tokens[0], []).append((tokens, route_id))
            for pattern in route.patterns:
                compiled.append((re.compile(pattern, re.IGNORECASE), route_id))
        self._patterns = compiled
        self._screen = (
            re.compile("|".join(f"(?:{p.pattern})" for p, _ in compiled), re.IGNORECASE)
            if compiled
            else None
        )

    @property
    def is_empty(self) -> bool:
        """True when no route has keywords or patterns (rule scoring can be skipped)."""
        return not self._phrases and self._screen is None

    def matched_routes(self, text: str, tokens: Sequence[str]) -> set[int]:
        """Indices of the routes with at least one matching keyword or pattern."""
        matched: set[int] = set()
        if self._phrases:
            for start, token in enumerate(tokens):
                for phrase, route_id in self._phrases.get(token, ()):
                    if tuple(tokens[start : start + len(phrase)]) == phrase:
                        matched.add(route_id)
        if self._screen is not None and self._screen.search(text):
            matched.update(route_id for p, route_id in self._patterns if p.search(text))
        return matched

    def match(self, text: str) -> NDArray[np.float64]:
        """1.0 for every route with a matching rule, 0.0 elsewhere."""
        scores = np.zeros(self.n_routes, dtype=np.float64)
        for route_id in self.matched_routes(text, tokenize(text)):
            scores[route_id] = 1.0
        return scores
