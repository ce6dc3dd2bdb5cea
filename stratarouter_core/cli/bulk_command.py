"""`stratarouter route-bulk --router-dir DIR --input Q.parquet --output D.parquet`: route a file.

The engine is this process (``--engine local``, streamed record batches) or Ray Data
(``--engine ray``, one saved router per actor); see `stratarouter_core.bulk`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the `route-bulk` subcommand."""
    parser = commands.add_parser(
        "route-bulk",
        help="route a Parquet file of queries with a saved router (needs stratarouter[bulk])",
    )
    parser.add_argument("--router-dir", required=True, help="directory written by Router.save")
    parser.add_argument("--input", required=True, help="Parquet file of queries")
    parser.add_argument("--output", required=True, help="Parquet file of decisions to write")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--address", help="Ray cluster to join (default: start a local one)")
    parser.add_argument("--workers", type=int, help="Ray actors (default: one per cluster CPU)")
    parser.add_argument("--text-column", default="text", help="column of query texts")
    parser.add_argument(
        "--embedding-column",
        help="column of query vectors (default: 'embedding' when present, else encode the texts)",
    )
    parser.add_argument(
        "--keep", action="append", default=[], metavar="COLUMN", help="input column to copy"
    )
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per route_batch")
    parser.add_argument("--candidates", type=int, default=0, help="top candidates per row")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the job and print its summary line."""
    from ..bulk import BulkConfig, route_bulk

    config = BulkConfig(
        engine=args.engine,
        text_column=args.text_column,
        embedding_column=args.embedding_column,
        keep_columns=tuple(args.keep),
        batch_size=args.batch_size,
        candidates=args.candidates,
        address=args.address,
        workers=args.workers,
        progress=not args.quiet,
    )
    report = route_bulk(args.router_dir, args.input, args.output, config)
    print(
        f"{report.rows} rows -> {report.output} in {report.seconds:.1f} s "
        f"({report.rows_per_second:,.0f} rows/s, {report.engine}, {report.workers} worker(s)"
        f"{', texts encoded' if report.encoded else ''})",
        file=sys.stderr,
    )
    return 0
