"""`stratarouter bench grade-feed` end to end on a small synthetic graded file."""

from __future__ import annotations

import json

import pytest
from stratarouter_core.cli.main import main
from test_bench_model_routing import _write


def _args(tmp_path) -> list[str]:
    dataset, vectors = _write(tmp_path, n_train=300, n_test=40)
    return ["bench", "grade-feed", "--dataset", str(dataset), "--embeddings", str(vectors)]


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_every_grade_is_learned_elsewhere_and_after_a_restart(
    tmp_path, capsys, request, store
) -> None:
    extra = []
    if store == "postgresql":
        extra = ["--database-url", request.getfixturevalue("postgres_dsn")]
    assert main([*_args(tmp_path), "--grades", "30", "--poll-s", "0.02", *extra, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["grades"] == 30 and figures["store"] == store
    assert 0 < figures["ack_ms_p50"] <= figures["ack_ms_max"]
    assert figures["ack_ms_p50"] <= figures["learned_elsewhere_ms_p50"] < 10_000
    assert figures["restart_learned"] == 30
    # a graded query is answered from its grades: the choice on them gets better
    assert figures["quality_after"] > figures["quality_before"]


def test_the_table_and_bad_arguments(tmp_path, capsys) -> None:
    args = _args(tmp_path)
    assert main([*args, "--grades", "5"]) == 0
    table = capsys.readouterr().out
    assert "| ack_ms |" in table and "restart: 5 grades learned" in table
    for bad in (["--grades", "0"], ["--grades", "5000"], ["--poll-s", "0"]):
        assert main([*args, *bad]) == 2
        assert bad[0] in capsys.readouterr().err
