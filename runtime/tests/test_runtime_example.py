"""examples/runtime_quickstart.py runs offline and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("encoder", ["default", "hashing"])
def test_runtime_quickstart_shows_cache_batch_retry_and_breaker(encoder):
    pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if encoder == "hashing":
        env["STRATAROUTER_EXAMPLE_ENCODER"] = "hashing"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "runtime_quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=env,
    )
    # a failed execution and an opening breaker are logged as warnings: with no logging
    # configured in the example, the package's NullHandler keeps them off stderr
    assert done.stderr == ""
    out = done.stdout
    lines = {line.split("]")[0].strip("["): [] for line in out.splitlines()}
    for line in out.splitlines():
        lines[line.split("]")[0].strip("[")].append(line)
    assert "cache hit=True" in lines["cache"][0]
    assert "provider calls so far: 1" in lines["cache"][0]
    assert "8 concurrent identical queries -> 1 provider call, 7 de-duplicated" in lines["batch"][0]
    assert "ProviderServerError (HTTP 500) -> ok" in lines["retry"][0]
    assert "breaker openai:gpt-4o is now open" in lines["breaker"][0]
    assert "refused by the open breaker: 0 provider requests" in lines["breaker"][1]
    assert "'cached': 1" in lines["metrics"][0] and "'deduplicated': 7" in lines["metrics"][0]
