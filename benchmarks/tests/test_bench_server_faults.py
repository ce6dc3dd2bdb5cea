"""bench server-faults, bounded: typed gateway errors while the provider fails, never a 500;
the breaker stops the calls; the server answers 200 again once the provider recovers."""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn", reason="the server needs stratarouter-runtime[server]")
pytest.importorskip("openai", reason="the local provider client needs the [openai] extra")

from stratarouter_bench.server_faults import run_phases


def test_faults_get_typed_answers_and_the_server_recovers() -> None:
    healthy, failing, hanging, recovered = run_phases(12)
    assert healthy["codes"] == {200: 12} and healthy["provider_calls"] == 12
    for phase in (failing, hanging):
        assert set(phase["codes"]) <= {502, 503, 504}, phase  # typed gateway errors, no 500
    # the breaker opens: far fewer provider calls than 12 requests x 2 attempts
    assert failing["provider_calls"] < 12
    assert recovered["codes"] == {200: 12}
