"""The site's nav hooks: optional pages left out until written, notebooks listed as they exist."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(docs: Path) -> dict[str, Any]:
    return {
        "docs_dir": str(docs),
        "nav": [
            {"Home": "index.md"},
            {"Runtime and serving": [{"Serving": "serving.md"}, {"Deployment": "deployment.md"}]},
            {"Notebooks": []},
        ],
    }


def test_a_missing_optional_page_leaves_the_nav_and_its_links(tmp_path: Path) -> None:
    hook = _hook("optional_pages")
    config = hook.on_config(_config(tmp_path))
    assert config["nav"][1] == {"Runtime and serving": [{"Serving": "serving.md"}]}
    text = "See [Deployment](deployment.md) and [it](../deployment.md#x), [Serving](serving.md)."
    assert hook.on_page_markdown(text) == "See Deployment and it, [Serving](serving.md)."


def test_an_existing_optional_page_stays(tmp_path: Path) -> None:
    hook = _hook("optional_pages")
    (tmp_path / "deployment.md").write_text("# Deployment\n")
    config = hook.on_config(_config(tmp_path))
    assert {"Deployment": "deployment.md"} in config["nav"][1]["Runtime and serving"]
    assert hook.on_page_markdown("[D](deployment.md)") == "[D](deployment.md)"


def test_notebooks_are_listed_by_their_first_heading(tmp_path: Path) -> None:
    hook = _hook("notebooks_nav")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    cell = {"cell_type": "markdown", "source": ["# Quickstart: routes\n", "text"]}
    (folder / "01_quickstart.ipynb").write_text(json.dumps({"cells": [cell]}))
    (folder / "02_x.ipynb").write_text(json.dumps({"cells": []}))
    nav = hook.on_config(_config(tmp_path))["nav"]
    assert nav[2] == {"Notebooks": [{"Quickstart: routes": "notebooks/01_quickstart.ipynb"},
                                    {"02_x": "notebooks/02_x.ipynb"}]}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert all("Notebooks" not in item for item in hook.on_config(_config(empty))["nav"])


def test_the_real_notebooks_are_in_the_nav() -> None:
    hook = _hook("notebooks_nav")
    nav = hook.on_config(_config(ROOT / "docs"))["nav"]
    listed = [next(iter(e.values())) for e in nav[2]["Notebooks"]]
    assert listed == sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert listed
