"""`stratarouter`: route queries from a routes file, fit and use a model router
(`model-router`); `stratarouter bench` runs the benchmarks.

The benchmarks are a separate, dev-only distribution (`stratarouter-bench`, in `benchmarks/`
of the repository); this module imports it only when ``bench`` is the command, so routing
never loads it and a core install without it still works. `stratarouter serve` lives in the
runtime distribution (`stratarouter_runtime.server.cli`, extra ``[server]``), imported the
same way only for ``serve``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependencyError, StrataRouterError

__all__ = ["main"]

BENCH_MISSING = (
    "`stratarouter bench` needs the benchmark package stratarouter-bench, which is not "
    "installed; from a clone of the repository: pip install -e benchmarks (or make install-dev)"
)


SERVE_MISSING = (
    "`stratarouter serve` needs the server extra of the runtime, which is not installed: "
    "pip install 'stratarouter-runtime[server]'"
)


def _register_serve(serve: Any) -> None:
    # The runtime is another distribution that depends on the core: import it only here,
    # by name (the core's type check does not see the runtime).
    try:
        cli = importlib.import_module("stratarouter_runtime.server.cli")
    except ImportError as exc:  # the runtime, or one of the server extra's packages, is missing
        raise MissingDependencyError(f"{SERVE_MISSING} ({exc})") from exc
    cli.register(serve)


def _register_benches(benches: Any) -> None:
    try:
        import stratarouter_bench
    except ModuleNotFoundError as exc:
        if exc.name == "stratarouter_bench":
            raise MissingDependencyError(BENCH_MISSING) from exc
        # the package is there but one of its dependencies is not
        raise MissingDependencyError(
            f"stratarouter-bench is installed but {exc.name!r} is missing: "
            "pip install -e benchmarks"
        ) from exc
    stratarouter_bench.register(benches)


def _build_parser(with_benches: bool, with_serve: bool = False) -> argparse.ArgumentParser:
    from . import bulk_command, model_router_command, route_command

    parser = argparse.ArgumentParser(prog="stratarouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    route_command.register(commands)
    bulk_command.register(commands)
    model_router_command.register(commands)
    bench = commands.add_parser(
        "bench", help="run the benchmarks (needs stratarouter-bench: pip install -e benchmarks)"
    )
    if with_benches:
        _register_benches(bench.add_subparsers(dest="bench", required=True))
    serve = commands.add_parser(
        "serve",
        help="run the REST / OpenAI-compatible server (needs stratarouter-runtime[server])",
    )
    if with_serve:
        _register_serve(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = _build_parser(with_benches=argv[:1] == ["bench"], with_serve=argv[:1] == ["serve"])
        args = parser.parse_args(argv)
        status: int = args.run(args)
    except StrataRouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
