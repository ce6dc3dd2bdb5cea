from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langchain_support_bot.py"


@pytest.mark.parametrize("encoder", ["default", "hashing"])
def test_support_bot_example_runs_offline(encoder):
    env = {**os.environ, "STRATAROUTER_EXAMPLE_ENCODER": encoder}
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    lines = out.splitlines()
    handlers = [line.split()[0] for line in lines if "confidence=" in line]
    assert handlers == ["billing", "tech_support", "sales", "human"], out
    assert "Billing here" in out and "A human agent" in out
    assert "streamed" in lines[-1] and int(lines[-1].split()[1]) > 5
