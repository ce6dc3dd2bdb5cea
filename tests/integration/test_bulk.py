"""Bulk routing (`stratarouter_core.bulk`, `stratarouter route-bulk`): a Parquet file in, the
decisions `Router.route_batch` gives out, row for row, on the local engine and on Ray Data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from stratarouter_core import Route, Router
from stratarouter_core.errors import (
    BulkInputError,
    DimensionMismatchError,
    PersistenceError,
)

pa = pytest.importorskip("pyarrow", reason="bulk routing needs the [bulk] extra (make test has it)")
pq = pytest.importorskip("pyarrow.parquet", reason="bulk routing needs the [bulk] extra")

from stratarouter_core.bulk import BulkConfig, route_bulk  # noqa: E402

ROWS = 500


@pytest.fixture(scope="module")
def clinc(datasets_dir: Path) -> tuple[list[str], np.ndarray, dict[str, list[str]]]:
    """CLINC150 test texts and vectors (in-scope and out-of-scope) and train examples by label."""
    dataset = json.loads((datasets_dir / "clinc150.json").read_text())
    with np.load(datasets_dir / "clinc150.minilm.npz") as archive:
        vectors = np.concatenate([archive["test"], archive["oos_test"]]).astype(np.float32)
    texts = [t for t, _ in dataset["test"]] + [t for t, _ in dataset["oos_test"]]
    rows = np.random.default_rng(3).choice(len(texts), size=ROWS, replace=False)
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in dataset["train"]:
        by_label[label].append(text)
    return [texts[i] for i in rows], vectors[rows], by_label


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory, clinc, local_encoder) -> Path:
    _, _, by_label = clinc
    labels = sorted(by_label)[:30]
    router = Router(
        encoder=local_encoder, routes=[Route(name=n, examples=by_label[n][:8]) for n in labels]
    )
    router.build_index()
    path = tmp_path_factory.mktemp("bulk") / "router"
    router.save(path)
    return path


@pytest.fixture(scope="module")
def expected(router_dir, clinc, local_encoder):
    texts, vectors, _ = clinc
    return Router.load(router_dir, local_encoder).route_batch(texts, vectors)


def _write(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture(scope="module")
def queries(tmp_path_factory, clinc) -> Path:
    texts, vectors, _ = clinc
    folder = tmp_path_factory.mktemp("queries")
    return _write(
        folder / "queries.parquet",
        {"id": list(range(ROWS)), "text": texts, "embedding": [v.tolist() for v in vectors]},
    )


def _assert_same(decisions: dict, expected) -> None:
    assert decisions["route"] == [r.route_id for r in expected]
    # batches of another size take other BLAS paths: equal to float32 rounding, not bit for bit
    np.testing.assert_allclose(
        decisions["confidence"], [r.confidence for r in expected], rtol=1e-5, atol=1e-7
    )
    assert decisions["is_fallback"] == [r.is_fallback for r in expected]
    assert decisions["accepted"] == [r.route_id is not None and not r.is_fallback for r in expected]


def test_local_engine_equals_route_batch_row_for_row(router_dir, queries, expected, tmp_path):
    out = tmp_path / "decisions.parquet"
    config = BulkConfig(keep_columns=("id",), batch_size=128, candidates=3, progress=False)
    report = route_bulk(router_dir, queries, out, config)
    assert (report.rows, report.engine, report.encoded) == (ROWS, "local", False)
    decisions = pq.read_table(out).to_pydict()
    assert decisions["id"] == list(range(ROWS))
    _assert_same(decisions, expected)
    assert [c["route"] for c in decisions["candidates"][0]] == [
        c.route_id for c in expected[0].candidates[:3]
    ]
    assert any(r.route_id is None or r.is_fallback for r in expected)  # abstentions are covered


def test_text_only_input_is_encoded_in_batches(router_dir, clinc, local_encoder, tmp_path):
    texts, _, _ = clinc
    source = _write(tmp_path / "texts.parquet", {"query": texts[:120]})
    out = tmp_path / "decisions.parquet"
    config = BulkConfig(text_column="query", batch_size=64, progress=False)
    report = route_bulk(router_dir, source, out, config)
    assert report.encoded
    reference = Router.load(router_dir, local_encoder).route_batch(texts[:120])
    decisions = pq.read_table(out).to_pydict()
    assert decisions["route"] == [r.route_id for r in reference]
    np.testing.assert_allclose(decisions["confidence"], [r.confidence for r in reference], atol=1e-5)


@pytest.mark.parametrize(
    ("columns", "config", "error", "match"),
    [
        ({"query": ["hi"]}, BulkConfig(), BulkInputError, "no text column 'text'"),
        ({"text": ["hi"], "embedding": [[0.1] * 5]}, BulkConfig(), DimensionMismatchError, "384"),
        ({"text": ["hi"], "route": ["x"]}, BulkConfig(keep_columns=("route",)), BulkInputError, "clash"),
        ({"text": ["hi", "  "]}, BulkConfig(), BulkInputError, "empty or null text"),
        ({"text": [1, 2]}, BulkConfig(), BulkInputError, "not string"),
    ],
)
def test_bad_input_is_a_typed_error_and_writes_nothing(
    router_dir, tmp_path, columns, config, error, match
):
    source = _write(tmp_path / "bad.parquet", columns)
    out = tmp_path / "decisions.parquet"
    with pytest.raises(error, match=match):
        route_bulk(router_dir, source, out, config)
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_not_parquet_and_no_router_are_typed_errors(router_dir, queries, tmp_path):
    text_file = tmp_path / "queries.csv"
    text_file.write_text("text\nhello\n")
    with pytest.raises(BulkInputError, match="not a readable Parquet file"):
        route_bulk(router_dir, text_file, tmp_path / "out.parquet")
    with pytest.raises(PersistenceError, match="no saved router"):
        route_bulk(tmp_path / "missing", queries, tmp_path / "out.parquet")
    with pytest.raises(BulkInputError, match="is the input file"):
        route_bulk(router_dir, queries, queries)


def test_cli_routes_a_file_and_reports_errors_without_traceback(router_dir, queries, tmp_path):
    out = tmp_path / "cli.parquet"
    command = [sys.executable, "-m", "stratarouter_core.cli.main", "route-bulk"]
    ok = subprocess.run(
        [*command, "--router-dir", str(router_dir), "--input", str(queries), "--output", str(out),
         "--keep", "id", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"{ROWS} rows" in ok.stderr and pq.read_table(out).num_rows == ROWS
    bad = subprocess.run(
        [*command, "--router-dir", str(router_dir), "--input", str(tmp_path / "none.parquet"),
         "--output", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2
    assert "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_ray_engine_with_two_workers_equals_route_batch(router_dir, queries, expected, tmp_path):
    ray = pytest.importorskip("ray", reason="the Ray engine needs the [ray] extra (make test has it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # ten row groups: the actors share the file and their results must come back in order
        source = tmp_path / "groups.parquet"
        pq.write_table(pq.read_table(queries), source, row_group_size=ROWS // 10)
        out = tmp_path / "ray.parquet"
        config = BulkConfig(
            engine="ray", workers=2, keep_columns=("id",), batch_size=128, progress=False
        )
        report = route_bulk(router_dir, source, out, config)
        assert (report.rows, report.workers) == (ROWS, 2)
        decisions = pq.read_table(out).to_pydict()
        assert decisions["id"] == list(range(ROWS))
        _assert_same(decisions, expected)
    finally:
        ray.shutdown()
