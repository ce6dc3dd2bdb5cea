"""`stratarouter bench speed`: latency, throughput, build/fit time and memory, side by side.

All figures come from one run on one machine; quote medians and ratios, not single numbers.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._timing import percentiles, rss_mb, time_each
from .semantic_router_baseline import add_compare_argument

__all__ = ["register", "run"]


def register(benches: Any) -> None:
    """Add the `speed` benchmark."""
    parser = benches.add_parser("speed", help="routing latency, throughput, build time, memory")
    parser.add_argument("--dataset", required=True, help="JSON dataset in the CLINC150 layout")
    parser.add_argument(
        "--embeddings", required=True, help=".npz with one embedding array per split"
    )
    parser.add_argument(
        "--queries", type=int, default=5000, help="timed route() calls (default 5000)"
    )
    add_compare_argument(parser)
    parser.add_argument(
        "--scale",
        action="store_true",
        help="also time synthetic route sets up to 1,000,000 examples / 10,000 routes",
    )
    parser.add_argument("--scale-max", type=int, default=1_000_000, help="largest synthetic set")
    parser.add_argument("--plot", default="speed_scale.png", help="PNG written by --scale")
    parser.add_argument(
        "--skip-encoder", action="store_true", help="skip the end-to-end encoder figures"
    )
    parser.set_defaults(run=run)


def _throughput(
    route_batch: Callable[[Sequence[str], NDArray[np.float32]], object],
    texts: Sequence[str],
    vectors: NDArray[np.float32],
    batch: int,
) -> float:
    n = max(batch * 4, min(4096, len(texts)))
    n = min(n - n % batch, len(texts) - len(texts) % batch) or batch
    route_batch(texts[:batch], vectors[:batch])
    start = time.perf_counter()
    for i in range(0, n, batch):
        route_batch(texts[i : i + batch], vectors[i : i + batch])
    return n / (time.perf_counter() - start)


def _dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run(args: argparse.Namespace) -> int:
    """Measure and print one table."""
    from stratarouter_core.config import RouterConfig
    from stratarouter_core.router import Router
    from stratarouter_core.types import Route

    from .datasets import PrecomputedEncoder, load_intent_dataset

    data = load_intent_dataset(args.dataset, args.embeddings)
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    every = train + val + test
    assert every.vectors is not None and test.vectors is not None
    encoder = PrecomputedEncoder(every.texts, every.vectors, data.embedding_model)
    by_label: dict[str, list[str]] = {}
    for text, label in zip(train.texts, train.labels):
        if label is not None:
            by_label.setdefault(label, []).append(text)
    # The libraries fit() and route_batch() import are not the router: load them beforehand.
    for library in ("scipy.optimize", "scipy.sparse", "sklearn.isotonic", "sklearn.linear_model"):
        importlib.import_module(library)

    gc.collect()
    rss_before = rss_mb()
    # The vectors are precomputed: no encoding cache, so memory counts the router alone.
    router = Router(
        encoder=encoder,
        config=RouterConfig(encoder_cache_size=0),
        routes=[Route(name=n, examples=e) for n, e in by_label.items()],
    )
    start = time.perf_counter()
    router.build_index()
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    router.fit(val.texts, val.labels, val.vectors)
    fit_s = time.perf_counter() - start
    gc.collect()
    memory_mb = rss_mb() - rss_before
    saved = Path(tempfile.mkdtemp()) / "router"
    router.save(saved)
    disk_mb = _dir_size_mb(saved)
    shutil.rmtree(saved.parent)

    texts, vectors = test.texts, test.vectors
    n = args.queries
    ours, batches = _time_router(router, texts, vectors, n)
    # What dropping the router gives back: its own arrays, without allocator or library leftovers.
    gc.collect()
    rss_with_router = rss_mb()
    del router
    gc.collect()
    held_mb = rss_with_router - rss_mb()
    rows: list[tuple[str, str, str]] = [
        ("routes / examples", f"{len(by_label)} / {sum(map(len, by_label.values()))}", ""),
        ("route() P50 / P99 / P99.9, embedding given", _fmt_us(ours), ""),
        *[(f"route_batch() at batch {b}", f"{q:,.0f} queries/s", "") for b, q in batches.items()],
        ("build_index()", f"{build_s:.2f} s", ""),
        ("fit() on val", f"{fit_s:.1f} s", ""),
        ("resident memory added by build + fit (libraries preloaded)", f"{memory_mb:.1f} MB", ""),
        ("resident memory freed when the router is dropped", f"{held_mb:.1f} MB", ""),
        ("saved size on disk", f"{disk_mb:.1f} MB", ""),
    ]
    if not args.skip_encoder:
        rows += _encoder_rows(by_label, texts)
    if "semantic-router" in args.compare:
        rows = _compare(rows, by_label, train, test, ours, n)
    _print_table(rows, "semantic-router" in args.compare)
    if args.scale:
        from .scale import run_scale

        run_scale(train, test, args.scale_max, args.plot)
    return 0


def _time_router(
    router: Any, texts: Sequence[str], vectors: NDArray[np.float32], n: int
) -> tuple[tuple[float, float, float], dict[int, float]]:
    """route() percentiles (us) over n calls, and route_batch() queries/s per batch size."""
    ours = percentiles(
        time_each(lambda i: router.route(texts[i % len(texts)], vectors[i % len(texts)]), n)
    )
    return ours, {b: _throughput(router.route_batch, texts, vectors, b) for b in (1, 32, 1024)}


def _encoder_rows(
    by_label: dict[str, list[str]], texts: Sequence[str]
) -> list[tuple[str, str, str]]:
    from stratarouter_core.encoders.local import LocalEncoder
    from stratarouter_core.router import Router
    from stratarouter_core.types import Route

    router = Router(
        encoder=LocalEncoder(), routes=[Route(name=n, examples=e[:10]) for n, e in by_label.items()]
    )
    router.build_index()
    fresh = [f"{t} please" for t in texts[:600]]  # unseen texts: nothing served from the cache
    single = percentiles(time_each(lambda i: router.route(fresh[i]), 300, warmup=20))
    start = time.perf_counter()
    router.route_batch(fresh[300:600])
    batched = 300 / (time.perf_counter() - start)
    return [
        ("end to end with LocalEncoder: route(text) P50 / P99", _fmt_us(single[:2]), ""),
        ("end to end with LocalEncoder: route_batch(texts)", f"{batched:,.0f} queries/s", ""),
    ]


def _compare(
    rows: list[tuple[str, str, str]],
    by_label: dict[str, list[str]],
    train: Any,
    test: Any,
    ours: tuple[float, float, float],
    n: int,
) -> list[tuple[str, str, str]]:
    from .semantic_router_baseline import SemanticRouterBaseline

    gc.collect()
    rss_before = rss_mb()
    baseline = SemanticRouterBaseline(by_label, (train.texts, train.vectors), setting="default")
    memory = rss_mb() - rss_before
    texts, vectors = test.texts, test.vectors
    theirs = percentiles(
        time_each(
            lambda i: baseline.route(texts[i % len(texts)], vectors[i % len(texts)]),
            min(n, 2000),
            warmup=50,
        )
    )
    ratio = f"{theirs[0] / ours[0]:.0f}x / {theirs[1] / ours[1]:.0f}x faster"
    rows[1] = (rows[1][0], rows[1][1], f"{_fmt_us(theirs)}  ({ratio})")
    rows[2] = (rows[2][0], rows[2][1], f"{1 / (theirs[0] / 1e6):,.0f} queries/s (no batch API)")
    rows[5] = (rows[5][0], rows[5][1], f"{baseline.build_seconds:.2f} s")
    rows[7] = (rows[7][0], rows[7][1], f"{memory:.1f} MB")  # its build, next to ours
    return rows


def _fmt_us(values: Sequence[float]) -> str:
    return " / ".join(f"{v / 1000:.3f} ms" if v >= 1000 else f"{v:.0f} us" for v in values)


def _print_table(rows: Sequence[tuple[str, str, str]], compared: bool) -> None:
    header = ["figure", "StrataRouter"] + (
        ["semantic-router 1.1 (same embeddings)"] if compared else []
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, ours, theirs in rows:
        cells = [name, ours] + ([theirs or "-"] if compared else [])
        print("| " + " | ".join(cells) + " |")
