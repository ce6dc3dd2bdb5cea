"""Checks on a bulk job before any row is routed: the input file, its columns, the output path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._deps import require
from ..errors import BulkInputError, DimensionMismatchError
from ._batch import OUTPUT_COLUMNS, Plan, embedding_matrix

__all__ = ["DEFAULT_EMBEDDING_COLUMN", "check_output", "open_parquet", "resolve_plan"]

DEFAULT_EMBEDDING_COLUMN = "embedding"


def open_parquet(path: Path) -> Any:
    """The input as a `pyarrow.parquet.ParquetFile`; a clear error if it is not one."""
    pq = require("pyarrow.parquet", extra="bulk")
    pa = require("pyarrow", extra="bulk")
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise BulkInputError(f"input {path} {what}; give a Parquet file", path=str(path))
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BulkInputError(
            f"input {path} is not a readable Parquet file ({exc})", path=str(path)
        ) from exc


def resolve_plan(
    parquet: Any,
    path: Path,
    *,
    text_column: str,
    embedding_column: str | None,
    keep_columns: tuple[str, ...],
    candidates: int,
    dimension: int,
) -> Plan:
    """The columns to use, checked against the file's schema and first rows.

    `embedding_column` None means the column ``embedding`` when the file has one, else the
    texts are encoded. A named column that is missing is an error, as is a kept column
    named like an output column.
    """
    schema = parquet.schema_arrow
    names = set(schema.names)
    where = str(path)
    if embedding_column is None and DEFAULT_EMBEDDING_COLUMN in names:
        embedding_column = DEFAULT_EMBEDDING_COLUMN
    for role, name in [("text", text_column), ("embedding", embedding_column)] + [
        ("kept", name) for name in keep_columns
    ]:
        if name is not None and name not in names:
            raise BulkInputError(
                f"{where} has no {role} column {name!r}; its columns are: "
                f"{', '.join(schema.names)}",
                path=where,
            )
    clashes = sorted(set(keep_columns) & set(OUTPUT_COLUMNS))
    if clashes:
        raise BulkInputError(
            f"kept column(s) {', '.join(clashes)} would clash with the output's decision "
            f"columns ({', '.join(OUTPUT_COLUMNS)})",
            path=where,
        )
    pa = require("pyarrow", extra="bulk")
    if not pa.types.is_string(schema.field(text_column).type) and not pa.types.is_large_string(
        schema.field(text_column).type
    ):
        raise BulkInputError(
            f"{where}: text column {text_column!r} has type {schema.field(text_column).type}, "
            "not string",
            path=where,
        )
    plan = Plan(
        path=where,
        text_column=text_column,
        embedding_column=embedding_column,
        keep_columns=tuple(dict.fromkeys(keep_columns)),
        candidates=candidates,
        dimension=dimension,
    )
    if embedding_column is not None:
        _check_first_embeddings(parquet, plan)
    return plan


def _check_first_embeddings(parquet: Any, plan: Plan) -> None:
    """Fail before starting workers when the first rows' vectors have the wrong dimension."""
    assert plan.embedding_column is not None
    for batch in parquet.iter_batches(batch_size=64, columns=[plan.embedding_column]):
        try:
            embedding_matrix(batch.column(0), plan)
        except DimensionMismatchError as exc:
            raise DimensionMismatchError(str(exc).replace(" of a batch", "")) from exc
        return


def check_output(output: Path, input_path: Path) -> None:
    """The output must be a new or replaceable file, in an existing folder, not the input."""
    if output.resolve() == input_path.resolve():
        raise BulkInputError(
            f"output {output} is the input file; write the decisions elsewhere",
            path=str(input_path),
        )
    if output.is_dir():
        raise BulkInputError(f"output {output} is a directory; give a file name", path=str(output))
    if not output.parent.is_dir():
        raise BulkInputError(
            f"the folder of output {output} does not exist ({output.parent})", path=str(output)
        )
