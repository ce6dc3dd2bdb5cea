"""Each core example runs offline and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_routes_in_scope_and_falls_back_out_of_scope() -> None:
    pytest.importorskip(
        "tokenizers", reason="the quickstart uses the offline LocalEncoder ([local] extra)"
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    table = out.split("How the first decision")[0].splitlines()
    rows = {line[:48].strip(): line[48:].split()[0] for line in table if len(line) > 48}
    assert rows["please refund invoice #4471"] == "billing"
    assert rows["I keep getting error 503 on the dashboard"] == "tech_support"
    assert rows["what is the capital of australia"] == "human"
    assert rows["write me a poem about the sea"] == "human"
    assert "How the first decision was made" in out
