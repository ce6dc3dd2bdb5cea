"""`stratarouter bench scenarios` end to end on a tiny dataset in the CLINC150 layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from stratarouter_core.cli.main import main

LABELS = [f"intent{i}" for i in range(8)]
DIMENSION = 32


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """Eight intents clustered around one centre each, and out-of-scope items around none."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(LABELS), DIMENSION))
    raw: dict[str, list[list[str]]] = {}
    arrays: dict[str, np.ndarray] = {}
    for split, per_label in (("train", 12), ("val", 4), ("test", 10)):
        items, vectors = [], []
        for label_id, label in enumerate(LABELS):
            for i in range(per_label):
                items.append([f"{split} {label} query number {i}", label])
                vectors.append(centres[label_id] + 0.4 * rng.normal(size=DIMENSION))
        raw[split], arrays[split] = items, np.asarray(vectors, dtype=np.float32)
        raw[f"oos_{split}"] = [[f"{split} unrelated question {i}", "oos"] for i in range(40)]
        arrays[f"oos_{split}"] = rng.normal(size=(40, DIMENSION)).astype(np.float32)
    path, embeddings = tmp_path / "tiny.json", tmp_path / "tiny.npz"
    path.write_text(json.dumps(raw))
    np.savez(embeddings, **arrays)
    return path, embeddings


def test_scenarios_report_every_method_and_figure(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, embeddings = dataset
    args = ["bench", "scenarios", "--dataset", str(path), "--embeddings", str(embeddings),
            "--seeds", "1", "--configurations", "2x3,4x5", "--compare", "semantic-router", "--json"]
    assert main(args) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {"R=2 K=3", "R=4 K=5"}
    for by_method in figures.values():
        assert set(by_method) == {"stratarouter", "semantic-router", "nearest-example"}
        ours = by_method["stratarouter"]
        # Well-separated clusters: right routes, and random vectors are rejected.
        assert ours["top1"] > 0.9 and ours["decision_accuracy"] >= 0.7
        assert ours["far_rejection"] > 0.5 and 0.0 <= ours["ece"] <= 1.0
        assert by_method["semantic-router"]["far_rejection"] == 0.0  # its default never abstains
        assert by_method["nearest-example"]["decision_accuracy"] is None


def test_scenarios_table_and_bad_configuration(
    dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, embeddings = dataset
    base = ["bench", "scenarios", "--dataset", str(path), "--embeddings", str(embeddings)]
    assert main([*base, "--seeds", "1", "--configurations", "3x4"]) == 0
    table = capsys.readouterr().out
    assert "| 3 × 4 | stratarouter |" in table and "| **mean** | nearest-example |" in table
    with pytest.raises(SystemExit):
        main([*base, "--configurations", "3by4"])
