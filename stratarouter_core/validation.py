"""Checks on what callers pass in: queries and embeddings, with typed errors naming the problem."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import DimensionMismatchError, InvalidQueryError

__all__ = ["check_embeddings", "check_query", "normalise_rows"]


def check_query(query: object) -> None:
    """Raise InvalidQueryError unless `query` is a non-blank string."""
    if not isinstance(query, str):
        raise InvalidQueryError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidQueryError("query is empty or whitespace")


def check_embeddings(
    embedding: ArrayLike, dimension: int, *, single: bool
) -> NDArray[np.float32]:
    """Embeddings as normalised float32 rows; typed errors for wrong shape, NaN or zero norm."""
    try:
        array = np.asarray(embedding, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidQueryError("embedding must be a numeric array") from exc
    if single and array.ndim == 1 and array.shape[0] == dimension:
        # route(): one vector, checked with Python scalars, cheaper than array reductions.
        norm = math.sqrt(float(array @ array))
        _check_norms(array, finite=math.isfinite(norm), zero=norm == 0.0)
        one: NDArray[np.float32] = (array / norm)[None, :]
        return one
    if single and array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise InvalidQueryError(f"embeddings must be 2-D (n, {dimension}), got shape {array.shape}")
    if array.shape[1] != dimension:
        raise DimensionMismatchError(
            f"embedding has dimension {array.shape[1]}, the router's encoder has {dimension}"
        )
    # One pass gives the norms; NaN or inf anywhere makes a norm non-finite.
    norms = np.sqrt(np.einsum("ij,ij->i", array, array))
    _check_norms(array, finite=bool(np.isfinite(norms).all()), zero=not norms.all())
    normalised: NDArray[np.float32] = array / norms[:, None]
    return normalised


def _check_norms(array: NDArray[np.float32], *, finite: bool, zero: bool) -> None:
    if not finite:
        if not np.isfinite(array).all():
            raise InvalidQueryError("embedding contains NaN or infinite values")
        raise InvalidQueryError("embedding values are too large to normalise")
    if zero:
        raise InvalidQueryError("embedding has zero norm: it points nowhere")


def normalise_rows(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit length (zero rows left as they are), contiguous float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: NDArray[np.float32] = (vectors / norms).astype(np.float32, copy=False)
    return np.ascontiguousarray(out)
