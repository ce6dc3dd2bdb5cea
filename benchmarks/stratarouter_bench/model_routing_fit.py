"""`stratarouter bench model-routing-fit`: ModelRouter.fit time and memory as N grows.

A graded file's training split is resampled to each size N: rows drawn with replacement,
each vector jittered (Gaussian noise of 0.02 per dimension, then re-normalised) so copies
are near neighbours rather than duplicates, and a tenth of the grades flipped. That keeps
the embedding geometry and the grades' structure of the real file at sizes it does not have.
Each size is fitted in a fresh process, which reports the fit's wall time and the process's
peak resident memory (the data included). Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from stratarouter_core.errors import ConfigError

from .model_routing import load_graded

__all__ = ["FitPoint", "register", "run"]

_JITTER = 0.02
_FLIPPED = 0.1


def register(benches: Any) -> None:
    """Add the `model-routing-fit` benchmark."""
    parser = benches.add_parser(
        "model-routing-fit", help="model routing: fit time and peak memory against N"
    )
    parser.add_argument("--dataset", required=True, help="graded JSON (models, train, test)")
    parser.add_argument("--embeddings", required=True, help=".npz with train and test vectors")
    parser.add_argument(
        "--sizes",
        default="5000,20000,50000",
        help="comma-separated numbers of graded queries (default 5000,20000,50000)",
    )
    parser.add_argument(
        "--models", type=int, help="fit on the first N models only (default: every model)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class FitPoint:
    """One size's fit."""

    n_queries: int
    n_models: int
    fit_seconds: float
    peak_rss_mb: float


def _sizes(spec: str) -> list[int]:
    try:
        sizes = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError as exc:
        raise ConfigError(f"--sizes {spec!r}: expected comma-separated integers") from exc
    if not sizes or min(sizes) < 50:
        raise ConfigError(f"--sizes {spec!r}: every size must be at least 50 queries")
    return sizes


def _fit_one(dataset: str, embeddings: str, n: int, n_models: int | None, seed: int) -> FitPoint:
    """Resample, fit and measure (runs in a child process)."""
    from stratarouter_core.model_routing import ModelRouter

    from .datasets import PrecomputedEncoder

    data = load_graded(dataset, embeddings)
    models = data.models[:n_models] if n_models else data.models
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(data.train_queries), n)
    vectors = data.train_vectors[rows] + rng.normal(0.0, _JITTER, (n, data.train_vectors.shape[1]))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    grades = data.train_scores[rows][:, : len(models)]
    grades = np.where(rng.random(grades.shape) < _FLIPPED, 1.0 - grades, grades)
    queries = [f"{data.train_queries[r]} #{i}" for i, r in enumerate(rows)]
    scores = [{m.name: float(g) for m, g in zip(models, row) if not np.isnan(g)} for row in grades]
    encoder = PrecomputedEncoder(queries, vectors, data.embedding_model)
    router = ModelRouter(models, encoder=encoder)
    started = time.perf_counter()
    router.fit(queries, scores, vectors)
    seconds = time.perf_counter() - started
    # ru_maxrss is in KB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    return FitPoint(n, len(models), seconds, peak)


def run(args: argparse.Namespace) -> int:
    """Fit at every size, each in a fresh process, and print the table (or JSON)."""
    sizes = _sizes(args.sizes)
    if args.models is not None and args.models < 1:
        raise ConfigError(f"--models {args.models}: expected at least 1")
    context = multiprocessing.get_context("spawn")
    points = []
    for n in sizes:
        with context.Pool(1) as pool:
            points.append(pool.apply(_fit_one, (args.dataset, args.embeddings, n, args.models, 0)))
    if args.json:
        print(json.dumps([asdict(p) for p in points], indent=2))
        return 0
    print("| graded queries | models | fit | peak memory |")
    print("|---|---|---|---|")
    for p in points:
        print(
            f"| {p.n_queries:,} | {p.n_models} | {p.fit_seconds:.1f} s | {p.peak_rss_mb:,.0f} MB |"
        )
    return 0
