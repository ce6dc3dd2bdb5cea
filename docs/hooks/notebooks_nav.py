"""MkDocs hook: the "Notebooks" section of the nav lists the notebooks that exist.

`docs/notebooks` is a link to the repository's `notebooks/` folder; mkdocs-jupyter renders
each `*.ipynb` without executing it (CI executes them separately). Listing them here instead
of by hand in mkdocs.yml keeps the strict build from failing while a notebook is renamed or
added; each is titled by its first markdown heading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["notebook_title", "on_config"]

SECTION = "Notebooks"


def notebook_title(path: Path) -> str:
    """The text of the notebook's first markdown heading, else its file name."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return path.stem
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", [])).splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return path.stem


def on_config(config: Any, **_: Any) -> Any:
    """Fill (or drop, when there is no notebook) the nav's Notebooks section."""
    folder = Path(config["docs_dir"]) / "notebooks"
    notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    entries = [{notebook_title(p): f"notebooks/{p.name}"} for p in notebooks]
    nav = []
    for item in config["nav"] or []:
        if isinstance(item, dict) and SECTION in item:
            if entries:
                nav.append({SECTION: entries})
            continue
        nav.append(item)
    config["nav"] = nav
    return config
