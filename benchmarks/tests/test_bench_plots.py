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
