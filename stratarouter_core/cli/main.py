"""`stratarouter`: route queries from a routes file; `stratarouter bench` runs the benchmarks.

The benchmarks are a separate, dev-only distribution (`stratarouter-bench`, in `benchmarks/`
of the repository); this module imports it only when ``bench`` is the command, so routing
never loads it and a core install without it still works.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependencyError, StrataRouterError

__all__ = ["main"]

BENCH_MISSING = (
    "`stratarouter bench` needs the benchmark package stratarouter-bench, which is not "
    "installed; from a clone of the repository: pip install -e benchmarks (or make install-dev)"
)


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


def _build_parser(with_benches: bool) -> argparse.ArgumentParser:
    from . import route_command

    parser = argparse.ArgumentParser(prog="stratarouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    route_command.register(commands)
    bench = commands.add_parser(
        "bench", help="run the benchmarks (needs stratarouter-bench: pip install -e benchmarks)"
    )
    if with_benches:
        _register_benches(bench.add_subparsers(dest="bench", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _build_parser(with_benches=argv[:1] == ["bench"]).parse_args(argv)
        status: int = args.run(args)
    except StrataRouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
