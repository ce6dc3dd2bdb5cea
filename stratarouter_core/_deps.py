"""Lazy imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, *, extra: str | None = None, install: str | None = None) -> ModuleType:
    """Import `module`, or raise `MissingDependencyError` saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if install is None:
            install = f"pip install 'stratarouter[{extra}]'" if extra else f"pip install {module}"
        raise MissingDependencyError(f"{module!r} is not installed: {install}") from exc
