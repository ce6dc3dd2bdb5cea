"""The runtime is its own distribution: imports point toward core only, never back."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import stratarouter_core

import stratarouter_runtime

CORE = Path(stratarouter_core.__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_the_runtime() -> None:
    offenders = {
        str(path.relative_to(CORE)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == "stratarouter_runtime"
        )
        for path in CORE.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_core_package_no_longer_contains_the_runtime() -> None:
    assert not (CORE / "runtime").exists()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("stratarouter_core.runtime")


def test_public_api() -> None:
    from stratarouter_runtime import CoreRuntimeBridge, RuntimeConfig

    assert CoreRuntimeBridge.__module__.startswith("stratarouter_runtime.")
    assert RuntimeConfig.__module__ == "stratarouter_runtime.config"
    for name in stratarouter_runtime.__all__:
        assert getattr(stratarouter_runtime, name) is not None, name


def test_runtime_errors_belong_to_the_core_error_tree() -> None:
    from stratarouter_runtime.errors import ProviderError

    assert issubclass(ProviderError, stratarouter_core.StrataRouterError)


def test_ships_py_typed() -> None:
    assert (Path(stratarouter_runtime.__file__).parent / "py.typed").exists()
