"""`stratarouter bench accuracy`: our router against semantic-router on an intent dataset.

Protocol: one route per label from the train split (all examples, or the first K per label);
`fit` on the val split (out-of-scope items included); evaluation on test + oos_test. Every
method gets the same embeddings when `--embeddings` is given.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .semantic_router_baseline import add_compare_argument

if TYPE_CHECKING:
    from stratarouter_core.evaluation import EvaluationReport

__all__ = ["register", "run"]


def register(benches: Any) -> None:
    """Add the `accuracy` benchmark."""
    parser = benches.add_parser("accuracy", help="accuracy, out-of-scope handling and calibration")
    parser.add_argument("--dataset", required=True, help="JSON dataset in the CLINC150 layout")
    parser.add_argument("--embeddings", help=".npz with one embedding array per split")
    parser.add_argument(
        "--examples-per-route",
        type=int,
        default=None,
        metavar="K",
        help="use the first K train examples of each label (default: all)",
    )
    add_compare_argument(parser)
    parser.add_argument(
        "--oos-rate",
        type=float,
        default=None,
        help="expected out-of-scope share in production, for the accuracy "
        "objective (default: the val split's own share)",
    )
    parser.add_argument(
        "--in-scope-loss",
        type=float,
        default=0.015,
        help="in-scope loss budget of the in_scope_loss objective (default 0.015)",
    )
    parser.add_argument("--out", help="write all figures to this JSON file")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="write the reliability diagram on test (no fit vs fit) to this image (.png/.svg)",
    )
    parser.add_argument(
        "--plot-confusion",
        metavar="PATH",
        help="write the confusion summary of the fitted router on test to this image",
    )
    parser.set_defaults(run=run)


@dataclass
class Row:
    """One method's figures."""

    method: str
    top1: float
    in_scope_accuracy: float | None = None
    oos_recall: float | None = None
    oos_precision: float | None = None
    ece_in_scope: float | None = None
    ece_all: float | None = None
    p50_us: float | None = None


@contextmanager
def _step(description: str) -> Iterator[None]:
    """A spinner while a step runs (rich when available), and its duration afterwards."""
    started = time.perf_counter()
    try:
        from rich.console import Console

        with Console(stderr=True).status(description):
            yield
    except ImportError:
        yield
    print(f"  {description}: {time.perf_counter() - started:.1f} s", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print one table."""
    from stratarouter_core.router import Router
    from stratarouter_core.types import Route

    from .datasets import PrecomputedEncoder, load_intent_dataset

    with _step("loading dataset"):
        data = load_intent_dataset(args.dataset, args.embeddings)
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    if args.examples_per_route:
        train = train.first_per_label(args.examples_per_route)
    encoder = None
    if train.vectors is not None and val.vectors is not None and test.vectors is not None:
        every = train + val + test
        assert every.vectors is not None
        encoder = PrecomputedEncoder(every.texts, every.vectors, data.embedding_model)
    by_label: dict[str, list[str]] = {}
    for text, label in zip(train.texts, train.labels):
        if label is not None:
            by_label.setdefault(label, []).append(text)
    router = Router(
        encoder=encoder, routes=[Route(name=n, examples=e) for n, e in by_label.items()]
    )
    n_examples = sum(len(e) for e in by_label.values())
    with _step(f"building {len(by_label)} routes from {n_examples} examples"):
        router.build_index()
    unfitted = _evaluate("StrataRouter, no fit (top-1 only)", router, test, thresholded=False)
    with _step(f"fit on {len(val.texts)} val queries"):
        report = router.fit(val.texts, val.labels, val.vectors, expected_oos_rate=args.oos_rate)
    fitted = _evaluate(
        f"StrataRouter fit, objective accuracy @ OOS rate {report.expected_oos_rate:.2f}",
        router,
        test,
    )
    rows = [unfitted[0], fitted[0]]
    _plot(unfitted[1], fitted[1], args)
    router.set_threshold(report.threshold_for("in_scope_loss", args.in_scope_loss))
    method = f"StrataRouter fit, objective in_scope_loss {args.in_scope_loss}"
    rows.append(_evaluate(method, router, test)[0])
    if "semantic-router" in args.compare:
        rows += _semantic_router_rows(by_label, train, test)
    _print(rows, data.name, len(by_label), args.examples_per_route, report.duration_s)
    if args.out:
        payload = {
            "dataset": data.name,
            "examples_per_route": args.examples_per_route,
            "fit_seconds": report.duration_s,
            "rows": [r.__dict__ for r in rows],
        }
        Path(args.out).write_text(json.dumps(payload, indent=2))
    return 0


def _plot(unfitted: EvaluationReport, fitted: EvaluationReport, args: argparse.Namespace) -> None:
    """The reliability diagram (both routers on one axes) and the fitted confusion summary."""
    if args.plot:
        figure = unfitted.plot_reliability(label="no fit: calibrated from the route examples")
        fitted.plot_reliability(args.plot, ax=figure.axes[0], label="after fit on val")
        print(f"reliability diagram written to {args.plot}")
    if args.plot_confusion:
        fitted.plot_confusion(args.plot_confusion)
        print(f"confusion summary written to {args.plot_confusion}")


def _evaluate(
    method: str, router: Any, test: Any, *, thresholded: bool = True
) -> tuple[Row, EvaluationReport]:
    with _step(f"evaluating: {method}"):
        report: EvaluationReport = router.evaluate(test.texts, test.labels, test.vectors)
    row = Row(
        method=method,
        top1=report.top1_accuracy,
        in_scope_accuracy=report.in_scope_accuracy if thresholded else None,
        oos_recall=report.oos_recall if thresholded else None,
        oos_precision=report.oos_precision if thresholded else None,
        ece_in_scope=report.ece_in_scope if thresholded else None,
        ece_all=report.ece_all if thresholded else None,
        p50_us=report.latency_us["p50"],
    )
    return row, report


def _semantic_router_rows(by_label: dict[str, list[str]], train: Any, test: Any) -> list[Row]:
    from .semantic_router_baseline import SemanticRouterBaseline, measure_latency

    rows = []
    in_scope = np.array([label is not None for label in test.labels])
    for setting in ("default", "tuned"):
        with _step(f"semantic-router ({setting}): build and route {len(test.texts)} queries"):
            baseline = SemanticRouterBaseline(
                by_label, (train.texts, train.vectors), setting=setting
            )
            predicted = baseline.route_many(test.texts, test.vectors)
            latency = measure_latency(
                baseline, test.texts, test.vectors, n=min(1000, len(test.texts))
            )
        right = np.array([p == y for p, y in zip(predicted, test.labels)])
        rejected = np.array([p is None for p in predicted])
        rows.append(
            Row(
                method=f"semantic-router 1.1 ({setting})",
                top1=float(right[in_scope].mean()),
                in_scope_accuracy=float(right[in_scope].mean()),
                oos_recall=float(rejected[~in_scope].mean()) if (~in_scope).any() else None,
                oos_precision=float((rejected & ~in_scope).sum() / rejected.sum())
                if rejected.any()
                else None,
                p50_us=float(np.median(latency) * 1e6),
            )
        )
    return rows


def _print(rows: Sequence[Row], name: str, n_routes: int, k: int | None, fit_s: float) -> None:
    fmt: dict[str, Callable[[float], str]] = {
        "pct": lambda v: f"{v:.2%}",
        "3": lambda v: f"{v:.3f}",
        "4": lambda v: f"{v:.4f}",
        "us": lambda v: f"{v:,.0f}",
    }
    columns = [
        ("in-scope top-1", "top1", "pct"),
        ("in-scope acc (threshold)", "in_scope_accuracy", "pct"),
        ("OOS recall", "oos_recall", "3"),
        ("OOS precision", "oos_precision", "3"),
        ("ECE in-scope", "ece_in_scope", "4"),
        ("ECE all", "ece_all", "4"),
        ("route() P50 us", "p50_us", "us"),
    ]
    title = f"{name}: {n_routes} routes, {k or 'all'} examples per route; fit {fit_s:.1f} s"
    print(f"\n{title}\n")
    header = ["method"] + [c[0] for c in columns]
    lines = [header, ["---"] * len(header)]
    for row in rows:
        values = [getattr(row, attr) for _, attr, _ in columns]
        lines.append(
            [row.method]
            + ["-" if v is None else fmt[f](v) for v, (_, _, f) in zip(values, columns)]
        )
    for line in lines:
        print("| " + " | ".join(line) + " |")
