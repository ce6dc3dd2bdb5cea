"""`stratarouter bench route-propagation` runs bounded against real servers and PostgreSQL."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="needs stratarouter-runtime[server]")
pytest.importorskip("psycopg", reason="needs stratarouter-runtime[postgres]")

from stratarouter_core.cli.main import main


def test_route_propagation_reports_every_update_served_by_all(
    capsys: pytest.CaptureFixture[str], postgres_dsn: str
) -> None:
    status = main(
        [
            "bench",
            "route-propagation",
            "--servers",
            "2",
            "--updates",
            "3",
            "--database-url",
            postgres_dsn,
            "--json",
        ]
    )
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["servers"] == 2 and result["updates"] == 3
    assert 0 < result["ack_p50_ms"] <= result["ack_max_ms"]
    assert 0 < result["all_p50_ms"] <= result["all_max_ms"] < 10_000
    assert result["ack_p50_ms"] <= result["all_max_ms"]  # served by all after its own ack
