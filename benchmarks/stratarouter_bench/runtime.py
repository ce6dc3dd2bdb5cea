"""`stratarouter bench runtime`: cache hit rate, de-duplication, cache latency, bridge overhead.

Every request goes through the real `CoreRuntimeBridge` (default `RuntimeConfig`: memory cache
with its threshold and guard, batching on; memory state unless said; the report lists them)
and the real OpenAI SDK client to the offline `FakeProviderServer` on 127.0.0.1, which counts the
calls and answers "answer to: <query>", so every served answer names the query it was made for.

1. Replayed workload. Popularity slots: --clinc-slots distinct in-scope CLINC150 test queries
   (one question each) and --qqp-slots pairs of qqp_pairs.json (two questions each; the file's
   37% duplicates), both sampled with --seed and shuffled into popularity ranks. Each of the
   --requests requests draws a rank r with probability proportional to 1/r^s (s = --zipf), then
   one question of that slot (50/50 for a pair). So repeats are exact repeats, the second
   question of a duplicate pair is a labelled paraphrase (serving its twin's answer is right),
   and the second question of a non-duplicate pair is a near miss (serving its twin's answer is
   wrong). Requests run one after another. A hit is judged *correct* when the served answer was
   made for the same question or a labelled duplicate, *wrong* for a labelled non-duplicate
   twin or a CLINC150 query of another intent, *unlabelled* otherwise (same intent, or across
   datasets). Cost saved: hits x the mean cost of the calls made (price table; the fake
   server's token counts are word counts).
2. De-duplication: --bursts bursts of each kind, --burst-size requests issued at once
   (asyncio.gather): identical, surface variants (case/punctuation/space), reworded (filler
   words), a QQP duplicate pair, a QQP near-miss pair; batching on and off.
3. Cache lookup latency (p50/p99) of the bridge's own cache, memory and Redis, filled with
   --latency-entries CLINC150 train queries; exact-tier lookups of stored queries and
   semantic-path lookups of test queries.
4. Bridge overhead: bridge.execute minus a direct SDK call (median of per-query differences,
   interleaved), memory and SQLite state, cache miss and cache hit. Query embeddings are
   precomputed, so no encoding time is included.

CLINC150 vectors come from --embeddings; other texts are encoded once with the offline
LocalEncoder and cached under --cache-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.encoders.base import BaseEncoder
from stratarouter_core.errors import ConfigError, DimensionMismatchError
from stratarouter_runtime import CacheConfig, RuntimeConfig
from stratarouter_runtime.testing import FakeProviderServer

from . import _runtime_sections as sections
from ._runtime_workload import REQUEST_KINDS, Workload, build_workload, bursts
from .cache import DEFAULT_CACHE_DIR, load_pairs
from .datasets import PrecomputedEncoder, Split, load_intent_dataset

__all__ = ["register", "run"]

DATA = Path("..") / "shared" / "datasets"


def register(benches: Any) -> None:
    """Add the `runtime` benchmark to the `bench` sub-command group."""
    parser = benches.add_parser(
        "runtime",
        help="runtime: cache hit rate, de-duplication, cache latency, overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--dataset",
        type=Path,
        default=DATA / "clinc150.json",
        help="CLINC150-layout JSON (default: %(default)s, from the current directory)",
    )
    add(
        "--embeddings",
        type=Path,
        default=DATA / "clinc150.minilm.npz",
        help="its all-MiniLM-L6-v2 vectors, one array per split (default: %(default)s)",
    )
    add(
        "--pairs",
        type=Path,
        default=DATA / "qqp_pairs.json",
        help="labelled pairs (default: %(default)s)",
    )
    add("--requests", type=_count, default=5000, help="replayed requests (default %(default)s)")
    add("--clinc-slots", type=_count0, default=1000, help="CLINC150 queries in the workload")
    add("--qqp-slots", type=_count0, default=1000, help="QQP pairs in the workload")
    add("--zipf", type=_exponent, default=1.0, help="Zipf exponent s of slot popularity (>= 0)")
    add("--seed", type=int, default=0, help="seed of every random choice")
    add("--cache", choices=["memory", "redis"], default="memory", help="replay's cache backend")
    add("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis for --cache redis/latency")
    add("--bursts", type=_count, default=20, help="bursts of each kind (default %(default)s)")
    add("--burst-size", type=_count, default=8, help="concurrent requests per burst")
    add(
        "--latency-entries",
        type=_counts,
        default=(1000, 10000),
        help="cache sizes, e.g. 1000,10000",
    )
    add("--lookups", type=_count, default=1000, help="timed lookups per backend, size and kind")
    add(
        "--latency-backends",
        type=_backends,
        default=("memory", "redis"),
        help="memory,redis (default) or one of them",
    )
    add("--overhead-calls", type=_count, default=300, help="timed calls per overhead figure")
    add("--model", default="gpt-4o-mini", help="target model (prices the calls)")
    add("--json", action="store_true", help="print one JSON object")
    add(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where LocalEncoder vectors are cached",
    )
    add("--no-cache", action="store_true", help="do not read or write cached vectors")
    parser.set_defaults(run=run, make_encoder=_local_encoder)


def _count(text: str) -> int:
    value = _count0(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _count0(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _exponent(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def _counts(text: str) -> tuple[int, ...]:
    return tuple(_count(t) for t in text.split(",") if t.strip())


def _backends(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names or not set(names) <= {"memory", "redis"}:
        raise argparse.ArgumentTypeError("expected memory, redis or memory,redis")
    return names


def _local_encoder() -> BaseEncoder:
    from stratarouter_core.encoders.local import LocalEncoder

    return LocalEncoder()


def run(args: argparse.Namespace) -> int:
    """Build the workloads, measure the four sections, print the table or one JSON object."""
    started = time.perf_counter()
    for flag, path in (
        ("--dataset", args.dataset),
        ("--embeddings", args.embeddings),
        ("--pairs", args.pairs),
    ):
        if not Path(path).is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    dataset = load_intent_dataset(args.dataset, args.embeddings)
    test = dataset.split("test")
    clinc = [(t, lb) for t, lb in zip(test.texts, test.labels) if lb is not None]
    _, pairs, _ = load_pairs(args.pairs)
    workload = build_workload(
        clinc,
        pairs,
        requests=args.requests,
        clinc_slots=args.clinc_slots,
        qqp_slots=args.qqp_slots,
        zipf=args.zipf,
        seed=args.seed,
    )
    burst_sets = bursts(workload, count=args.bursts, size=args.burst_size)
    splits = [dataset.split(name) for name in ("train", "val", "test")]
    # Every QQP slot's questions, not only those drawn: the vector cache outlives --requests.
    extra = [t for b in burst_sets.values() for burst in b for t in burst]
    extra += [q for q1, q2, _ in workload.qqp_slots for q in (q1, q2)]
    encoder = _encoder(splits, extra, args, dataset.embedding_model)
    report = asyncio.run(_measure(args, workload, burst_sets, encoder, splits))
    report["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0


async def _measure(
    args: argparse.Namespace,
    workload: Workload,
    burst_sets: dict[str, list[list[str]]],
    encoder: BaseEncoder,
    splits: Sequence[Split],
) -> dict[str, Any]:
    train, val, test = splits
    entries = _distinct(train, max(args.latency_entries), "--latency-entries", "train")
    probes = _distinct(test, 1, "--lookups", "test")
    needed = args.overhead_calls + sections.WARMUP
    queries = _distinct(val, needed, "--overhead-calls", "val")[0][:needed]
    redis = CacheConfig(backend="redis", redis_url=args.redis_url)
    replay_cache = redis if args.cache == "redis" else CacheConfig()
    backends = {
        name: (redis if name == "redis" else CacheConfig()) for name in args.latency_backends
    }
    with (
        FakeProviderServer(reply=lambda q: sections.REPLY_PREFIX + q) as server,
        tempfile.TemporaryDirectory(prefix="stratarouter-bench-") as tmp,
        sections.quiet_runtime_logs(),
    ):
        bench = sections.Bench(server, encoder, workload.labels, args.model)
        measurements: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "replay": lambda: sections.replay(bench, workload, replay_cache),
            "dedup": lambda: sections.dedup(bench, burst_sets),
            "lookup_latency": lambda: sections.lookup_latency(
                bench,
                entries,
                probes,
                sizes=args.latency_entries,
                lookups=args.lookups,
                backends=backends,
            ),
            "overhead": lambda: sections.overhead(bench, queries, Path(tmp) / "state.db"),
        }
        defaults = RuntimeConfig()  # the settings every bridge here runs with
        report: dict[str, Any] = {
            "workload": workload.description | {"cache": args.cache},
            "runtime_config": {
                "cache.similarity_threshold": defaults.cache.similarity_threshold,
                "cache.ttl_s": defaults.cache.ttl_s,
                "batching.window_ms": defaults.batching.window_ms,
                "batching.max_size": defaults.batching.max_size,
                "batching.similarity_threshold": defaults.batching.similarity_threshold,
            },
        }
        seconds = report["section_seconds"] = {}
        for name, measure in measurements.items():
            started = time.perf_counter()
            report[name] = await measure()
            seconds[name] = round(time.perf_counter() - started, 1)
    return report


def _distinct(split: Split, n: int, flag: str, name: str) -> tuple[list[str], NDArray[np.float32]]:
    """The split's first `n` distinct texts (all of them, at least `n`) and their vectors."""
    first: dict[str, int] = {}
    for i, text in enumerate(split.texts):
        first.setdefault(text, i)
    rows = list(first.values())
    if len(rows) < n:
        raise ConfigError(f"{flag} needs {n} distinct {name} texts; the dataset has {len(rows)}")
    assert split.vectors is not None
    return [split.texts[i] for i in rows], split.vectors[rows]


def _encoder(
    splits: Sequence[Split], extra: Sequence[str], args: argparse.Namespace, model: str | None
) -> BaseEncoder:
    """Precomputed vectors for the dataset's texts; the others encoded once (and cached)."""
    texts = [t for s in splits for t in s.texts]
    vectors = [s.vectors for s in splits if s.vectors is not None]
    known = set(texts)
    missing = sorted(set(extra) - known)
    if missing:
        make_encoder: Callable[[], BaseEncoder] = args.make_encoder
        encoded = _encode_cached(missing, make_encoder(), None if args.no_cache else args.cache_dir)
        if encoded.shape[1] != vectors[0].shape[1]:
            raise DimensionMismatchError(
                f"the encoder gives {encoded.shape[1]} dimensions, {args.embeddings} "
                f"{vectors[0].shape[1]}: they must be the same model"
            )
        texts, vectors = texts + missing, [*vectors, encoded]
    return PrecomputedEncoder(texts, np.vstack(vectors).astype(np.float32), model)


def _encode_cached(texts: list[str], encoder: BaseEncoder, directory: Path | None) -> NDArray[Any]:
    digest = hashlib.sha256("\n".join([encoder.fingerprint, *texts]).encode()).hexdigest()
    path = None if directory is None else directory.expanduser() / f"runtime-{digest[:16]}.npz"
    if path is not None and path.exists():
        with np.load(path) as stored:
            cached: NDArray[Any] = stored["vectors"]
        if cached.shape[0] == len(texts):
            return cached
    print(
        f"encoding {len(texts)} texts with {type(encoder).__name__} (cached afterwards)",
        file=sys.stderr,
    )
    vectors = np.concatenate(
        [encoder.encode(texts[i : i + 256]) for i in range(0, len(texts), 256)]
    )
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, vectors=vectors)
    return vectors


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"


Row = tuple[str, str, str]


def _replay_rows(workload: dict[str, Any], r: dict[str, Any]) -> list[Row]:
    n, texts, answers = (
        workload["requests"],
        workload["distinct_texts"],
        workload["distinct_answers"],
    )
    labelled = r["correct"] + r["wrong"]
    rows = [
        ("replay", "requests / distinct texts / distinct answers", f"{n} / {texts} / {answers}"),
        (
            "replay",
            "hits (exact tier + semantic tier)",
            f"{r['hits']} = {_pct(r['hits'], n)} ({r['exact_hits']} + {r['semantic_hits']})",
        ),
        (
            "replay",
            "best possible hit rate (exact repeats / every labelled answer)",
            f"{_pct(n - texts, n)} / {_pct(n - answers, n)}",
        ),
        (
            "replay",
            "hits correct / wrong / unlabelled (precision where labelled)",
            f"{r['correct']} / {r['wrong']} / {r['unlabelled']} ({_ratio(r['correct'], labelled)})",
        ),
        (
            "replay",
            "provider calls (fake server count) / saved",
            f"{r['server_calls']} / {n - r['server_calls']}",
        ),
        (
            "replay",
            "cost of calls / estimated saved (USD)",
            f"{r['cost_usd']:.6f} / {r['cost_saved_usd']:.6f}",
        ),
    ]
    for kind in REQUEST_KINDS:
        k = r["by_kind"][kind]
        rows.append(
            (
                f"replay: {kind}",
                "requests: exact / semantic (correct, wrong) hits",
                f"{k['requests']}: {k['exact_hits']} / {k['semantic_hits']} "
                f"({k['correct']}, {k['wrong']})",
            )
        )
    return rows


def _dedup_rows(dedup: dict[str, Any]) -> list[Row]:
    rows = []
    for kind, on in dedup["batching_on"].items():
        off = dedup["batching_off"][kind]
        rows.append(
            (
                f"dedup: {kind}",
                "requests -> calls, batching on (shared, cached) / off (cached); wrong",
                f"{on['requests']} -> {on['calls']} ({on['deduplicated']}, {on['cached']}) "
                f"/ {off['calls']} ({off['cached']}); {on['wrong']} / {off['wrong']}",
            )
        )
    return rows


def _latency_rows(latency: dict[str, Any]) -> list[Row]:
    return [
        (
            f"cache lookup: {backend}, {size} entries",
            "p50 / p99 ms: exact tier; semantic path",
            "; ".join(
                f"{kinds[k]['p50_ms']:.3f} / {kinds[k]['p99_ms']:.3f}"
                for k in ("exact", "semantic")
            ),
        )
        for backend, sizes in latency.items()
        for size, kinds in sizes.items()
    ]


def _overhead_rows(overhead: dict[str, Any]) -> list[Row]:
    rows = [("overhead", "direct SDK call p50 ms", f"{overhead['direct_sdk_p50_ms']}")]
    for name in ("memory_miss", "sqlite_miss", "memory_hit", "sqlite_hit"):
        state, phase = name.split("_")
        figures = overhead[name]
        rows.append(
            (
                f"overhead: {state} state, cache {phase}",
                "execute p50 ms / overhead p50 ms",
                f"{figures['p50_ms']} / {figures['overhead_p50_ms']}",
            )
        )
    return rows


def _print_table(report: dict[str, Any]) -> None:
    w = report["workload"]
    print(
        f"Workload: {w['requests']} requests, Zipf s={w['zipf_exponent']} over "
        f"{w['clinc_slots']} CLINC150 test queries + {w['qqp_slots']} QQP pairs "
        f"({w['qqp_duplicate_slots']} duplicates), seed {w['seed']}, {w['cache']} cache; "
        f"requests by kind: {w['requests_by_kind']}"
    )
    print(f"Runtime defaults: {report['runtime_config']}")
    print("\n| section | figure | value |\n| --- | --- | --- |")
    rows = _replay_rows(report["workload"], report["replay"]) + _dedup_rows(report["dedup"])
    rows += _latency_rows(report["lookup_latency"]) + _overhead_rows(report["overhead"])
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n({report['seconds']} s; by section: {report['section_seconds']})")
    sys.stdout.flush()
