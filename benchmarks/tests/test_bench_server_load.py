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
            "--protocols",
            "rest,grpc",
            "--duration",
            "0.5",
            "--json",
        ]
    )
    assert status == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["protocol"], r["connections"]) for r in results] == [
        (mode, protocol, connections)
        for mode in ("embedding", "encode")
        for protocol in ("rest", "grpc")
        for connections in (1, 4)
    ]
    for r in results:
        assert r["errors"] == 0 and r["requests"] > 0 and r["rps"] > 0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    # embeddings given: the server never encoded, over REST or gRPC
    assert results[3]["mean_encode_batch"] == 0.0
    assert results[-1]["mean_encode_batch"] >= 1.0
