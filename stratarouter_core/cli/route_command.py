"""`stratarouter route --routes FILE "query" ...`: print the decision for each query."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the `route` subcommand."""
    parser = commands.add_parser("route", help="route queries with the routes of a YAML/JSON file")
    parser.add_argument("--routes", required=True, help="routes file (YAML or JSON)")
    parser.add_argument("queries", nargs="+", help="queries to route")
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
    for query in args.queries:
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
    return 0
