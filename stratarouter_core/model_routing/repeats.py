"""Graded repeats: a query whose exact text was graded is answered mostly from its grades.

The neighbour update (see `evidence`) weighs a graded query by its cosine to the query; an
exact repeat gets the weight of one graded answer against a prior worth a few. That weight is
fitted on neighbours that differ from the query, and it undersells a repeat: a model that got
this very prompt wrong is likely to get it wrong again. Embeddings cannot tell a repeat from a
near copy, either: all-MiniLM reads 256 tokens, so two reading-comprehension prompts that share
a passage and differ in the question embed identically. This stage matches the text instead
(whitespace-collapsed, NFC), and moves p_success toward the mean grade of the copies:

    p <- reliability * mean_grade + (1 - reliability) * p

(for each model graded on a copy). `reliability` is the share of a graded outcome that carries
over when the same prompt is asked again. When the graded data holds repeats in different CV
folds, it is chosen by cross-validated Brier score on those queries; otherwise it is the
config's prior (an LLM re-asked a prompt in sampled decoding reaches the same verdict most of
the time; greedy decoding, always).

Texts are kept as 64-bit BLAKE2b digests, not as text: a saved router holds no prompts.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .kmeans import member_sums

__all__ = ["GradedRepeats", "RepeatsFit", "fit_graded_repeats", "text_keys"]

F64 = NDArray[np.float64]


def _key(text: str) -> int:
    canonical = " ".join(unicodedata.normalize("NFC", text).split())
    return int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=8).digest(), "little")


def text_keys(texts: Sequence[str]) -> NDArray[np.uint64]:
    """The 64-bit key of each text; texts equal up to whitespace and NFC share a key."""
    return np.fromiter((_key(t) for t in texts), dtype=np.uint64, count=len(texts))


@dataclass(frozen=True)
class GradedRepeats:
    """Mean grade per model of each graded text (NaN: no copy graded on that model)."""

    keys: NDArray[np.uint64]  # (K,), sorted
    mean_grades: F64  # (K, M)
    reliability: float
    estimated: bool  # chosen by CV on repeats in the data, not the config's prior
    counts: F64 | None = None  # (K, M) grades behind each mean (None: saves before it, one each)

    def __post_init__(self) -> None:
        """The key -> row lookup `update_one` uses."""
        lookup = dict(zip(self.keys.tolist(), range(len(self.keys))))
        object.__setattr__(self, "_rows", lookup)

    def update(self, p: F64, texts: Sequence[str]) -> F64:
        """p_success (n, M) moved toward the grades of the texts that were graded."""
        keys = text_keys(texts)
        rows = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = np.nonzero(self.keys[rows] == keys)[0]
        if len(found) == 0:
            return p
        out: F64 = p.copy()
        out[found] = _blend(p[found], self.mean_grades[rows[found]], self.reliability)
        return out

    def update_one(self, p: F64, text: str) -> F64:
        """`update` for one text and its p_success (M,)."""
        row = self._rows.get(_key(text))  # type: ignore[attr-defined]
        if row is None:
            return p
        return _blend(p, self.mean_grades[row], self.reliability)

    def with_grades(self, texts: Sequence[str], grades: F64) -> GradedRepeats:
        """This table with the grades (n, M; NaN: ungraded) of `texts` added: a new text gets
        a row, a known one the mean over all of its grades. The reliability is kept."""
        counts = self.counts if self.counts is not None else (~np.isnan(self.mean_grades)) * 1.0
        keys, inverse = np.unique(
            np.concatenate([self.keys, text_keys(texts)]), return_inverse=True
        )
        ids = inverse.ravel().astype(np.int64)
        # the stored means back to sums, so that a text graded again averages every grade
        sums = np.concatenate([np.nan_to_num(self.mean_grades) * counts, np.nan_to_num(grades)])
        known = np.concatenate([counts, (~np.isnan(grades)) * 1.0])
        total = np.asarray(member_sums(ids, sums, len(keys)), dtype=np.float64)
        total_counts = np.asarray(member_sums(ids, known, len(keys)), dtype=np.float64)
        return GradedRepeats(
            keys, _means(total, total_counts), self.reliability, self.estimated, total_counts
        )

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Arrays for the router's .npz (see `from_arrays`)."""
        out = {"repeat_keys": self.keys, "repeat_grades": self.mean_grades}
        if self.counts is not None:
            out["repeat_counts"] = self.counts
        return out

    def scalars(self) -> dict[str, Any]:
        """The JSON-side state."""
        return {"reliability": self.reliability, "estimated": self.estimated}

    @classmethod
    def from_arrays(cls, arrays: Any, scalars: dict[str, Any]) -> GradedRepeats:
        """Inverse of `arrays` + `scalars`."""
        return cls(
            keys=np.asarray(arrays["repeat_keys"], dtype=np.uint64),
            mean_grades=np.asarray(arrays["repeat_grades"], dtype=np.float64),
            reliability=float(scalars["reliability"]),
            estimated=bool(scalars["estimated"]),
            counts=(
                np.asarray(arrays["repeat_counts"], dtype=np.float64)
                if "repeat_counts" in arrays
                else None
            ),
        )


def _blend(p: F64, grades: F64, reliability: float) -> F64:
    out: F64 = np.where(np.isnan(grades), p, reliability * grades + (1.0 - reliability) * p)
    return out


@dataclass(frozen=True)
class RepeatsFit:
    """What `fit_graded_repeats` found: the stage (or None), the updated out-of-fold p, and
    how many training queries had a copy in another fold."""

    stage: GradedRepeats | None
    cv_p_success: F64
    cross_fold_repeats: int


def fit_graded_repeats(
    texts: Sequence[str],
    grades: F64,
    folds: NDArray[np.int64],
    cv_p: F64,
    *,
    prior_reliability: float | None,
    reliabilities: tuple[float, ...],
    min_repeats: int,
) -> RepeatsFit:
    """Mean grades per distinct text; reliability by CV when `min_repeats` training queries
    have a copy in another fold, else `prior_reliability` (None: the stage is off)."""
    if prior_reliability is None or len(texts) == 0:
        return RepeatsFit(None, cv_p, 0)
    distinct, inverse = np.unique(text_keys(texts), return_inverse=True)
    text_ids = inverse.ravel()
    sums, counts = _sums(grades, text_ids)
    mean_grades = _means(sums, counts)
    held_out, copies = _cross_fold_copies(grades, text_ids, folds)
    reliability, estimated, updated = prior_reliability, False, cv_p
    if len(held_out) >= min_repeats:
        known = ~np.isnan(grades[held_out])
        target = np.where(known, grades[held_out], 0.0)

        def brier(r: float) -> float:
            blended = _blend(cv_p[held_out], copies, r)
            return float((((blended - target) ** 2) * known).sum())

        reliability = min(reliabilities, key=brier)
        estimated = True
    if len(held_out):
        updated = cv_p.copy()
        updated[held_out] = _blend(cv_p[held_out], copies, reliability)
    stage = GradedRepeats(distinct, mean_grades, float(reliability), estimated, counts)
    return RepeatsFit(stage, updated, len(held_out))


def _cross_fold_copies(
    grades: F64, text_ids: NDArray[np.intp], folds: NDArray[np.int64]
) -> tuple[NDArray[np.intp], F64]:
    """Training queries with a copy in another fold, and the mean grades of those copies:
    what prediction sees for them when their fold is held out. `text_ids` numbers the
    distinct texts 0..T-1."""
    if text_ids.max(initial=-1) + 1 == len(text_ids):  # no text occurs twice
        return np.zeros(0, dtype=np.intp), np.zeros((0, grades.shape[1]))
    pairs = np.stack([text_ids, folds.astype(np.intp)], axis=1)
    pair_ids = np.unique(pairs, axis=0, return_inverse=True)[1].ravel()
    text_sums, text_counts = _sums(grades, text_ids)
    pair_sums, pair_counts = _sums(grades, pair_ids)
    # a text's copies in other folds: all its copies minus those in the query's own fold
    counts = text_counts[text_ids] - pair_counts[pair_ids]
    held_out = np.nonzero(counts.sum(axis=1) > 0)[0]
    sums = (text_sums[text_ids] - pair_sums[pair_ids])[held_out]
    return held_out, _means(sums, counts[held_out])


def _sums(grades: F64, groups: NDArray[np.intp]) -> tuple[F64, F64]:
    """Per group and model: the sum of the known grades and how many are known."""
    known = ~np.isnan(grades)
    n_groups = int(groups.max(initial=-1)) + 1
    labels = groups.astype(np.int64)
    sums = member_sums(labels, np.where(known, grades, 0.0), n_groups)
    counts = member_sums(labels, known.astype(np.float64), n_groups)
    return np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)


def _means(sums: F64, counts: F64) -> F64:
    """sums / counts, NaN where nothing was counted."""
    means: F64 = np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)
    return means
