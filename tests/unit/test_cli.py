"""The `stratarouter route` command and routes files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stratarouter_core import ConfigError
from stratarouter_core.cli.main import main
from stratarouter_core.routes_file import load_routes_file

pytest.importorskip("tokenizers", reason="the CLI uses the offline LocalEncoder ([local] extra)")

ROUTES_YAML = """\
config:
  threshold: 0.25
  fallback_route: human
routes:
  - name: billing
    examples: ["I was charged twice", "refund my invoice"]
    keywords: [invoice]
    patterns: ['\\binvoice\\s*#?\\d+']
  - name: weather
    description: weather forecasts, rain and temperature
"""


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES_YAML)
    return path


def test_route_prints_decisions(routes_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["route", "--routes", str(routes_file), "refund invoice #12", "explain string theory"])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("billing\t") and lines[1].startswith("human\t")


def test_route_json_and_explain(routes_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["route", "--routes", str(routes_file), "--json", "will it rain tomorrow"])
    decision = json.loads(capsys.readouterr().out)
    assert decision["route"] == "weather" and 0 <= decision["confidence"] <= 1
    main(["route", "--routes", str(routes_file), "--explain", "refund invoice #12"])
    assert "decision: billing" in capsys.readouterr().out


def test_json_routes_file_is_equivalent(tmp_path: Path, routes_file: Path) -> None:
    import yaml

    json_path = tmp_path / "routes.json"
    json_path.write_text(json.dumps(yaml.safe_load(routes_file.read_text())))
    assert load_routes_file(json_path) == load_routes_file(routes_file)


@pytest.mark.parametrize(
    "text, message",
    [
        ("routes: [\n  - name: a\n    examples: [x\n", r"invalid YAML at line \d"),
        ("routes: []\n", "non-empty list"),
        ("routes:\n  - examples: [x]\n", r"routes\[0\]: missing 'name'"),
        (
            "routes:\n  - name: a\n    exampels: [x]\n",
            r"routes\[0\] \('a'\): unknown field.*exampels",
        ),
        ("routes:\n  - name: a\n    examples: [x]\n    patterns: ['(']\n", "invalid regex"),
        (
            "routes:\n  - name: a\n    examples: [x]\nconfig:\n  treshold: 1\n",
            "unknown config field.*treshold",
        ),
        ("rutes: []\n", "unknown top-level key.*rutes"),
    ],
)
def test_bad_routes_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_routes_file(path)


def test_cli_reports_errors_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes: []\n")
    assert main(["route", "--routes", str(path), "hello"]) == 2
    assert "error:" in capsys.readouterr().err
