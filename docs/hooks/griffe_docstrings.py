"""Griffe extension for the API reference: two Google-style spellings the parser misreads.

- ``Example:`` (singular) heads many of the project's docstrings; griffe reads it as an
  admonition, so its doctest output (``[['billing']]``) became Markdown links. It is read as
  ``Examples:``, whose ``>>>`` lines render as code.
- ``a, b, c: text`` documents several parameters at once; griffe expects one name per entry.
  It becomes one entry per name, the first ones pointing at the last, which has the text.

The source files are unchanged; only what the site renders is.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["GoogleDocstringFixes", "fix_docstring"]

_EXAMPLE = re.compile(r"^(?P<indent>\s*)Example:\s*$", re.MULTILINE)
_SHARED = re.compile(r"^(?P<indent>\s+)(?P<names>\w+(?:, \w+)+): (?P<text>.*)$", re.MULTILINE)


def _split(match: re.Match[str]) -> str:
    indent, names = match["indent"], match["names"].split(", ")
    group = ", ".join(f"`{n}`" for n in names)
    lines = [f"{indent}{n}: One of {group}; see `{names[-1]}`." for n in names[:-1]]
    return "\n".join([*lines, f"{indent}{names[-1]}: {match['text']}"])


def fix_docstring(text: str) -> str:
    """`text` with ``Example:`` read as ``Examples:`` and shared parameter entries split."""
    return _SHARED.sub(_split, _EXAMPLE.sub(r"\g<indent>Examples:", text))


class GoogleDocstringFixes(griffe.Extension):
    """Applies `fix_docstring` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        """Rewrite the object's docstring before mkdocstrings parses it."""
        if obj.docstring is not None:
            obj.docstring.value = fix_docstring(obj.docstring.value)
