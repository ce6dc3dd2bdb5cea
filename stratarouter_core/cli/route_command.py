"""`stratarouter route --routes FILE "query" ...`: print the decision for each query.

With no query, or the single query `-`, queries are read from standard input, one per line
(blank lines are skipped), and each decision is printed as soon as its line is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["queries_from", "register"]


def register(commands: Any) -> None:
    """Add the `route` subcommand."""
    parser = commands.add_parser("route", help="route queries with the routes of a YAML/JSON file")
    parser.add_argument("--routes", required=True, help="routes file (YAML or JSON)")
    parser.add_argument(
        "queries", nargs="*", help="queries to route; none, or '-', reads them from stdin"
    )
    parser.add_argument("--explain", action="store_true", help="show every candidate's scores")
    parser.add_argument("--json", action="store_true", help="print one JSON object per query")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build a router from the file (default local encoder) and route the queries."""
    from ..router import Router
    from ..routes_file import load_routes_file

    routes, config = load_routes_file(args.routes)
    router = Router(config=config, routes=routes)
    router.build_index()
    for query in queries_from(args.queries):
        if args.explain:
            print(router.explain(query), end="\n\n")
            continue
        result = router.route(query)
        if args.json:
            print(
                json.dumps(
                    {
                        "query": query,
                        "route": result.route_id,
                        "confidence": round(result.confidence, 4),
                        "is_fallback": result.is_fallback,
                        "candidates": [
                            {"route": c.route_id, "confidence": round(c.confidence, 4)}
                            for c in result.candidates
                        ],
                    }
                )
            )
        else:
            print(f"{result.route_id or '(none)'}\t{result.confidence:.3f}\t{query}")
        sys.stdout.flush()  # a pipe sees each decision when its line was routed
    return 0


def queries_from(given: Sequence[str]) -> Iterator[str]:
    """The queries of the command line, or stdin's non-blank lines for none or `-`."""
    if list(given) not in ([], ["-"]):
        yield from given
        return
    for line in sys.stdin:
        query = line.rstrip("\r\n")
        if query.strip():
            yield query
