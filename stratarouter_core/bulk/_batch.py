"""One Arrow batch of queries in, one Arrow batch of decisions out: what every worker runs.

`BatchRouter` loads the saved router once (per process, per Ray actor) and turns each batch
into decisions with `Router.route_batch`, so a row's decision is the one `route_batch` gives.
A batch shorter than `_MIN_ROWS` is padded with repeats of its own rows before routing and
the padding dropped after: NumPy's BLAS takes another kernel for a matrix product with few
rows, whose float32 sums can differ in the last bit, and a padded batch takes the same kernel
as the rest of the file. Rows never influence each other's decisions, only that rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._deps import require
from ..encoders.base import BaseEncoder
from ..errors import BulkInputError, DimensionMismatchError, InvalidQueryError
from ..router import Router
from ..types import RouteResult

__all__ = ["OUTPUT_COLUMNS", "BatchRouter", "Plan", "embedding_matrix", "output_schema"]

OUTPUT_COLUMNS = ("route", "confidence", "accepted", "is_fallback", "candidates")
_MIN_ROWS = 64  # batches are padded to this many rows (see the module docstring)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What to read from each input batch and what to write, resolved against the input file.

    Attributes:
        path: The input file (for error messages).
        text_column: Column of the query texts (always read: BM25 and rules use the text).
        embedding_column: Column of the query vectors, or None to encode the texts.
        keep_columns: Input columns copied to the output, before the decision columns.
        candidates: Top candidates written per row (0: no `candidates` column).
        dimension: The router's embedding dimension.
    """

    path: str
    text_column: str
    embedding_column: str | None
    keep_columns: tuple[str, ...]
    candidates: int
    dimension: int

    @property
    def input_columns(self) -> list[str]:
        """The input columns to read, each once."""
        names = [self.text_column, *self.keep_columns]
        if self.embedding_column is not None:
            names.append(self.embedding_column)
        return list(dict.fromkeys(names))


def output_schema(plan: Plan, input_schema: Any) -> Any:
    """The Arrow schema of the output: kept columns (input types), then the decision."""
    pa = require("pyarrow", extra="bulk")
    fields = [input_schema.field(name) for name in plan.keep_columns]
    fields += [
        pa.field("route", pa.string()),
        pa.field("confidence", pa.float64(), nullable=False),
        pa.field("accepted", pa.bool_(), nullable=False),
        pa.field("is_fallback", pa.bool_(), nullable=False),
    ]
    if plan.candidates:
        fields.append(pa.field("candidates", _candidates_type(pa)))
    return pa.schema(fields)


def _candidates_type(pa: Any) -> Any:
    candidate = pa.struct(
        [("route", pa.string()), ("confidence", pa.float64()), ("score", pa.float64())]
    )
    return pa.list_(candidate)


class BatchRouter:
    """Routes Arrow batches with a saved router loaded once (per process, per Ray actor).

    Args:
        router_dir: Directory written by `Router.save`.
        plan: The resolved columns (see `Plan`).
        encoder: Encoder to load the router with; None loads the one it was saved with
            (the default `LocalEncoder`).
        router: The router already loaded from `router_dir` (the local engine's), if any.
    """

    def __init__(
        self,
        router_dir: str | Path,
        plan: Plan,
        encoder: BaseEncoder | None = None,
        *,
        router: Router | None = None,
    ) -> None:
        """Load the router (once: Ray builds one instance per actor)."""
        self.router = router if router is not None else Router.load(router_dir, encoder)
        self.plan = plan
        self.schema: Any = None

    def __call__(self, batch: Any) -> Any:
        """Decisions of a `pyarrow.Table` or `RecordBatch` of queries, as a `pyarrow.Table`."""
        pa = require("pyarrow", extra="bulk")
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if self.schema is None:
            self.schema = output_schema(self.plan, table.schema)
        results = self.route(table)
        columns = [table.column(name) for name in self.plan.keep_columns]
        columns += _decision_columns(pa, results, self.plan.candidates)
        return pa.Table.from_arrays(columns, schema=self.schema)

    def route(self, table: Any) -> list[RouteResult]:
        """`Router.route_batch` on the table's rows (padded when short)."""
        plan, n = self.plan, table.num_rows
        if n == 0:
            return []
        texts = _texts(table, plan)
        vectors = None
        if plan.embedding_column is not None:
            vectors = embedding_matrix(table.column(plan.embedding_column), plan)
        rows = np.resize(np.arange(n), max(n, _MIN_ROWS))
        if n < _MIN_ROWS:
            texts = [texts[i] for i in rows]
            vectors = None if vectors is None else vectors[rows]
        try:
            return self.router.route_batch(texts, vectors)[:n]
        except DimensionMismatchError as exc:
            raise DimensionMismatchError(
                f"{plan.path}: column {plan.embedding_column!r}: {exc}"
            ) from exc
        except InvalidQueryError as exc:
            raise BulkInputError(f"{plan.path}: {exc}", path=plan.path) from exc


def _texts(table: Any, plan: Plan) -> list[str]:
    """The query texts; a null, non-string or blank text is a `BulkInputError` naming it."""
    column = table.column(plan.text_column)
    texts: list[Any] = column.to_pylist()
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise BulkInputError(
                f"{plan.path}: column {plan.text_column!r} has an empty or null text "
                f"({text!r}) at row {i} of a batch{_row_ids(table, plan, i)}; every query "
                "needs a non-blank text",
                path=plan.path,
            )
    return texts


def _row_ids(table: Any, plan: Plan, row: int) -> str:
    if not plan.keep_columns:
        return ""
    ids = {name: table.column(name)[row].as_py() for name in plan.keep_columns}
    return f" (kept columns {ids})"


def embedding_matrix(column: Any, plan: Plan) -> NDArray[np.float32]:
    """An Arrow list column of vectors as an (n, dimension) float32 matrix, checked."""
    pa = require("pyarrow", extra="bulk")
    pc = require("pyarrow.compute", extra="bulk")
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    where = f"{plan.path}: column {plan.embedding_column!r}"
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)) and not (
        pa.types.is_fixed_size_list(array.type)
    ):
        raise BulkInputError(
            f"{where} has type {array.type}; embeddings must be a list of floats per row",
            path=plan.path,
        )
    if array.null_count:
        raise BulkInputError(f"{where} has {array.null_count} null embedding(s)", path=plan.path)
    lengths = np.asarray(pc.list_value_length(array).to_numpy(zero_copy_only=False))
    wrong = np.flatnonzero(lengths != plan.dimension)
    if len(wrong):
        raise DimensionMismatchError(
            f"{where}: row {int(wrong[0])} of a batch has an embedding of dimension "
            f"{int(lengths[wrong[0]])}, the router's encoder has {plan.dimension}"
        )
    if not pa.types.is_floating(array.type.value_type):
        raise BulkInputError(
            f"{where} holds {array.type.value_type} values; embeddings must be floats",
            path=plan.path,
        )
    values = array.flatten().to_numpy(zero_copy_only=False)
    matrix: NDArray[np.float32] = np.asarray(values, dtype=np.float32).reshape(
        len(array), plan.dimension
    )
    return matrix


def _decision_columns(pa: Any, results: Sequence[RouteResult], candidates: int) -> list[Any]:
    """The output's decision columns, in `OUTPUT_COLUMNS` order."""
    columns = [
        pa.array([r.route_id for r in results], pa.string()),
        pa.array([r.confidence for r in results], pa.float64()),
        pa.array([r.route_id is not None and not r.is_fallback for r in results], pa.bool_()),
        pa.array([r.is_fallback for r in results], pa.bool_()),
    ]
    if candidates:
        columns.append(
            pa.array(
                [
                    [
                        {"route": c.route_id, "confidence": c.confidence, "score": c.score}
                        for c in r.candidates[:candidates]
                    ]
                    for r in results
                ],
                _candidates_type(pa),
            )
        )
    return columns
