"""`stratarouter bench grade-feed`: what grading served answers costs, and how fast every
bridge over one store learns a grade.

Fits a ModelRouter on the graded file's train split (the .npz vectors stand in for the
encoder, so encoding is not measured: add the encoder's own time per query), saves it, and
loads it into two `CoreRuntimeBridge`s over one store (a SQLite file, or a PostgreSQL schema
of its own with ``--database-url``, dropped at the end). Then, one at a time, it grades
``--grades`` test queries through the first bridge and records:

- ``ack``: the `add_grades` call (checked, logged, learned by that bridge);
- ``learned_elsewhere``: from the call until the second bridge, polling every ``--poll-s``,
  has learned it;
- the longest event-loop stall meanwhile (a 1 ms ticker runs beside the grading);
- ``restart``: a third bridge started over the store learns the whole log before serving;
- the quality of the default rule's choice on the graded queries, before and after (the
  graded model's score of the chosen model, where graded).

Bounded: at most 2,000 grades, each learned elsewhere within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from stratarouter_core import ModelRouter
from stratarouter_core.errors import ConfigError

from .datasets import PrecomputedEncoder
from .model_routing import GradedData, load_graded

__all__ = ["register", "run"]

MAX_GRADES = 2000
LEARN_TIMEOUT_S = 10.0


def register(benches: Any) -> None:
    """Add the `grade-feed` benchmark."""
    parser = benches.add_parser(
        "grade-feed", help="model routing: cost of grading served answers, and their spread"
    )
    parser.add_argument("--dataset", required=True, help="graded JSON (models, train, test)")
    parser.add_argument("--embeddings", required=True, help=".npz with train and test vectors")
    parser.add_argument(
        "--grades", type=int, default=200, help=f"test queries graded (max {MAX_GRADES})"
    )
    parser.add_argument(
        "--poll-s", type=float, default=0.1, help="the second bridge's grade poll (default 0.1)"
    )
    parser.add_argument("--database-url", help="PostgreSQL DSN (default: a SQLite file)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the figures as a table (or JSON)."""
    if not 1 <= args.grades <= MAX_GRADES:
        raise ConfigError(f"--grades must be in [1, {MAX_GRADES}], got {args.grades}")
    if not args.poll_s > 0:
        raise ConfigError(f"--poll-s must be > 0, got {args.poll_s}")
    data = load_graded(args.dataset, args.embeddings)
    figures = asyncio.run(_measure(data, args.grades, args.poll_s, args.database_url))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"grade-feed on {data.name}: {figures['grades']} grades, {figures['store']} store")
    print("| figure | P50 | P90 | max |")
    print("|---|---|---|---|")
    for name in ("ack_ms", "learned_elsewhere_ms"):
        p50, p90, top = (figures[f"{name}_{k}"] for k in ("p50", "p90", "max"))
        print(f"| {name} | {p50:.1f} | {p90:.1f} | {top:.1f} |")
    print(f"longest event-loop stall: {figures['longest_stall_ms']:.1f} ms")
    print(f"restart: {figures['restart_learned']} grades learned in {figures['restart_s']:.2f} s")
    before, after = figures["quality_before"], figures["quality_after"]
    print(f"quality of the choice on the graded queries: {before:.3f} -> {after:.3f}")
    return 0


async def _measure(
    data: GradedData, n: int, poll_s: float, database_url: str | None
) -> dict[str, Any]:
    from stratarouter_runtime.bridge import CoreRuntimeBridge
    from stratarouter_runtime.config import RuntimeConfig, StateConfig

    n = min(n, len(data.test_queries))
    encoder = PrecomputedEncoder(
        [*data.train_queries, *data.test_queries],
        np.concatenate([data.train_vectors, data.test_vectors]),
        data.embedding_model,
    )
    fitted = ModelRouter(data.models, encoder=encoder)
    fitted.fit(data.train_queries, _scores(data, "train", len(data.train_queries)))
    queries, scores = data.test_queries[:n], _scores(data, "test", n)
    with tempfile.TemporaryDirectory() as folder, _store(folder, database_url) as state:
        fitted.save(Path(folder) / "model-router")

        def loaded() -> ModelRouter:
            return ModelRouter.load(Path(folder) / "model-router", encoder)

        before = _quality(loaded(), queries, scores)
        config = RuntimeConfig(state=StateConfig(**state, grade_poll_s=0))
        polling = RuntimeConfig(state=StateConfig(**state, grade_poll_s=poll_s))
        stalls: list[float] = []
        async with (
            CoreRuntimeBridge(config, model_router=loaded()) as grader,
            CoreRuntimeBridge(polling, model_router=loaded()) as follower,
            _ticker(stalls),
        ):
            acks, spread = [], []
            for query, row in zip(queries, scores, strict=True):
                started = time.perf_counter()
                (grade,) = await grader.add_grades([query], [row])
                acks.append(time.perf_counter() - started)
                while follower.grades is not None and follower.grades.position < grade.seq:
                    if time.perf_counter() - started > LEARN_TIMEOUT_S:
                        raise ConfigError(f"grade {grade.seq} not learned in {LEARN_TIMEOUT_S} s")
                    await asyncio.sleep(0.001)
                spread.append(time.perf_counter() - started)
        restarted = loaded()
        started = time.perf_counter()
        async with CoreRuntimeBridge(config, model_router=restarted) as late:
            restart_s = time.perf_counter() - started
            learned = late.grades.n_learned if late.grades is not None else 0
    return {
        "grades": n,
        "store": "postgresql" if database_url else "sqlite",
        **_percentiles("ack_ms", acks),
        **_percentiles("learned_elsewhere_ms", spread),
        "longest_stall_ms": 1000 * max(stalls, default=0.0),
        "restart_s": restart_s,
        "restart_learned": learned,
        "quality_before": before,
        "quality_after": _quality(restarted, queries, scores),
    }


def _scores(data: GradedData, split: str, n: int) -> list[dict[str, float]]:
    grades = data.train_scores if split == "train" else data.test_scores
    return [
        {name: float(v) for name, v in zip(data.names, row) if not np.isnan(v)}
        for row in grades[:n]
    ]


def _quality(router: ModelRouter, queries: list[str], scores: list[dict[str, float]]) -> float:
    """Mean score of the default rule's choice, over the queries where that model is graded."""
    chosen = router.route_batch(queries)
    values = [s[c.model] for c, s in zip(chosen, scores, strict=True) if c.model in s]
    return float(np.mean(values)) if values else float("nan")


def _percentiles(name: str, seconds: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(seconds)
    return {
        f"{name}_p50": float(np.percentile(ms, 50)),
        f"{name}_p90": float(np.percentile(ms, 90)),
        f"{name}_max": float(ms.max()),
    }


@contextlib.contextmanager
def _store(folder: str, database_url: str | None) -> Iterator[dict[str, Any]]:
    """The StateConfig fields of the store; a PostgreSQL schema of its own, dropped after."""
    if database_url is None:
        yield {"backend": "sqlite", "sqlite_path": os.path.join(folder, "state.db")}
        return
    schema = f"sr_grades_{uuid.uuid4().hex[:10]}"
    try:
        yield {"backend": "postgresql", "database_url": database_url, "schema": schema}
    finally:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextlib.asynccontextmanager
async def _ticker(stalls: list[float]) -> Any:
    """Record, in `stalls`, how late each 1 ms sleep of the event loop wakes."""

    async def tick() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - started - 0.001)

    task = asyncio.ensure_future(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
