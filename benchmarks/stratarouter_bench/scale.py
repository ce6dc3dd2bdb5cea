"""Synthetic route sets built from a dataset, to show how cost grows with routes and examples.

Each synthetic route copies the examples of one real label, shifted by its own random offset
(so routes stay distinct), until the requested number of examples is reached.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from ._timing import percentiles, rss_mb, time_each
from .datasets import PrecomputedEncoder, Split

__all__ = ["SCALES", "run_scale"]

SCALES = [(1_500, 150), (15_000, 150), (150_000, 1_500), (1_000_000, 10_000)]


def _synthetic(
    train: Split, n_examples: int, n_routes: int, seed: int = 0
) -> tuple[list[str], Any, list[int]]:
    assert train.vectors is not None
    rng = np.random.default_rng(seed)
    labels = sorted({x for x in train.labels if x is not None})
    rows_of = {label: [i for i, x in enumerate(train.labels) if x == label] for label in labels}
    per_route = n_examples // n_routes
    texts, owner, chunks = [], [], []
    for route in range(n_routes):
        rows = rows_of[labels[route % len(labels)]]
        picked = rng.choice(rows, size=per_route, replace=per_route > len(rows))
        offset = rng.normal(
            scale=0.35 / np.sqrt(train.vectors.shape[1]), size=train.vectors.shape[1]
        )
        chunk = train.vectors[picked] + offset.astype(np.float32) * (route >= len(labels))
        chunks.append(chunk)
        texts += [f"{train.texts[i]} r{route}" for i in picked]
        owner += [route] * per_route
    vectors = np.vstack(chunks).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors, owner


def run_scale(train: Split, test: Split, max_examples: int, plot_path: str) -> None:
    """Build each synthetic set, time build and route(), report memory; write a plot."""
    from stratarouter_core.config import RouterConfig
    from stratarouter_core.router import Router
    from stratarouter_core.types import Route

    assert test.vectors is not None
    print("\n| examples | routes | build_index() | route() P50 | route() P99 | memory added |")
    print("|---|---|---|---|---|---|")
    results = []
    for n_examples, n_routes in [s for s in SCALES if s[0] <= max_examples]:
        texts, vectors, owner = _synthetic(train, n_examples, n_routes)
        encoder = PrecomputedEncoder(texts, vectors, "synthetic")
        grouped: dict[int, list[str]] = {}
        for text, route in zip(texts, owner):
            grouped.setdefault(route, []).append(text)
        routes = [Route(name=f"route_{r}", examples=grouped[r]) for r in range(n_routes)]
        gc.collect()
        rss = rss_mb()
        router = Router(encoder=encoder, config=RouterConfig(encoder_cache_size=0), routes=routes)
        start = time.perf_counter()
        router.build_index()
        build_s = time.perf_counter() - start
        gc.collect()
        memory = rss_mb() - rss
        p50, p99, _ = _time_routes(router, test.texts, test.vectors, 3000)
        results.append((n_examples, n_routes, build_s, p50, p99, memory))
        print(
            f"| {n_examples:,} | {n_routes:,} | {build_s:.1f} s | {p50:.0f} us | {p99:.0f} us "
            f"| {memory:.0f} MB |",
            flush=True,
        )
        del router, encoder, routes
    _plot(results, plot_path)


def _time_routes(router: Any, texts: list[str], vectors: Any, n: int) -> tuple[float, float, float]:
    return percentiles(
        time_each(lambda i: router.route(texts[i % len(texts)], vectors[i % len(texts)]), n)
    )


def _plot(results: list[tuple[int, int, float, float, float, float]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'stratarouter[plot]')")
        return
    examples = [r[0] for r in results]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(examples, [r[3] for r in results], marker="o", label="P50")
    axes[0].plot(examples, [r[4] for r in results], marker="o", label="P99")
    axes[0].set(title="route() latency (us)", xscale="log", xlabel="examples")
    axes[0].legend()
    axes[1].plot(examples, [r[2] for r in results], marker="o")
    axes[1].set(title="build_index() (s)", xscale="log", xlabel="examples")
    axes[2].plot(examples, [r[5] for r in results], marker="o")
    axes[2].set(title="memory added (MB)", xscale="log", xlabel="examples")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"plot written to {path}")
