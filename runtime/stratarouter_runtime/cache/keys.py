"""Exact-tier keys: query normalisation, stable digests of params and keys, input checks."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from stratarouter_core.errors import ConfigError, InvalidQueryError, StrataRouterError

__all__ = ["UncacheableResponseError", "normalise_query", "params_digest"]


class UncacheableResponseError(StrataRouterError, ValueError):
    """A response (or request params) that cannot be cached: not a JSON-serialisable mapping."""


_WHITESPACE = re.compile(r"\s+")


def normalise_query(text: str) -> str:
    """The exact-tier form of a query: casefolded, whitespace collapsed, trailing punctuation cut.

    Example:
        >>> normalise_query("  What is   the Capital of France?! ")
        'what is the capital of france'
    """
    text = _WHITESPACE.sub(" ", text.casefold()).strip()
    end = len(text)
    while end and (text[end - 1] == " " or unicodedata.category(text[end - 1]).startswith("P")):
        end -= 1
    return text[:end]


def params_digest(params: Mapping[str, Any]) -> str:
    """A stable hash of request parameters (key order does not matter).

    Example:
        >>> params_digest({"temperature": 0, "max_tokens": 5}) == params_digest(
        ...     {"max_tokens": 5, "temperature": 0})
        True
    """
    try:
        text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UncacheableResponseError(f"cache params must be JSON-serialisable: {exc}") from exc
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def _check_query(query: object) -> str:
    if not isinstance(query, str):
        raise InvalidQueryError(f"query must be a str, got {type(query).__name__}")
    normalised = normalise_query(query)
    if not normalised:
        raise InvalidQueryError("query is empty")
    return normalised


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(f"namespace must be a non-empty str, got {namespace!r}")
    return namespace


def _encode_response(response: object) -> str:
    if not isinstance(response, Mapping):
        raise UncacheableResponseError(
            f"only completed response mappings are cached, got {type(response).__name__}"
        )
    try:
        return json.dumps(response, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise UncacheableResponseError(f"response is not JSON-serialisable: {exc}") from exc
