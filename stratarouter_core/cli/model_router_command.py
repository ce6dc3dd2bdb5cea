"""`stratarouter model-router fit | route`: learn a ModelRouter from a graded file, then use it.

``fit --graded FILE --out DIR`` fits on the file's ``train`` split (``--split`` for another;
the format is `read_graded_file`'s) with the default offline encoder, prints what
cross-validation found, and saves the router (what `stratarouter serve --model-router-dir DIR`
loads). ``route --router-dir DIR "query"`` prints, per query, the model chosen, its p_success,
its expected cost, and the rule that decided (``,fallback`` when it could not be met); with
no query, or ``-``, queries are read from standard input, one per line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the `model-router` subcommand and its `fit`, `add` and `route` commands."""
    parser = commands.add_parser(
        "model-router", help="fit a ModelRouter on graded answers, or pick models with one"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    fit = actions.add_parser("fit", help="fit on a graded JSON file and save the router")
    fit.add_argument("--graded", required=True, help="graded file: models, prices, scores")
    fit.add_argument("--split", default="train", help="split of the file to fit on")
    fit.add_argument("--out", required=True, help="directory to save the fitted router to")
    fit.set_defaults(run=run_fit)
    add = actions.add_parser(
        "add", help="add more graded answers to a saved router, without a refit, and save it"
    )
    add.add_argument("--router-dir", required=True, help="directory written by fit; updated")
    add.add_argument("--graded", required=True, help="graded file in the format fit reads")
    add.add_argument("--split", default="train", help="split of the file to add")
    add.set_defaults(run=run_add)
    route = actions.add_parser("route", help="print the model chosen for each query")
    route.add_argument("--router-dir", required=True, help="directory written by fit")
    route.add_argument(
        "queries", nargs="*", help="queries to route; none, or '-', reads them from stdin"
    )
    rule = route.add_mutually_exclusive_group()
    rule.add_argument("--min-quality", type=float, help="cheapest model with p_success >= this")
    rule.add_argument("--cost-weight", type=float, help="best p_success - weight * relative cost")
    route.add_argument("--max-cost", type=float, help="USD budget per query")
    route.add_argument(
        "--min-graded-similarity",
        type=float,
        help="queries less similar than this to every graded one go to the best model",
    )
    route.add_argument("--json", action="store_true", help="print one JSON object per query")
    route.set_defaults(run=run_route)


def run_fit(args: argparse.Namespace) -> int:
    """Fit on the graded file's split, print the report, save."""
    from pathlib import Path

    from ..model_routing.graded_file import read_graded_file
    from ..model_routing.persistence import check_save_target
    from ..model_routing.router import ModelRouter

    check_save_target(Path(args.out))  # a directory it must not replace: say so before fitting
    graded = read_graded_file(args.graded)
    queries, scores = graded.split(args.split)
    router = ModelRouter(graded.models)
    # encoding is most of the wait (about 80 s for 5,600 long prompts on two cores)
    print(f"encoding and fitting {len(queries)} graded queries...", file=sys.stderr, flush=True)
    report = router.fit(queries, scores)
    router.save(args.out)
    print(f"fitted on {report.n_queries} graded queries in {report.duration_s:.1f} s")
    print("model\tgraded\tcv Brier\tcv ECE\tUSD/Mtok in/out")
    for spec in router.models:
        name = spec.name
        print(
            f"{name}\t{report.n_graded[name]}\t{report.cv_brier[name]:.3f}\t"
            f"{report.cv_ece[name]:.3f}\t{spec.input_usd_per_mtok:g}/{spec.output_usd_per_mtok:g}"
        )
    scale = report.nearest_graded_similarity
    if scale:
        levels = ", ".join(f"{level} {cosine:.2f}" for level, cosine in scale.items())
        print(f"nearest graded cosine of a training query: {levels}")
    print(f"saved to {args.out}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    """Load the router, add the graded file's split with `add_graded`, save it in place."""
    from ..model_routing.graded_file import read_graded_file
    from ..model_routing.router import ModelRouter

    router = ModelRouter.load(args.router_dir)
    queries, scores = read_graded_file(args.graded).split(args.split)
    added = router.add_graded(queries, scores)
    router.save(args.router_dir)
    print(f"added {added} graded queries without a refit; saved to {args.router_dir}")
    return 0


def run_route(args: argparse.Namespace) -> int:
    """Load the router and print each query's choice."""
    from ..model_routing.router import ModelRouter
    from .route_command import queries_from

    router = ModelRouter.load(args.router_dir)
    for query in queries_from(args.queries):
        choice = router.route(
            query,
            min_quality=args.min_quality,
            cost_weight=args.cost_weight,
            max_cost=args.max_cost,
            min_graded_similarity=args.min_graded_similarity,
        )
        p = choice.p_success[choice.model]
        if args.json:
            record = {
                "query": query,
                "model": choice.model,
                "p_success": {name: round(value, 4) for name, value in choice.p_success.items()},
                "expected_cost_usd": choice.expected_cost_usd,
                "rule": choice.rule,
                "fallback": choice.fallback,
                "nearest_graded_similarity": choice.nearest_graded_similarity,
            }
            print(json.dumps(record))
        else:
            decided = f"{choice.rule},fallback" if choice.fallback else choice.rule
            print(f"{choice.model}\t{p:.3f}\t${choice.expected_cost_usd:.6f}\t{decided}\t{query}")
        sys.stdout.flush()  # a pipe sees each choice when its line was routed
    return 0
