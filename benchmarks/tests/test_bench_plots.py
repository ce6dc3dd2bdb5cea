"""`--plot` of `stratarouter bench accuracy` and `scenarios`: the files hold the figures run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from stratarouter_core.cli.main import main

pytest.importorskip("matplotlib", reason="the plots need matplotlib (a bench dependency)")

PNG = b"\x89PNG\r\n\x1a\n"


def test_accuracy_writes_the_reliability_diagram_and_the_confusion_summary(
    tiny_intents: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratarouter_core.evaluation import EvaluationReport

    drawn: list[tuple[str, object]] = []
    for name in ("plot_reliability", "plot_confusion"):
        original = getattr(EvaluationReport, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            figure = _original(self, *args, **kwargs)
            drawn.append((_name, figure))
            return figure

        monkeypatch.setattr(EvaluationReport, name, spy)
    path, embeddings = tiny_intents
    reliability, confusion, out = tmp_path / "rel.png", tmp_path / "conf.png", tmp_path / "a.json"
    assert main(["bench", "accuracy", "--dataset", str(path), "--embeddings", str(embeddings),
                 "--plot", str(reliability), "--plot-confusion", str(confusion),
                 "--out", str(out)]) == 0
    assert reliability.read_bytes()[:8] == PNG and confusion.read_bytes()[:8] == PNG
    assert [name for name, _ in drawn] == ["plot_reliability", "plot_reliability", "plot_confusion"]
    figure = drawn[0][1]
    assert drawn[1][1] is figure  # both routers on one diagram
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels[0] == "perfect calibration"
    assert labels[1].startswith("no fit") and labels[2].startswith("after fit")
    # The fitted curve's label carries the ECE the bench reports for the fitted router.
    rows = json.loads(out.read_text())["rows"]
    assert f"(ECE {rows[1]['ece_in_scope']:.3f})" in labels[2]
    assert drawn[2][1].axes[0].get_images()  # the heat map


def test_accuracy_without_plot_writes_no_image(
    tiny_intents: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path, embeddings = tiny_intents
    assert main(["bench", "accuracy", "--dataset", str(path), "--embeddings", str(embeddings)]) == 0
    assert not list(tmp_path.glob("*.png"))


def test_scenarios_plot_has_one_bar_per_method_and_configuration(
    tiny_intents: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stratarouter_bench import scenarios

    figures = []
    original = scenarios.plot_scenarios
    monkeypatch.setattr(scenarios, "plot_scenarios",
                        lambda *a, **k: figures.append(original(*a, **k)) or figures[-1])
    path, embeddings = tiny_intents
    plot = tmp_path / "scenarios.png"
    assert main(["bench", "scenarios", "--dataset", str(path), "--embeddings", str(embeddings),
                 "--seeds", "1", "--configurations", "2x3,4x5", "--compare", "semantic-router",
                 "--json", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    results = json.loads(out[: out.rindex("}") + 1])
    assert plot.read_bytes()[:8] == PNG
    (figure,) = figures
    panels = {axes.get_title(): axes for axes in figure.axes}
    assert len(panels) == len(scenarios.PLOTTED)
    for field, title in scenarios.PLOTTED:
        axes = panels[title]
        assert [t.get_text() for t in axes.get_xticklabels()] == ["2×3", "4×5"]
        for container in axes.containers:
            method = container.get_label()
            expected = [results[c][method][field] for c in ("R=2 K=3", "R=4 K=5")]
            assert np.allclose([bar.get_height() for bar in container], expected)
        drawn = {container.get_label() for container in axes.containers}
        # nearest-example has only top-1 and speed: no empty bars for the rest
        if field in ("top1", "ms_per_query"):
            assert drawn == {"stratarouter", "semantic-router", "nearest-example"}
        else:
            assert drawn == {"stratarouter", "semantic-router"}


def test_cache_plot_draws_precision_and_recall_of_both_against_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_bench_cache import PAIRS, PairEncoder, parse, write_pairs

    from stratarouter_bench import cache

    figures = []
    original = cache.plot_cache
    monkeypatch.setattr(cache, "plot_cache",
                        lambda *a, **k: figures.append(original(*a, **k)) or figures[-1])
    plot = tmp_path / "cache.png"
    args = parse(["--pairs", str(write_pairs(tmp_path / "pairs.json", PAIRS)), "--split", "all",
                  "--no-cache", "--plot", str(plot)], PairEncoder())
    assert args.run(args) == 0
    assert f"plot written to {plot}" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == PNG
    (figure,) = figures
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    at = {label: dict(zip(np.round(line.get_xdata(), 3), line.get_ydata()))
          for label, line in lines.items() if ":" in label}
    # at the default 0.9 (see test_bench_cache): the guard lifts precision from 1/3 to 2/3
    assert at["plain cosine: precision"][0.9] == pytest.approx(1 / 3, abs=1e-3)
    assert at["cache + guard: precision"][0.9] == pytest.approx(2 / 3, abs=1e-3)
    assert at["plain cosine: recall"][0.9] == pytest.approx(2 / 3, abs=1e-3)
    assert at["plain cosine: recall"][0.845] == pytest.approx(1.0)  # the pizza pair is at 0.85
    assert at["cache + guard: recall"][0.995] == 0.0
    assert list(lines["default threshold 0.9"].get_xdata()) == [0.9, 0.9]
