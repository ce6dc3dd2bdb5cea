"""The two engines: this process (streamed record batches) and Ray (an actor pool over row groups).

Both write the output through one `pyarrow.parquet.ParquetWriter` in the calling process,
batch by batch in input order, to a temporary sibling file renamed over the output at the
end: a failed job never leaves a half-written file under the output's name.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._deps import require
from ..encoders.base import BaseEncoder
from ..errors import BulkEngineError, StrataRouterError
from ._batch import BatchRouter, Plan, output_schema
from ._progress import Progress

__all__ = ["RayOptions", "atomic_writer", "run_local", "run_ray"]

_RAY_RETRY_NOTE = "\nFailed to apply UDF transform"


@contextlib.contextmanager
def atomic_writer(output: Path, schema: Any) -> Iterator[Any]:
    """A ParquetWriter on a temporary sibling of `output`, renamed over it on success."""
    pq = require("pyarrow.parquet", extra="bulk")
    handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(handle)
    try:
        with pq.ParquetWriter(name, schema) as writer:
            yield writer
        os.replace(name, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def run_local(
    router: BatchRouter, parquet: Any, output: Path, *, batch_size: int, progress: Progress
) -> int:
    """Route the file in record batches of `batch_size` rows; returns the rows written."""
    plan = router.plan
    schema = output_schema(plan, parquet.schema_arrow)
    rows = 0
    with atomic_writer(output, schema) as writer:
        for batch in parquet.iter_batches(batch_size=batch_size, columns=plan.input_columns):
            table = router(batch)
            writer.write_table(table)
            rows += table.num_rows
            progress.update(table.num_rows)
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class RayOptions:
    """How the Ray engine runs (see `BulkConfig`)."""

    address: str | None
    workers: int | None
    batch_size: int
    progress: bool


def run_ray(
    router_dir: Path,
    plan: Plan,
    encoder: BaseEncoder | None,
    output: Path,
    options: RayOptions,
    progress: Progress,
) -> tuple[int, int]:
    """Route the file on a Ray actor pool; returns (rows written, workers used)."""
    ray = require("ray", extra="ray")
    require("ray.util", extra="ray")
    started = not ray.is_initialized()
    if started:
        _init(ray, options.address)
    try:
        workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        rows = _execute(ray, router_dir, plan, encoder, output, options, workers, progress)
    finally:
        if started:
            ray.shutdown()
    return rows, workers


def _init(ray: Any, address: str | None) -> None:
    """Join the cluster at `address`, or start a local one (no dashboard, quiet logs)."""
    import logging

    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    except ConnectionError as exc:
        raise BulkEngineError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc


def _execute(
    ray: Any,
    router_dir: Path,
    plan: Plan,
    encoder: BaseEncoder | None,
    output: Path,
    options: RayOptions,
    workers: int,
    progress: Progress,
) -> int:
    """Row groups go to a pool of actors, each holding one router; results come back in order.

    Ray Data's `map_batches` over an actor pool was the first design; in Ray 2.60 its output
    blocks came back out of input order despite `preserve_order` (measured: 200,000 rows in
    10 row groups), so the pool is Ray's own `ActorPool`, whose `map` yields in order.
    """
    pq = require("pyarrow.parquet", extra="bulk")
    groups = pq.ParquetFile(plan.path).metadata.num_row_groups
    # a share of a CPU each when asked for more actors than CPUs, rather than waiting for ever
    cpus = float(ray.cluster_resources().get("CPU", 1))
    worker = ray.remote(num_cpus=min(1.0, cpus / workers))(_RowGroupRouter)
    actors = [
        worker.remote(str(router_dir), plan, encoder, options.batch_size)
        for _ in range(min(workers, max(groups, 1)))
    ]
    pool = ray.util.ActorPool(actors)
    rows = 0
    try:
        with atomic_writer(output, _schema(plan)) as writer:
            for table in pool.map(lambda actor, group: actor.route.remote(group), range(groups)):
                writer.write_table(table)
                rows += table.num_rows
                progress.update(table.num_rows)
    except Exception as exc:  # a worker's error comes back wrapped by Ray (RayTaskError)
        raise _unwrap(exc) from exc
    finally:
        for actor in actors:
            ray.kill(actor)
    return rows


class _RowGroupRouter:
    """A Ray actor: reads one row group of the input and routes it in batches."""

    def __init__(
        self, router_dir: str, plan: Plan, encoder: BaseEncoder | None, batch_size: int
    ) -> None:
        pq = require("pyarrow.parquet", extra="bulk")
        self.router = BatchRouter(router_dir, plan, encoder)
        self.file = pq.ParquetFile(plan.path)
        self.batch_size = batch_size

    def route(self, group: int) -> Any:
        pa = require("pyarrow", extra="bulk")
        table = self.file.read_row_group(group, columns=self.router.plan.input_columns)
        parts = [self.router(batch) for batch in table.to_batches(max_chunksize=self.batch_size)]
        return pa.concat_tables(parts) if parts else self.router(table)


def _schema(plan: Plan) -> Any:
    pq = require("pyarrow.parquet", extra="bulk")
    return output_schema(plan, pq.read_schema(plan.path))


def _unwrap(exc: BaseException) -> StrataRouterError:
    """A copy of the StrataRouterError a Ray worker raised (class and message), else an
    engine error. Ray wraps it (RayTaskError, UserCodeException) and keeps it as `.cause`."""
    seen: BaseException | None = exc
    for _ in range(32):  # a chain of causes; bounded in case of a cycle
        if seen is None:
            break
        cause = getattr(seen, "cause", None)
        if isinstance(cause, BaseException):
            seen = cause
            continue
        if isinstance(seen, StrataRouterError) and type(seen).__module__.startswith(
            "stratarouter_core"
        ):
            error = copy.copy(seen)
            # Ray Data appends its retry advice to the message: keep the worker's own words
            error.args = (str(seen).split(_RAY_RETRY_NOTE, 1)[0],)
            return error
        seen = seen.__cause__ or seen.__context__
    return BulkEngineError(f"the Ray job failed: {type(exc).__name__}: {exc}")


