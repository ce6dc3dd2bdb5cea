"""Figures of an `EvaluationReport`: the reliability diagram and the confusion summary.

matplotlib is the `[plot]` extra, imported only when a figure is asked for. Figures are built
with `matplotlib.figure.Figure` rather than pyplot, so nothing is left in pyplot's global
state (no figure to close, no backend to pick) and a notebook shows the returned figure once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._deps import require
from .errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PERFECT_GID",
    "confused_routes",
    "confusion_figure",
    "reliability_figure",
    "save",
]

PERFECT_GID = "perfect-calibration"  # gid of the diagonal, drawn once per axes


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """The figure of `ax`, or a new figure with one axes (matplotlib imported here)."""
    require("matplotlib", extra="plot")
    if ax is not None:
        figure = ax.get_figure()
        if figure is None:  # pragma: no cover - an axes always belongs to a figure
            raise ConfigError("the axes given to plot on belongs to no figure")
        return figure, ax  # type: ignore[return-value]  # a SubFigure draws the same way
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def save(figure: Figure, path: str | Path | None, dpi: int = 110) -> None:
    """Write `figure` to `path` (format from the suffix), creating missing parent folders."""
    if path is None:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=dpi)


def reliability_figure(
    bins: Sequence[tuple[float, float, float, int]],
    ece: float,
    *,
    label: str,
    ax: Axes | None = None,
    show_counts: bool = True,
) -> Figure:
    """Accuracy against mean confidence per confidence bin, with the diagonal for reference.

    Each call adds one curve (label with its ECE) to `ax`, so several reports can share one
    diagram; the diagonal is drawn once. With `show_counts`, faint bars show the share of
    queries in each bin (scaled so the fullest bin reaches 0.25).
    """
    figure, axes = _axes(ax, (6.0, 5.0))
    if not any(line.get_gid() == PERFECT_GID for line in axes.get_lines()):
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        axes.get_lines()[-1].set_gid(PERFECT_GID)
    (curve,) = axes.plot(
        [b[1] for b in bins], [b[2] for b in bins], marker="o", label=f"{label} (ECE {ece:.3f})"
    )
    if show_counts and bins:
        most = max(b[3] for b in bins)
        axes.bar(
            [b[1] for b in bins],
            [0.25 * b[3] / most for b in bins],
            width=0.03,
            alpha=0.25,
            color=curve.get_color(),
        )
    axes.set(
        xlabel="confidence (top route)",
        ylabel="accuracy (top route is right)",
        title="Reliability diagram (in-scope queries)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="small")
    return figure


def confused_routes(
    confusion: Mapping[str, Mapping[str, int]], max_routes: int
) -> list[str]:
    """Routes of the most frequent errors, in order of first appearance, at most `max_routes`."""
    errors = sorted(
        (
            (n, expected, predicted)
            for expected, row in confusion.items()
            for predicted, n in row.items()
            if predicted != expected
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    names: list[str] = []
    for _, expected, predicted in errors:
        for name in (expected, predicted):
            if name not in names and len(names) < max_routes:
                names.append(name)
    return names


def confusion_figure(
    confusion: Mapping[str, Mapping[str, int]],
    *,
    max_routes: int = 12,
    ax: Axes | None = None,
) -> Figure:
    """A heat map of decisions among the routes most involved in errors (rows: expected).

    Cells are shares of each expected route's queries (so a row's diagonal cell is that
    route's recall), annotated with counts; "(none)" or the fallback route stands for
    "no route". With no error at all, the axes says so.
    """
    if max_routes < 2:
        raise ConfigError(f"max_routes must be >= 2, got {max_routes}")
    figure, axes = _axes(ax, (7.5, 6.5))
    names = confused_routes(confusion, max_routes)
    if not names:
        axes.text(0.5, 0.5, "no errors", ha="center", va="center", transform=axes.transAxes)
        axes.set(title="Confusion summary", xticks=[], yticks=[])
        return figure
    counts = [[confusion.get(e, {}).get(p, 0) for p in names] for e in names]
    totals = [max(sum(confusion.get(e, {}).values()), 1) for e in names]
    shares = [[n / total for n in row] for row, total in zip(counts, totals)]
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            if n:
                colour = "white" if shares[i][j] > 0.6 else "black"
                axes.text(j, i, str(n), ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set(
        xlabel="decided",
        ylabel="expected",
        title=f"Confusion among the {len(names)} routes with the most errors",
    )
    figure.colorbar(image, ax=axes, label="share of the expected route's queries", shrink=0.8)
    return figure
