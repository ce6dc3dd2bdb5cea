"""`stratarouter model-router fit | route` and the graded file it reads."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from stratarouter_core import ConfigError, ModelRouter
from stratarouter_core.cli.main import main
from stratarouter_core.model_routing import InvalidScoresError, ModelSpecError, read_graded_file

pytest.importorskip("tokenizers", reason="the CLI uses the offline LocalEncoder ([local] extra)")

HARD = [f"prove that the sum of the first {n} odd numbers is a square" for n in range(3, 23)]
EASY = [f"translate 'good morning' into language number {n}" for n in range(3, 23)]
MODELS = {
    "gpt-4o": {"input_usd_per_mtok": 2.5, "output_usd_per_mtok": 10.0},
    "gpt-4o-mini": {"input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6},
}


def _graded(tmp_path: Path, **overrides: object) -> Path:
    data: dict[str, object] = {
        "name": "two templates",
        "models": MODELS,
        "train": [[q, {"gpt-4o": 1.0, "gpt-4o-mini": 0.0}] for q in HARD]
        + [[q, {"gpt-4o": 1.0, "gpt-4o-mini": 1.0}] for q in EASY],
        **overrides,
    }
    path = tmp_path / "graded.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "mr"
    assert main(["model-router", "fit", "--graded", str(_graded(tmp)), "--out", str(out)]) == 0
    return out


def test_fit_prints_the_report_and_saves_a_loadable_router(
    router_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "again"
    assert main(["model-router", "fit", "--graded", str(_graded(tmp_path)), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "encoding and fitting 40 graded queries" in captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("fitted on 40 graded queries")
    assert lines[2].startswith("gpt-4o\t40\t") and lines[3].startswith("gpt-4o-mini\t40\t")
    assert "nearest graded cosine of a training query: p1 " in captured.out
    assert ModelRouter.load(out).model_names == ("gpt-4o", "gpt-4o-mini")


def test_route_prints_each_choice_and_its_rule(
    router_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hard = "prove that the sum of the first 40 odd numbers is a square"
    easy = "translate 'good morning' into language number 77"
    args = ["model-router", "route", "--router-dir", str(router_dir), "--min-quality", "0.8"]
    assert main([*args, hard, easy]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(r[0], r[3], r[4]) for r in rows] == [
        ("gpt-4o", "min_quality", hard),
        ("gpt-4o-mini", "min_quality", easy),
    ]
    assert float(rows[1][1]) >= 0.8 and rows[1][2].startswith("$")
    # a bar no model reaches falls back, and says so
    assert main([*args[:-1], "1.0", easy]) == 0
    assert capsys.readouterr().out.split("\t")[3] == "min_quality,fallback"


def test_route_json_from_stdin_with_a_similarity_floor(
    router_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("what's the capital of Peru?\n\n"))
    args = ["model-router", "route", "--router-dir", str(router_dir), "--json"]
    assert main([*args, "--cost-weight", "0.5", "--min-graded-similarity", "0.3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["query"] == "what's the capital of Peru?"
    assert (record["model"], record["rule"], record["fallback"]) == (
        "gpt-4o",
        "min_graded_similarity",
        True,
    )
    assert record["nearest_graded_similarity"] < 0.3
    assert set(record["p_success"]) == {"gpt-4o", "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"models": {}}, "non-empty 'models'"),
        ({"models": {"gpt-4o": {"input_usd_per_mtok": 2.5}}}, "has no output_usd_per_mtok"),
        ({"models": {"gpt-4o": {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1}}}, ">= 0"),
        ({"train": [["a query", 0.5]]}, r"train\[0\] must be \[query, \{model: score\}\]"),
        ({"train": [["a query", {"gpt-4o": 2.0}]] * 20}, "outside"),
        ({"train": [["a query", {"o3": 1.0}]] * 20}, "'o3'"),
        ({"train": []}, "train split is empty"),
    ],
)
def test_bad_graded_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, object], message: str
) -> None:
    path = _graded(tmp_path, **overrides)
    assert main(["model-router", "fit", "--graded", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "x").exists()  # nothing saved


def test_fit_never_replaces_a_directory_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graded = _graded(tmp_path)  # tmp_path now holds graded.json: "--out ." by mistake
    assert main(["model-router", "fit", "--graded", str(graded), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds files a save did not write (graded.json)" in err
    assert "encoding" not in err  # refused before a fit that could take minutes
    assert read_graded_file(graded).name == "two templates"  # still there, intact


def test_missing_inputs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert main(["model-router", "fit", "--graded", str(missing), "--out", str(tmp_path)]) == 2
    assert f"graded file {missing} does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "model-router",
                "fit",
                "--graded",
                str(_graded(tmp_path)),
                "--split",
                "dev",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "no split 'dev' (the file has ['train'])" in capsys.readouterr().err
    assert main(["model-router", "route", "--router-dir", str(tmp_path / "none"), "hi"]) == 2
    assert "no saved ModelRouter" in capsys.readouterr().err


def test_the_reader_keeps_file_order_and_the_typed_errors(tmp_path: Path) -> None:
    graded = read_graded_file(_graded(tmp_path))
    assert graded.name == "two templates"
    assert [m.name for m in graded.models] == ["gpt-4o", "gpt-4o-mini"]
    queries, scores = graded.split("train")
    assert queries[:1] == HARD[:1] and scores[0] == {"gpt-4o": 1.0, "gpt-4o-mini": 0.0}
    with pytest.raises(ModelSpecError):
        read_graded_file(_graded(tmp_path, models={"m": "free"}))
    with pytest.raises(InvalidScoresError):
        read_graded_file(_graded(tmp_path, train=[["q"]]))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read graded file"):
        read_graded_file(tmp_path / "broken.json")


def test_add_teaches_a_saved_router_new_grades_and_keeps_it_on_bad_input(
    router_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "mr"
    shutil.copytree(router_dir, saved)
    easy = "translate 'good morning' into language number 77"
    route = ["model-router", "route", "--router-dir", str(saved), "--min-quality", "0.8", easy]
    assert main(route) == 0
    assert capsys.readouterr().out.startswith("gpt-4o-mini\t")
    # this very prompt turns out to be one the small model gets wrong
    wrong = _graded(tmp_path, train=[[easy, {"gpt-4o": 1.0, "gpt-4o-mini": 0.0}]])
    add = ["model-router", "add", "--router-dir", str(saved), "--graded", str(wrong)]
    assert main(add) == 0
    assert capsys.readouterr().out.startswith("added 1 graded queries without a refit")
    assert main(route) == 0
    assert capsys.readouterr().out.startswith("gpt-4o\t")
    unknown = _graded(tmp_path, train=[[easy, {"gpt-5": 1.0}]])
    assert main([*add[:-1], str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "gpt-5" in err and "Traceback" not in err
    assert main(route) == 0  # the saved router is still there, as it was
    assert capsys.readouterr().out.startswith("gpt-4o\t")
