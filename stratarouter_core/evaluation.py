"""`Router.evaluate`: accuracy, out-of-scope handling, calibration and latency in one report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ._deps import require
from .calibration import brier_score, expected_calibration_error, reliability_bins
from .errors import ConfigError, RouteNotFoundError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .pipeline import RoutingEngine

__all__ = ["EvaluationReport", "evaluate_router"]


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of a router on labelled queries (label None = out of scope).

    Accuracy counts a query as right when the final decision is right: the labelled route
    for an in-scope query, "no route" (fallback or None) for an out-of-scope one.
    `top1_accuracy` ignores the threshold. Calibration is measured on the top candidate's
    confidence against whether it is the labelled route.

    `confusion[expected][decided]` counts the decisions; out-of-scope queries and rejected
    ones are both named after the fallback route (or "(none)"), so a right rejection is on
    the diagonal. `plot_reliability` and `plot_confusion` draw them (`[plot]` extra).
    """

    n_in_scope: int
    n_out_of_scope: int
    in_scope_accuracy: float
    top1_accuracy: float
    oos_recall: float
    oos_precision: float
    overall_accuracy: float
    macro_f1: float
    ece_in_scope: float
    ece_all: float
    brier_in_scope: float
    latency_us: dict[str, float]
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    reliability: list[tuple[float, float, float, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """All metrics as plain data."""
        return dict(self.__dict__)

    def to_markdown(self) -> str:
        """A Markdown table of the headline metrics and the most confused route pairs."""
        rows = [
            ("in-scope queries", f"{self.n_in_scope}"),
            ("out-of-scope queries", f"{self.n_out_of_scope}"),
            ("in-scope accuracy (with threshold)", f"{self.in_scope_accuracy:.2%}"),
            ("in-scope top-1 accuracy (no threshold)", f"{self.top1_accuracy:.2%}"),
            ("out-of-scope recall", f"{self.oos_recall:.3f}"),
            ("out-of-scope precision", f"{self.oos_precision:.3f}"),
            ("overall accuracy", f"{self.overall_accuracy:.2%}"),
            ("macro-F1", f"{self.macro_f1:.3f}"),
            ("ECE in-scope (15 bins)", f"{self.ece_in_scope:.4f}"),
            ("ECE in-scope + out-of-scope", f"{self.ece_all:.4f}"),
            ("Brier in-scope", f"{self.brier_in_scope:.4f}"),
        ] + [(f"latency {k}", f"{v:.1f} us") for k, v in self.latency_us.items()]
        lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
        confused = self.most_confused(10)
        if confused:
            lines += ["", "| expected | predicted | count |", "|---|---|---|"]
            lines += [f"| {e} | {p} | {n} |" for e, p, n in confused]
        return "\n".join(lines)

    def most_confused(self, limit: int = 10) -> list[tuple[str, str, int]]:
        """The most frequent (expected, predicted) errors."""
        errors = [
            (expected, predicted, n)
            for expected, row in self.confusion.items()
            for predicted, n in row.items()
            if predicted != expected
        ]
        return sorted(errors, key=lambda item: -item[2])[:limit]

    def plot_reliability(
        self,
        path: str | Path | None = None,
        *,
        ax: Axes | None = None,
        label: str = "router",
        show_counts: bool = True,
    ) -> Figure:
        """Draw the reliability diagram of the in-scope queries (needs the `[plot]` extra).

        Accuracy of the top route against its mean confidence, per confidence bin, beside the
        diagonal of perfect calibration. Pass the `ax` of an earlier call to draw several
        reports on one diagram (e.g. before and after `fit`); `path` also writes the figure
        (PNG, SVG or PDF from the suffix).

        Returns:
            The matplotlib `Figure` (of `ax` when given).

        Raises:
            MissingDependencyError: matplotlib is not installed.
        """
        from . import _plots

        figure = _plots.reliability_figure(
            self.reliability, self.ece_in_scope, label=label, ax=ax, show_counts=show_counts
        )
        _plots.save(figure, path)
        return figure

    def plot_confusion(
        self, path: str | Path | None = None, *, ax: Axes | None = None, max_routes: int = 12
    ) -> Figure:
        """Draw the confusion summary: a heat map of the routes most involved in errors.

        Rows are expected routes, columns decided ones; a cell is the share of the row's
        queries (annotated with the count), "(none)" or the fallback route meaning no route.
        Needs the `[plot]` extra; `path` also writes the figure.

        Returns:
            The matplotlib `Figure` (of `ax` when given).

        Raises:
            MissingDependencyError: matplotlib is not installed.
        """
        from . import _plots

        figure = _plots.confusion_figure(self.confusion, max_routes=max_routes, ax=ax)
        _plots.save(figure, path)
        return figure

    def plot(self, path: str | Path) -> Path:
        """Write one PNG with the reliability diagram and the confusion summary side by side."""
        from . import _plots

        require("matplotlib", extra="plot")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(13.0, 5.5), layout="constrained")
        left, right = figure.subplots(1, 2)
        self.plot_reliability(ax=left)
        self.plot_confusion(ax=right)
        _plots.save(figure, path)
        return Path(path)


def evaluate_router(
    router: RoutingEngine,
    queries: Sequence[str],
    labels: Sequence[str | None],
    embeddings: ArrayLike | None = None,
) -> EvaluationReport:
    """Route every query (batched) and measure the decisions against `labels`."""
    if len(queries) != len(labels) or not queries:
        raise ConfigError(
            f"need equal, non-zero numbers of queries and labels ({len(queries)} and {len(labels)})"
        )
    known = set(router.route_names)
    unknown = sorted({str(x) for x in labels if x is not None and x not in known})
    if unknown:
        raise RouteNotFoundError(f"labels name unknown route(s): {', '.join(unknown[:10])}")
    results = router.route_batch(queries, embeddings)
    fallback = router.config.fallback_route
    predicted = [None if r.is_fallback else r.route_id for r in results]
    top = [r.top.route_id if r.top else None for r in results]
    conf = np.array([r.confidence for r in results])
    in_scope = np.array([x is not None for x in labels])
    right = np.array([p == x for p, x in zip(predicted, labels)])
    top_right = np.array([t == x for t, x in zip(top, labels)])
    rejected = np.array([p is None for p in predicted])
    n_rejected = int(rejected.sum())
    confusion: dict[str, dict[str, int]] = {}
    no_route = fallback or "(none)"  # out of scope and rejected share a name: no error
    for expected, got in zip(labels, predicted):
        row = confusion.setdefault(expected or no_route, {})
        key = got or no_route
        row[key] = row.get(key, 0) + 1
    return EvaluationReport(
        n_in_scope=int(in_scope.sum()),
        n_out_of_scope=int((~in_scope).sum()),
        in_scope_accuracy=_mean(right[in_scope]),
        top1_accuracy=_mean(top_right[in_scope]),
        oos_recall=_mean(rejected[~in_scope]),
        oos_precision=float((rejected & ~in_scope).sum() / n_rejected) if n_rejected else 0.0,
        overall_accuracy=_mean(right),
        macro_f1=_macro_f1(labels, predicted),
        ece_in_scope=expected_calibration_error(conf[in_scope], top_right[in_scope]),
        ece_all=expected_calibration_error(conf, top_right),
        brier_in_scope=brier_score(conf[in_scope], top_right[in_scope]),
        latency_us=_latency(router, queries, embeddings),
        confusion=confusion,
        reliability=reliability_bins(conf[in_scope], top_right[in_scope]),
    )


def _mean(values: np.ndarray[Any, Any]) -> float:
    return float(values.mean()) if len(values) else 0.0


def _macro_f1(labels: Sequence[str | None], predicted: Sequence[str | None]) -> float:
    """Macro-F1 over every class, out-of-scope ("no route") counted as one class."""
    true_positive: Counter[str | None] = Counter()
    predicted_count: Counter[str | None] = Counter(predicted)
    actual_count: Counter[str | None] = Counter(labels)
    for expected, got in zip(labels, predicted):
        if expected == got:
            true_positive[expected] += 1
    scores = []
    for cls in actual_count:
        tp = true_positive[cls]
        precision = tp / predicted_count[cls] if predicted_count[cls] else 0.0
        recall = tp / actual_count[cls]
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


def _latency(
    router: RoutingEngine, queries: Sequence[str], embeddings: ArrayLike | None
) -> dict[str, float]:
    """Per-query `route()` latency percentiles on up to 1,000 of the queries."""
    sample = min(len(queries), 1000)
    vectors = None if embeddings is None else np.asarray(embeddings)
    timings = []
    for i in range(sample):
        start = time.perf_counter_ns()
        router.route(queries[i], None if vectors is None else vectors[i])
        timings.append((time.perf_counter_ns() - start) / 1000.0)
    p50, p99 = np.percentile(timings, [50, 99])
    return {"p50": float(p50), "p99": float(p99)}
