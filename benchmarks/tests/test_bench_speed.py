"""`stratarouter bench speed` (and `--scale`) on a tiny dataset in the CLINC150 layout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from stratarouter_core.cli.main import main

from stratarouter_bench.datasets import load_intent_dataset
from stratarouter_bench.scale import _synthetic

LABELS = ["billing", "weather", "travel", "music", "health", "sports"]
DIMENSION = 32


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """Six intents whose vectors cluster around one centre each, plus out-of-scope items."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(LABELS), DIMENSION))
    raw: dict[str, list[list[str]]] = {}
    arrays: dict[str, np.ndarray] = {}
    # val: 68 queries, above the 50 below which fit warns that calibration is coarse
    for split, per_label in (("train", 20), ("val", 10), ("test", 6)):
        items, vectors = [], []
        for label_id, label in enumerate(LABELS):
            for i in range(per_label):
                items.append([f"{split} {label} query number {i}", label])
                vectors.append(centres[label_id] + 0.3 * rng.normal(size=DIMENSION))
        raw[split] = items
        arrays[split] = np.asarray(vectors, dtype=np.float32)
        raw[f"oos_{split}"] = [[f"{split} unrelated question {i}", "oos"] for i in range(8)]
        arrays[f"oos_{split}"] = rng.normal(size=(8, DIMENSION)).astype(np.float32)
    path, embeddings = tmp_path / "tiny.json", tmp_path / "tiny.npz"
    path.write_text(json.dumps(raw))
    np.savez(embeddings, **arrays)
    return path, embeddings


def test_speed_table_has_every_figure(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, embeddings = dataset
    args = ["bench", "speed", "--dataset", str(path), "--embeddings", str(embeddings)]
    assert main([*args, "--queries", "300", "--skip-encoder"]) == 0
    table = capsys.readouterr().out
    assert "| routes / examples | 6 / 120 |" in table
    latencies = re.search(r"route\(\) P50 / P99 / P99\.9[^|]*\| ([^|]+) \|", table)
    assert latencies is not None and latencies.group(1).count("/") == 2
    for batch in (1, 32, 1024):
        rate = re.search(rf"route_batch\(\) at batch {batch} \| ([\d,]+) queries/s", table)
        assert rate is not None and int(rate.group(1).replace(",", "")) > 0
    for figure in ("build_index()", "fit() on val", "resident memory added", "saved size"):
        assert figure in table


def test_scale_builds_the_synthetic_set_and_plots(
    dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="the plot needs the [plot] extra")
    path, embeddings = dataset
    plot = tmp_path / "scale.png"
    args = ["bench", "speed", "--dataset", str(path), "--embeddings", str(embeddings)]
    assert main([*args, "--queries", "50", "--skip-encoder", "--scale", "--scale-max", "1500",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| 1,500 \| 150 \| [\d.]+ s \| \d+ us \| \d+ us \| -?\d+ MB \|", out)
    assert "15,000" not in out  # --scale-max stops before the next size
    assert plot.stat().st_size > 0


def test_synthetic_routes_reuse_labels_with_distinct_offsets(dataset: tuple[Path, Path]) -> None:
    train = load_intent_dataset(*dataset).split("train")
    texts, vectors, owner = _synthetic(train, 240, 12)
    assert len(texts) == len(vectors) == len(owner) == 240
    assert sorted(set(owner)) == list(range(12)) and owner.count(7) == 20
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert len(set(texts)) > 200  # route-tagged texts stay distinct for the encoder lookup
    # routes 0 and 6 copy the same label (6 labels); the offset keeps their centroids apart
    first, seventh = vectors[np.array(owner) == 0].mean(0), vectors[np.array(owner) == 6].mean(0)
    assert not np.allclose(first, seventh, atol=1e-3)
