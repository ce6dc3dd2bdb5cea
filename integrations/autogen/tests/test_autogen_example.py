from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "autogen_group_chat.py"


def test_example_runs_offline_and_routes_every_ticket(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    handlers = [line.split("->")[1].split("confidence")[0].strip()
                for line in proc.stdout.splitlines() if "->" in line]
    assert handlers == [
        "billing", "tech_support", "sales", "sales (model selector)",
        "billing", "tech_support", "sales", "human",
    ]
