"""HNSW candidate selection agrees with exact search."""

from __future__ import annotations

import numpy as np

from stratarouter_core.config import IndexConfig
from stratarouter_core.index import ExactIndex, HnswIndex, build_index


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_exact_search_is_sorted_and_exact() -> None:
    data, queries = unit(300, 32, 0), unit(20, 32, 1)
    ids, sims = ExactIndex(data).search(queries, 10)
    brute = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    assert (ids == brute).all()
    assert (np.diff(sims, axis=1) <= 0).all()


def test_hnsw_recall_at_10_against_exact() -> None:
    data, queries = unit(5000, 64, 2), unit(300, 64, 3)
    exact, _ = ExactIndex(data).search(queries, 10)
    approx, sims = HnswIndex(data, IndexConfig()).search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.tolist(), exact.tolist())])
    assert recall >= 0.99
    np.testing.assert_allclose(sims, np.take_along_axis(queries @ data.T, approx, 1), atol=1e-5)


def test_build_index_switches_to_hnsw_above_the_limit() -> None:
    data = unit(50, 16, 4)
    assert build_index(data, IndexConfig(exact_max_routes=100)).kind == "exact"
    assert build_index(data, IndexConfig(exact_max_routes=10)).kind == "hnsw"
