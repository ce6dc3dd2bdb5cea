"""StrataRouter's benchmarks: a dev-only distribution (`stratarouter-bench`), never in a wheel.

Each bench is a module with ``register(benches)`` (adds its ``stratarouter bench <name>``
subcommand to an argparse subparsers object) and ``run(args)``. `register` below adds every
such module of this package, so a new bench needs no list to be edited. The core CLI imports
this package only when ``stratarouter bench`` is run.

Nothing in `stratarouter_core` or `stratarouter_runtime` imports it: library defaults never
come from here. Rival routers (semantic-router) run on the same precomputed embeddings as ours.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

__all__ = ["bench_modules", "register"]


def bench_modules() -> list[str]:
    """Names of this package's public modules that define a bench (``register`` and ``run``)."""
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue  # helpers of a bench, not benches
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "register", None)) and callable(getattr(module, "run", None)):
            names.append(info.name)
    return names


def register(benches: Any) -> None:
    """Add every bench's subcommand to `benches` (``parser.add_subparsers()``)."""
    for name in bench_modules():
        importlib.import_module(f"{__name__}.{name}").register(benches)
