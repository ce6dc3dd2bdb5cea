"""`stratarouter bench server-load` runs bounded, against a real server, and reports figures."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="needs stratarouter-runtime[server]")

from stratarouter_core.cli.main import main


def test_server_load_reports_every_level_without_errors(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "bench",
            "server-load",
            "--encoder",
            "hashing",
            "--modes",
            "embedding,encode",
            "--connections",
            "1,4",
            "--duration",
            "0.5",
            "--json",
        ]
    )
    assert status == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["connections"]) for r in results] == [
        ("embedding", 1),
        ("embedding", 4),
        ("encode", 1),
        ("encode", 4),
    ]
    for r in results:
        assert r["errors"] == 0 and r["requests"] > 0 and r["rps"] > 0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert results[0]["mean_encode_batch"] == 0.0  # embeddings given: the server never encoded
    assert results[-1]["mean_encode_batch"] >= 1.0
