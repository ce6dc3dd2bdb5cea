"""The configuration reference covers every config dataclass field, from the code itself.

`docs/hooks/config_reference.py` renders the tables at build time; this runs it without
MkDocs, so `make test` fails as soon as a field is added without a description, a described
field disappears, or a config class is missing from the page.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from stratarouter_runtime import RuntimeConfig
from stratarouter_runtime.server import ServerConfig

from stratarouter_core import FusionWeights, ModelRouterConfig, RouterConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "configuration.md"
# RouterConfig.weights defaults to None, so FusionWeights is named, not found by the walk
ROOTS = (RouterConfig, FusionWeights, RuntimeConfig, ServerConfig, ModelRouterConfig)


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "config_reference", ROOT / "docs" / "hooks" / "config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config_classes(root: type) -> set[type]:
    """`root` and every dataclass its fields hold, recursively (RuntimeConfig's groups...)."""
    found = {root}
    for field in dataclasses.fields(root):
        if field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        elif field.default is not dataclasses.MISSING:
            value = field.default
        else:
            continue
        if dataclasses.is_dataclass(value) and type(value) not in found:
            found |= _config_classes(type(value))
    return found


def test_every_config_class_has_a_table() -> None:
    markers = set(re.findall(r"<!-- config-table: ([\w.]+:\w+)", PAGE.read_text()))
    named = {m.split(":")[1] for m in markers}
    wanted = set()
    for root in ROOTS:
        wanted |= {cls.__name__ for cls in _config_classes(root)}
    assert wanted <= named, f"no table for {sorted(wanted - named)}"
    assert {"FusionWeights", "IndexConfig", "RetryConfig", "StateConfig"} <= wanted


def test_tables_list_every_field_with_its_code_default() -> None:
    hook = _hook()
    rendered = hook.render(PAGE.read_text())
    assert "config-table" not in rendered
    for root in ROOTS:
        for cls in _config_classes(root):
            for field in dataclasses.fields(cls):
                assert f"| `{field.name}` |" in rendered, f"{cls.__name__}.{field.name}"
    assert "| `expected_oos_rate` | `float` | `0.5` |" in rendered
    assert "| `similarity_threshold` | `float` | `0.9` |" in rendered


def test_a_field_without_description_or_a_stale_one_fails_the_build() -> None:
    hook = _hook()

    @dataclasses.dataclass
    class Settings:
        """Demo.

        Args:
            documented: Described here.
        """

        documented: int = 1
        undocumented: int = 2

    import sys

    module = ModuleType("docs_demo_settings")
    module.Settings = Settings  # type: ignore[attr-defined]
    sys.modules["docs_demo_settings"] = module
    try:
        with pytest.raises(hook.ConfigReferenceError, match="undocumented has no description"):
            hook.render_table("docs_demo_settings:Settings")
        table = hook.render_table("docs_demo_settings:Settings", "undocumented: Given here.")
        assert "| `undocumented` | `int` | `2` | Given here. |" in table
        with pytest.raises(hook.ConfigReferenceError, match="unknown fields"):
            hook.render_table("docs_demo_settings:Settings", "undocumented: x\ngone: y")
        with pytest.raises(hook.ConfigReferenceError, match="already"):
            hook.render_table("docs_demo_settings:Settings", "undocumented: x\ndocumented: y")
    finally:
        del sys.modules["docs_demo_settings"]


def test_docstring_args_joins_continuations_and_shared_entries() -> None:
    hook = _hook()
    args = hook.docstring_args(ModelRouterConfig)
    assert args["min_quality"] == args["max_cost"]
    assert "cross-validated Brier" in args["calibration"]
    assert "min_quality" not in args["calibration"]
