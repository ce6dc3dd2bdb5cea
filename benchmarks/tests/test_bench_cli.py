"""`stratarouter bench` finds every bench of stratarouter-bench, and says what to install without it."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import textwrap

from stratarouter_core.cli.main import main

import stratarouter_bench


def test_register_adds_every_bench_module() -> None:
    parser = argparse.ArgumentParser()
    benches = parser.add_subparsers(dest="bench")
    stratarouter_bench.register(benches)
    names = set(benches.choices)
    assert {"accuracy", "speed", "cache", "runtime"} <= names
    # discovered, not listed: a bench added to the package joins without editing a list
    expected = set()
    for module in stratarouter_bench.bench_modules():
        alone = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"stratarouter_bench.{module}").register(alone)
        assert alone.choices, module
        expected |= set(alone.choices)
    assert names == expected


def test_helpers_are_not_benches() -> None:
    assert not {"datasets", "semantic_router_baseline", "_runtime_sections"} & set(
        stratarouter_bench.bench_modules()
    )


def test_bench_help_lists_the_benches(capsys) -> None:
    try:
        main(["bench", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for name in ("accuracy", "speed", "cache", "runtime"):
        assert name in out


def _run_without_bench_package(args: list[str]) -> subprocess.CompletedProcess[str]:
    # a meta-path finder that refuses stratarouter_bench: what a core-only install sees
    code = textwrap.dedent(
        f"""
        import sys
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "stratarouter_bench":
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None
        sys.meta_path.insert(0, Hide())
        from stratarouter_core.cli.main import main
        status = main({args!r})
        assert "stratarouter_bench" not in sys.modules
        sys.exit(status)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_bench_without_the_package_names_what_to_install() -> None:
    done = _run_without_bench_package(["bench", "speed", "--dataset", "x.json"])
    assert done.returncode == 2, done.stderr
    assert "stratarouter-bench" in done.stderr and "pip install -e benchmarks" in done.stderr
    assert "Traceback" not in done.stderr


def test_route_never_imports_the_bench_package(tmp_path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - name: greet\n    examples: [hello, hi there]\n")
    done = _run_without_bench_package(["route", "--routes", str(routes), "hello"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("greet\t")
