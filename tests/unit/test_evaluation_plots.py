"""EvaluationReport.plot_reliability / plot_confusion draw what the report measured."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.errors import ConfigError, MissingDependencyError
from stratarouter_core.testing import HashingEncoder

pytest.importorskip("matplotlib", reason="the figures need the [plot] extra")

PNG = b"\x89PNG\r\n\x1a\n"
QUERIES = [
    "refund my invoice please", "I was charged twice", "update my card",
    "will it rain today", "weather forecast for tomorrow", "is it sunny",
    "where is my parcel", "track my order", "delivery is late",
    "refund the delivery fee", "tell me a joke", "capital of france",
]
LABELS = [
    "billing", "billing", "billing", "weather", "weather", "weather",
    "shipping", "shipping", "shipping", "billing", None, None,
]


@pytest.fixture(scope="module")
def report():
    router = Router(encoder=HashingEncoder(), config=RouterConfig(fallback_route="human"))
    router.add_routes([
        Route(name="billing", examples=["refund my invoice", "I was charged twice", "update my card"]),
        Route(name="weather", examples=["will it rain today", "weather forecast", "is it sunny"]),
        Route(name="shipping", examples=["where is my parcel", "track my order", "delivery is late"]),
    ])
    router.build_index()
    return router.evaluate(QUERIES, LABELS)


def test_reliability_diagram_plots_the_report_bins_and_writes_the_file(report, tmp_path) -> None:
    path = tmp_path / "sub" / "reliability.png"
    figure = report.plot_reliability(path, label="hashing")
    assert path.read_bytes()[:8] == PNG
    (axes,) = figure.axes
    diagonal, curve = axes.get_lines()
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    assert np.allclose(curve.get_xdata(), [b[1] for b in report.reliability])
    assert np.allclose(curve.get_ydata(), [b[2] for b in report.reliability])
    assert curve.get_label() == f"hashing (ECE {report.ece_in_scope:.3f})"
    assert len(axes.patches) == len(report.reliability)  # one count bar per bin
    assert axes.get_xlim() == (0, 1) and axes.get_ylim() == (0, 1)
    assert "confidence" in axes.get_xlabel() and "accuracy" in axes.get_ylabel()


def test_several_reports_share_one_diagram_with_one_diagonal(report) -> None:
    figure = report.plot_reliability(label="before", show_counts=False)
    same = report.plot_reliability(ax=figure.axes[0], label="after", show_counts=False)
    assert same is figure
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels[0] == "perfect calibration" and len(labels) == 3
    assert labels[1].startswith("before") and labels[2].startswith("after")
    assert not figure.axes[0].patches
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == labels


def test_confusion_summary_is_the_confusion_of_the_most_confused_routes(report, tmp_path) -> None:
    path = tmp_path / "confusion.svg"
    figure = report.plot_confusion(path)
    assert path.read_text().lstrip().startswith("<?xml")
    axes = figure.axes[0]  # the second axes is the colour bar
    (image,) = axes.get_images()
    names = [t.get_text() for t in axes.get_yticklabels()]
    assert names == [t.get_text() for t in axes.get_xticklabels()]
    errors = {(e, p) for e, p, _ in report.most_confused(100)}
    assert errors and {name for pair in errors for name in pair} == set(names)
    shares = np.asarray(image.get_array())
    assert shares.shape == (len(names), len(names))
    for i, expected in enumerate(names):
        row = report.confusion.get(expected, {})
        total = sum(row.values())
        for j, decided in enumerate(names):
            assert shares[i, j] == pytest.approx(row.get(decided, 0) / max(total, 1))
    counts = sorted(int(t.get_text()) for t in axes.texts)
    assert counts == sorted(
        n for e in names for p, n in report.confusion.get(e, {}).items() if p in names and n
    )


def test_a_right_rejection_is_not_an_error(report) -> None:
    assert "(none)" not in report.confusion  # out of scope is named after the fallback route
    for expected, decided, _ in report.most_confused(100):
        assert expected != decided


def test_confusion_without_errors_says_so() -> None:
    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.0))
    router.add_routes([
        Route(name="billing", examples=["refund my invoice"]),
        Route(name="weather", examples=["will it rain today"]),
    ])
    router.build_index()
    figure = router.evaluate(["refund my invoice", "will it rain today"], ["billing", "weather"]).plot_confusion()
    assert [t.get_text() for t in figure.axes[0].texts] == ["no errors"]
    assert not figure.axes[0].get_images()


def test_combined_plot_has_both_panels(report, tmp_path) -> None:
    path = report.plot(tmp_path / "both.png")
    assert path.read_bytes()[:8] == PNG


def test_bad_max_routes_is_a_config_error(report) -> None:
    with pytest.raises(ConfigError, match="max_routes"):
        report.plot_confusion(max_routes=1)


def test_missing_matplotlib_names_the_plot_extra(report, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(MissingDependencyError, match=r"stratarouter\[plot\]"):
        report.plot_reliability()
    with pytest.raises(MissingDependencyError, match=r"stratarouter\[plot\]"):
        report.plot_confusion()
