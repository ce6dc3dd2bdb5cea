"""Fixtures of the benchmark tests (the shared ones are in the repository's conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tiny_intents(tmp_path: Path) -> tuple[Path, Path]:
    """A dataset in the CLINC150 layout: 8 intents, each clustered around one centre, and
    out-of-scope items around none; returns the JSON and the embeddings .npz."""
    labels = [f"intent{i}" for i in range(8)]
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(labels), 32))
    raw: dict[str, list[list[str]]] = {}
    arrays: dict[str, np.ndarray] = {}
    for split, per_label in (("train", 12), ("val", 8), ("test", 10)):
        items, vectors = [], []
        for label_id, label in enumerate(labels):
            for i in range(per_label):
                items.append([f"{split} {label} query number {i}", label])
                vectors.append(centres[label_id] + 0.6 * rng.normal(size=32))
        raw[split], arrays[split] = items, np.asarray(vectors, dtype=np.float32)
        raw[f"oos_{split}"] = [[f"{split} unrelated question {i}", "oos"] for i in range(40)]
        arrays[f"oos_{split}"] = rng.normal(size=(40, 32)).astype(np.float32)
    path, embeddings = tmp_path / "tiny.json", tmp_path / "tiny.npz"
    path.write_text(json.dumps(raw))
    np.savez(embeddings, **arrays)
    return path, embeddings
