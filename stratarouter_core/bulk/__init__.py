"""Bulk routing: a Parquet file of queries in, a Parquet file of decisions out.

Two engines run the same per-batch code (`BatchRouter`: the saved router loaded once per
process, `Router.route_batch` on each batch), so a row's decision and confidence are the ones
`route_batch` gives for it:

``local``
    This process, streaming the input in record batches (`ParquetFile.iter_batches`), so the
    file never has to fit in memory. Needs ``pip install 'stratarouter[bulk]'`` (pyarrow).
``ray``
    A pool of `workers` Ray actors, each holding one router and routing whole row groups of
    the input; the decisions come back in input order to one writer in this process.
    Needs ``pip install 'stratarouter[ray]'``. With `address`, the input path must be
    readable from every node of the cluster (shared storage). Parallelism is per row group:
    write the input with several row groups (pyarrow's default is 1M rows each).

Input columns: the query text (always: BM25 and the rules read it) and, optionally, an
embedding per row (a list of floats of the router's dimension); without embeddings the
texts are encoded with the router's encoder, batch by batch. Output columns: the kept input
columns, then ``route`` (null when abstaining without a fallback), ``confidence``,
``accepted``, ``is_fallback`` and, when asked for, ``candidates`` (route, confidence, score).

Example:
    >>> from stratarouter_core.bulk import BulkConfig, route_bulk
    >>> report = route_bulk("router/", "queries.parquet", "decisions.parquet",
    ...                     BulkConfig(keep_columns=("id",)))  # doctest: +SKIP
    >>> report.rows, report.engine  # doctest: +SKIP
    (1000000, 'local')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..encoders.base import BaseEncoder
from ..errors import ConfigError, PersistenceError
from ..router import Router
from ._batch import OUTPUT_COLUMNS, BatchRouter
from ._engines import RayOptions, run_local, run_ray
from ._input import check_output, open_parquet, resolve_plan
from ._progress import Progress

__all__ = ["OUTPUT_COLUMNS", "BatchRouter", "BulkConfig", "BulkReport", "route_bulk"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkConfig:
    """How to read, route and write a bulk job.

    Attributes:
        engine: ``"local"`` (this process) or ``"ray"`` (a Ray actor pool).
        text_column: Input column holding the query texts.
        embedding_column: Input column holding the query vectors; None uses ``embedding``
            when the input has such a column, else encodes the texts.
        keep_columns: Input columns copied to the output (ids, the text...).
        batch_size: Rows per batch given to `route_batch` (and to the encoder).
        candidates: Top candidates written per row; 0 writes no ``candidates`` column.
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None starts a
            local one, unless Ray is already initialised in this process.
        workers: Ray actors, each one CPU and one loaded router; None: one per cluster CPU.
        progress: Show progress on standard error (and Ray's own progress bars).

    Example:
        >>> BulkConfig(engine="ray", workers=2).batch_size
        4096
    """

    engine: Literal["local", "ray"] = "local"
    text_column: str = "text"
    embedding_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    batch_size: int = 4096
    candidates: int = 0
    address: str | None = None
    workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if isinstance(self.keep_columns, str):
            raise ConfigError("keep_columns must be a sequence of column names, not one string")
        object.__setattr__(self, "keep_columns", tuple(self.keep_columns))
        for name, value, low in (
            ("batch_size", self.batch_size, 1),
            ("candidates", self.candidates, 0),
            ("workers", 1 if self.workers is None else self.workers, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.address is not None and self.engine != "ray":
            raise ConfigError("address is for the Ray engine: give engine='ray' with it")


@dataclass(frozen=True, slots=True)
class BulkReport:
    """What a bulk job did.

    Attributes:
        rows: Rows routed and written.
        seconds: Wall time of the job, router loading and worker start-up included.
        engine: The engine that ran it.
        workers: Processes that routed (1 for the local engine).
        encoded: True when the texts were encoded (the input had no embedding column).
        output: The file written.
    """

    rows: int
    seconds: float
    engine: str
    workers: int
    encoded: bool
    output: Path

    @property
    def rows_per_second(self) -> float:
        """Throughput over the whole job."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def route_bulk(
    router_dir: str | Path,
    input: str | Path,
    output: str | Path,
    config: BulkConfig | None = None,
    *,
    encoder: BaseEncoder | None = None,
) -> BulkReport:
    """Route every row of the Parquet file `input` with the router saved in `router_dir`.

    Args:
        router_dir: Directory written by `Router.save`.
        input: Parquet file of queries.
        output: Parquet file written with the decisions, one row per input row, in order
            (replaced atomically: a failed job leaves no partial file).
        config: Columns, engine, batch size...; the defaults of `BulkConfig` when None.
        encoder: Encoder for `Router.load`; None loads the saved one (the `LocalEncoder`).
            With Ray it is pickled to each worker.

    Raises:
        PersistenceError: No saved router at `router_dir`, or an unreadable one.
        BulkInputError: The input is not Parquet, lacks a column, or has a bad row.
        DimensionMismatchError: An embedding of the wrong dimension.
        MissingDependencyError: pyarrow (``[bulk]``) or Ray (``[ray]``) is not installed.
        BulkEngineError: The Ray cluster cannot be reached, or the job failed otherwise.
    """
    config = config or BulkConfig()
    router_dir, input_path, output_path = Path(router_dir), Path(input), Path(output)
    if not router_dir.is_dir():
        raise PersistenceError(f"no saved router at {router_dir} (not a directory)")
    progress = Progress(None, enabled=config.progress)
    loaded = Router.load(router_dir, encoder)  # before any worker starts: fails fast
    parquet = open_parquet(input_path)
    check_output(output_path, input_path)
    plan = resolve_plan(
        parquet,
        input_path,
        text_column=config.text_column,
        embedding_column=config.embedding_column,
        keep_columns=config.keep_columns,
        candidates=config.candidates,
        dimension=loaded.state.prototypes.shape[1],
    )
    progress.total = parquet.metadata.num_rows
    if config.engine == "local":
        router = BatchRouter(router_dir, plan, encoder, router=loaded)
        rows = run_local(
            router, parquet, output_path, batch_size=config.batch_size, progress=progress
        )
        workers = 1
    else:
        options = RayOptions(
            address=config.address,
            workers=config.workers,
            batch_size=config.batch_size,
            progress=config.progress,
        )
        rows, workers = run_ray(router_dir, plan, encoder, output_path, options, progress)
    progress.close()
    return BulkReport(
        rows=rows,
        seconds=progress.seconds,
        engine=config.engine,
        workers=workers,
        encoded=plan.embedding_column is None,
        output=output_path,
    )

