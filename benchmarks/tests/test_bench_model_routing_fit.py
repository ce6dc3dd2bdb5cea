"""`stratarouter bench model-routing-fit` end to end on a small synthetic graded file."""

from __future__ import annotations

import json

import pytest
from stratarouter_core.cli.main import main
from stratarouter_core.errors import ConfigError
from test_bench_model_routing import _write

from stratarouter_bench import model_routing_fit


def test_each_size_is_fitted_and_reported(tmp_path, capsys) -> None:
    dataset, vectors = _write(tmp_path)
    args = ["bench", "model-routing-fit", "--dataset", str(dataset), "--embeddings", str(vectors)]
    assert main([*args, "--sizes", "200,900", "--models", "2", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)
    assert [(p["n_queries"], p["n_models"]) for p in points] == [(200, 2), (900, 2)]
    assert all(p["fit_seconds"] > 0 and p["peak_rss_mb"] > 10 for p in points)
    assert main([*args, "--sizes", "300"]) == 0
    table = capsys.readouterr().out
    assert "| 300 | 3 |" in table and "MB |" in table


@pytest.mark.parametrize("sizes", ["", "10", "a,b"])
def test_bad_sizes_are_config_errors(sizes) -> None:
    with pytest.raises(ConfigError, match="--sizes"):
        model_routing_fit._sizes(sizes)
