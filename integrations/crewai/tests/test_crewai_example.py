from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "crewai_delegation.py"


def test_example_runs_offline_and_routes_every_ticket(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "CREWAI_STORAGE_DIR": str(tmp_path / "storage")}
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    handlers = [line.split("->")[1].split()[0:2] for line in proc.stdout.splitlines()
                if "->" in line]
    assert handlers == [
        ["billing", "confidence"], ["tech_support", "confidence"], ["sales", "confidence"],
        ["generalist", "confidence"],
        ["billing", "confidence"], ["tech_support", "confidence"], ["sales", "confidence"],
        ["manager", "LLM"],
        ["billing", "confidence"], ["tech_support", "confidence"], ["sales", "confidence"],
        ["human", "confidence"],
    ]
