"""The two engines: this process (streamed record batches) and Ray Data (an actor pool).

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
_READ_CPUS = 0.25  # CPU share of each Ray Data read task, kept free of the actor pool


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
    """Route the file with Ray Data; returns (rows written, workers used)."""
    ray = require("ray", extra="ray")
    require("ray.data", extra="ray")
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
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the output keeps the input's order
    context.enable_progress_bars = options.progress
    context.raise_original_map_exception = True  # a worker's BulkInputError, not a wrapper
    # The pool must leave one CPU to Ray Data's file listing task (it asks for a whole one)
    # and its read tasks: with every CPU held by an actor they never start, and the job
    # waits for ever. The CPU share only places actors; each still runs on a core of its own.
    cpus = float(ray.cluster_resources().get("CPU", 1))
    actor_cpus = max(0.0, min(1.0, (cpus - 1.0) / workers))
    # select_columns after reading: Ray Data pushes the projection down into the reader
    dataset = ray.data.read_parquet(str(plan.path), num_cpus=_READ_CPUS).select_columns(
        plan.input_columns
    )
    decided = dataset.map_batches(
        BatchRouter,
        fn_constructor_kwargs={"router_dir": str(router_dir), "plan": plan, "encoder": encoder},
        batch_size=options.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=actor_cpus,
    )
    rows = 0
    try:
        with atomic_writer(output, _schema(plan)) as writer:
            for table in decided.iter_batches(batch_format="pyarrow", batch_size=None):
                writer.write_table(table)
                rows += table.num_rows
                progress.update(table.num_rows)
    except Exception as exc:  # a worker's error comes back wrapped by Ray (RayTaskError)
        raise _unwrap(exc) from exc
    return rows


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


