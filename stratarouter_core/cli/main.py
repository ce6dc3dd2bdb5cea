"""`stratarouter`: route queries from a routes file, and run the benchmarks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import StrataRouterError

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    from . import bench_accuracy, bench_cache, bench_runtime, bench_speed, route_command

    parser = argparse.ArgumentParser(prog="stratarouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    route_command.register(commands)
    bench = commands.add_parser("bench", help="measure accuracy, speed, the cache or the runtime")
    benches = bench.add_subparsers(dest="bench", required=True)
    bench_accuracy.register(benches)
    bench_speed.register(benches)
    bench_cache.register(benches)
    bench_runtime.register(benches)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except StrataRouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
