"""Lazy imports of the runtime's optional backends, with an error naming the extra to install."""

from __future__ import annotations

from types import ModuleType

from stratarouter_core._deps import require as _core_require

__all__ = ["require"]


def require(module: str, *, extra: str | None = None, install: str | None = None) -> ModuleType:
    """Import `module`, or raise `MissingDependencyError` naming ``stratarouter-runtime[extra]``.

    The core's helper names the core distribution's extras; the runtime's backends live in
    this distribution's extras, so the message must name this one.
    """
    if install is None and extra is not None:
        install = f"pip install 'stratarouter-runtime[{extra}]'"
    return _core_require(module, install=install)
