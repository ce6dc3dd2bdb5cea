"""MkDocs hook: pages another part of the project writes, listed in the nav before they exist.

`deployment.md` (running several servers) is written with the scale-out work, not with the
rest of the site. While it is absent, its nav entry is dropped and links to it become plain
text, with an INFO line saying so, so the strict build does not fail on a page that is not
there yet; as soon as the file exists it is in the nav and the links work. Only the pages
named in `OPTIONAL` get this treatment: any other missing page still fails the build.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

__all__ = ["OPTIONAL", "on_config", "on_page_markdown"]

OPTIONAL = ("deployment.md",)
log = logging.getLogger("mkdocs.hooks.optional_pages")
_missing: set[str] = set()


def _prune(nav: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in nav:
        if isinstance(item, dict):
            (title, value), = item.items()
            if isinstance(value, list):
                out.append({title: _prune(value)})
            elif value not in _missing:
                out.append(item)
        elif item not in _missing:
            out.append(item)
    return out


def on_config(config: Any, **_: Any) -> Any:
    """Drop the nav entries of optional pages that do not exist."""
    docs = Path(config["docs_dir"])
    _missing.clear()
    _missing.update(page for page in OPTIONAL if not (docs / page).is_file())
    for page in sorted(_missing):
        log.info("optional page %s is not written yet: left out of the nav, links unlinked", page)
    if _missing and config["nav"]:
        config["nav"] = _prune(config["nav"])
    return config


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Links to a missing optional page keep their text and lose their target."""
    for page in _missing:
        link = rf"\[([^\]]+)\]\((?:\.\./)?{re.escape(page)}(?:#[^)]*)?\)"
        markdown = re.sub(link, r"\1", markdown)
    return markdown
