"""MkDocs hook: configuration tables generated from the config dataclasses at build time.

A page writes a marker

    <!-- config-table: stratarouter_core.config:RouterConfig -->

and gets a table of every field of that dataclass: name, type, default (from the code) and
description (the `Args:` entry of the class docstring). A field the docstring does not
describe takes its description from the marker itself, one `field: text` line each:

    <!-- config-table: stratarouter_core.config:IndexConfig
    seed: Seed of the HNSW graph.
    -->

A field described nowhere, or a marker line naming no field, stops the build, so the page
cannot drift from the code (tests/integration/test_docs_config_reference.py checks the same
without building the site).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from typing import Any

__all__ = ["ConfigReferenceError", "docstring_args", "on_page_markdown", "render_table"]

MARKER = re.compile(r"<!-- config-table: (?P<target>[\w.]+:\w+)(?P<extra>.*?)-->", re.DOTALL)
_ARG = re.compile(r"^(?P<names>\w+(?:, \w+)*)(?: \([^)]*\))?: ?(?P<text>.*)$")


class ConfigReferenceError(Exception):
    """A marker names an unknown class, a field has no description, or a description no field."""


def load_class(target: str) -> type[Any]:
    """The dataclass named `module:Class`."""
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not dataclasses.is_dataclass(cls):
        raise ConfigReferenceError(f"{target} is not a dataclass")
    return cls  # type: ignore[no-any-return]


def docstring_args(cls: type[Any]) -> dict[str, str]:
    """The `Args:` (or `Attributes:`) entries of `cls`'s docstring, continuation lines joined."""
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    in_args = False
    current: list[str] = []
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Attributes:"):
            in_args, current = True, []
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):  # the next section ("Example:", ...)
            in_args = False
            continue
        stripped = line.strip()
        match = _ARG.match(stripped) if line.startswith("    ") and not line.startswith(
            "     "
        ) else None
        if match:  # "name: text", or "a, b, c: text" describing several fields at once
            current = match["names"].split(", ")
            for name in current:
                out[name] = match["text"].strip()
        elif current and stripped:
            for name in current:
                out[name] = f"{out[name]} {stripped}".strip()
    return out


def _marker_descriptions(extra: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in extra.strip().splitlines():
        name, sep, text = line.strip().partition(":")
        if not sep or not text.strip():
            raise ConfigReferenceError(f"marker line {line.strip()!r} is not 'field: text'")
        out[name.strip()] = text.strip()
    return out


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        return f"`{field.default!r}`"
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        if dataclasses.is_dataclass(value):
            return f"`{type(value).__name__}()`"
        return f"`{value!r}`"
    return "required"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(target: str, extra: str = "") -> str:
    """The markdown table of `target`'s fields; raises `ConfigReferenceError` on any gap."""
    cls = load_class(target)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    documented = docstring_args(cls)
    given = _marker_descriptions(extra)
    stray = sorted(set(given) - names)
    if stray:
        raise ConfigReferenceError(f"{target}: the page describes unknown fields {stray}")
    twice = sorted(set(given) & set(documented))
    if twice:
        raise ConfigReferenceError(
            f"{target}: {twice} are described by the docstring already: drop them from the page"
        )
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for field in fields:
        text = documented.get(field.name) or given.get(field.name)
        if not text:
            raise ConfigReferenceError(
                f"{target}.{field.name} has no description: add it to the class docstring's "
                "Args: section or to the page's config-table marker"
            )
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        rows.append(
            f"| `{field.name}` | `{_cell(str(kind))}` | {_cell(_default(field))} | {_cell(text)} |"
        )
    return "\n".join(rows)


def render(markdown: str) -> str:
    """`markdown` with every config-table marker replaced by its table."""
    return MARKER.sub(lambda m: render_table(m["target"], m["extra"]), markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook entry point."""
    return render(markdown)
