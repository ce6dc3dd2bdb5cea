"""The `stratarouter route` command and routes files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from stratarouter_core import Route, RoutesFileError, RouteValidationError, StrataRouterError
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
        ("routes: [\n  - name: a\n    examples: [x\n", r"bad.yaml:2: invalid YAML"),
        ("routes: []\n", r"bad.yaml:1: 'routes' must be a non-empty list"),
        ("routes:\n  - examples: [x]\n", r"bad.yaml:2: routes\[0\]: missing 'name'"),
        (
            "routes:\n  - name: a\n    exampels: [x]\n",
            r"bad.yaml:3: routes\[0\] \('a'\): unknown field.*exampels",
        ),
        (
            "routes:\n  - name: a\n    examples: [x]\n    patterns:\n      - ok\n      - '('\n",
            r"bad.yaml:6: routes\[0\] \('a'\): patterns: invalid regex '\('",
        ),
        (
            "routes:\n  - name: a\n    examples: [x]\nconfig:\n  treshold: 1\n",
            r"bad.yaml:5: config: unknown config field.*treshold",
        ),
        ("rutes: []\n", r"bad.yaml:1: unknown top-level key.*rutes"),
        # wrong field types: a clear error at the field's line, never a TypeError
        ("routes:\n  - name: a\n    examples: 5\n", r":3: .*examples: must be a list of strings, got int"),
        ("routes:\n  - name: a\n    examples:\n", r":3: .*examples: is empty"),
        (
            "routes:\n  - name: a\n    examples: [x]\n    keywords: 5\n",
            r":4: .*keywords: must be a list of strings",
        ),
        (
            "routes:\n  - name: a\n    examples: [x]\n    patterns: 5\n",
            r":4: .*patterns: must be a list of strings",
        ),
        ("routes:\n  - name: a\n    examples: {a: 1}\n", r":3: .*examples: .*got a mapping"),
        ("routes:\n  - name: a\n    examples: hello\n", r":3: .*got a string"),
        ("routes:\n  - name: a\n    examples:\n      - x\n      - 3\n", r":5: .*item 1 must be a string"),
        ("routes:\n  - name: 5\n    examples: [x]\n", r":2: .*name: must be a non-blank string"),
        ("routes:\n  - name: a\n    examples: [x]\n    threshold: high\n", r":4: .*threshold"),
        ("routes:\n  - name: a\n    examples: [x]\n    metadata: [1]\n", r":4: .*metadata: must be a mapping"),
        ("routes:\n  - name: a\n    description: 5\n", r":3: .*description: must be a string"),
        ("routes:\n  - name: a\n", r":2: routes\[0\] \('a'\): .*no examples and no description"),
        ("routes:\n  - name: a\n    examples: [x]\nconfig: 5\n", r":4: config must be a mapping"),
        ("routes:\n  - name: a\n    examples: [x]\nconfig:\n  threshold: high\n", r":5: config: .*threshold"),
        (
            "routes:\n  - name: a\n    examples: [x]\n  - name: b\n    examples: [y]\n"
            "  - name: a\n    examples: [z]\n",
            r"bad.yaml:6: routes\[2\]: duplicate route name 'a' \(first defined at routes\[0\], line 2\)",
        ),
    ],
)
def test_bad_routes_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RoutesFileError, match=message) as info:
        load_routes_file(path)
    assert str(info.value).startswith(f"{path}:"), "the message starts with file:line"
    assert info.value.path == str(path) and info.value.line is not None
    assert isinstance(info.value, StrataRouterError)


def test_yaml_syntax_error_names_the_file_not_unicode_string(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n  - name: a\n    examples: [x\n  - name: b\n")
    with pytest.raises(RoutesFileError) as info:
        load_routes_file(path)
    assert "<unicode string>" not in str(info.value)
    assert str(info.value).startswith(f"{path}:")


def test_json_errors_have_lines_too(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text('{"routes": [\n  {"name": "a", "examples": ["x"]},\n  {"name": "b",\n'
                    '   "keywords": 5, "examples": ["y"]}\n]}\n')
    with pytest.raises(RoutesFileError, match=r"routes.json:4: routes\[1\] \('b'\): keywords"):
        load_routes_file(path)
    path.write_text('{"routes": [\n  {"name": "a",, }]}')
    with pytest.raises(RoutesFileError, match=r"routes.json:2: invalid JSON"):
        load_routes_file(path)


def test_yaml_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes:\n  - &billing\n    name: billing\n    examples: [refund me]\n"
        "  - <<: *billing\n    name: billing_v2\n"
    )
    routes, _ = load_routes_file(path)
    assert [(r.name, r.examples) for r in routes] == [
        ("billing", ("refund me",)), ("billing_v2", ("refund me",))
    ]


@pytest.mark.parametrize(
    "field, bad",
    [("examples", 5), ("examples", None), ("keywords", 5), ("patterns", 5),
     ("examples", {"a": 1}), ("examples", b"ab")],
)
def test_route_rejects_non_list_fields(field: str, bad: object) -> None:
    kwargs = {"name": "a", "description": "d", field: bad}
    with pytest.raises(RouteValidationError, match=f"{field} must be a list of strings"):
        Route(**kwargs)  # type: ignore[arg-type]


def test_cli_reports_errors_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes: []\n")
    assert main(["route", "--routes", str(path), "hello"]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    [
        "routes:\n  - name: a\n    examples: 5\n",
        "routes:\n  - name: a\n    examples: {a: 1}\n",
        "routes:\n  - name: a\n    examples: [x]\n  - name: a\n    examples: [y]\n",
        "routes: [\n",
    ],
)
def test_cli_prints_file_and_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["route", "--routes", str(path), "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:") and "Traceback" not in err


@pytest.mark.parametrize("args", [[], ["-"]])
def test_route_reads_queries_from_stdin(
    routes_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("refund invoice #12\n\n  \nwill it rain tomorrow\n"))
    assert main(["route", "--routes", str(routes_file), "--json", *args]) == 0
    decisions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["query"], d["route"]) for d in decisions] == [
        ("refund invoice #12", "billing"), ("will it rain tomorrow", "weather")
    ]
