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
    handlers = [line.split("->")[1].rsplit("confidence", 1)[0].strip()
                for line in proc.stdout.splitlines() if "->" in line]
    teams = ["Billing Specialist", "Tech Support", "Account Exec"]
    assert handlers == [
        *teams, "generalist",                  # sequential: targets= maps routes to roles
        *teams, "(manager LLM)",               # hierarchical: the LLM decides on abstain
        "billing", "tech_support", "sales", "human",   # flow: listener labels
    ], proc.stdout
