"""BM25 over one document per route, precomputed so a query costs one `bincount`.

Because BM25 only depends on (term, document), every term's contribution to every route is
computed once at build time and stored as a CSR matrix (term -> routes). Scoring a query is then
a gather of the query terms' rows and a `bincount` into the route axis: no loop over documents.

The term weights are Okapi BM25's (the same saturation and length normalisation as
`rank_bm25.BM25Okapi`) with a non-negative idf, ``log(1 + (N - df + 0.5) / (df + 0.5))`` (as in
Lucene): Okapi's ``log((N - df + 0.5) / (df + 0.5))`` is zero or negative for a word in half
the documents or more, which with two or three routes is most words, and its floor for those
(a share of the mean idf) turns negative too. Function words are kept: with this idf a word in
every route weighs little anyway, and question words and negations tell intents apart
(removing an English stop-word list cost 0.7 points of CLINC150 top-1, measured).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .model import FloatArray

__all__ = ["BM25Index"]

_DENSE_MAX_CELLS = 4_000_000
_COMMON_SHARE = 16  # a term in more than 1/16 of the route documents is "common"


class BM25Index:
    """Okapi BM25 of queries against route documents, normalised to [0, 1).

    `score` returns raw BM25 per route; `normalized` divides by what the query could attain:
    every query term saturated in a document (idf * (k1 + 1)), and at least what one word
    found in a single document would attain. So the sparse signal means "how much of the
    query's information this route explains", and a query of common words alone cannot score
    high. Terms unseen in any document count with the idf of a term in no document: a query
    of unknown words is far from every route, not close to all of them. Every score is finite
    and non-negative at any number of routes, one included.

    Example:
        >>> index = BM25Index([["refund", "invoice"], ["reset", "password"], ["weather", "today"]])
        >>> scores = index.normalized(["refund", "my", "invoice"])
        >>> bool(scores[0] > scores[1])
        True
    """

    def __init__(
        self,
        documents: Sequence[Sequence[str]],
        *,
        k1: float = 1.5,
        b: float = 0.75,
    ) -> None:
        """Index `documents` (one token list per route)."""
        self.k1, self.b = k1, b
        self.n_documents = len(documents)
        counts = [Counter(doc) for doc in documents]
        lengths = np.array([len(doc) for doc in documents], dtype=np.float64)
        average_length = float(lengths.mean()) if len(lengths) and lengths.sum() else 1.0
        document_frequency: Counter[str] = Counter()
        for doc_counts in counts:
            document_frequency.update(doc_counts.keys())
        self.vocabulary: dict[str, int] = {t: i for i, t in enumerate(sorted(document_frequency))}
        self.idf = np.array(
            [self.idf_of(document_frequency[t]) for t in self.vocabulary], dtype=np.float64
        )
        self.unseen_idf = self.idf_of(0)
        # The least a query's bound can be: one word found in a single document, saturated.
        self.min_bound = self.idf_of(1) * (k1 + 1.0)

        self._counts, self._lengths, self._average_length = counts, lengths, average_length
        length_norm = k1 * (1.0 - b + b * lengths / average_length)
        rows: list[list[tuple[int, float]]] = [[] for _ in self.vocabulary]
        for doc_id, doc_counts in enumerate(counts):
            for term, tf in doc_counts.items():
                term_id = self.vocabulary[term]
                weight = self.idf[term_id] * tf * (k1 + 1.0) / (tf + length_norm[doc_id])
                rows[term_id].append((doc_id, weight))
        self.indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        self.indptr[1:] = np.cumsum([len(r) for r in rows])
        self.indices = np.array([d for r in rows for d, _ in r], dtype=np.int64)
        self.data = np.array([w for r in rows for _, w in r], dtype=np.float64)
        # Small indexes also keep a dense float32 term x route table, with each term's
        # attainable score as a last column: one gather and sum then gives a query's scores and
        # its normalising bound together, the cheapest path for route().
        self._table: NDArray[np.float32] | None = None
        if len(rows) * (self.n_documents + 1) <= _DENSE_MAX_CELLS:
            table = np.zeros((len(rows), self.n_documents + 1), dtype=np.float32)
            owners = np.repeat(np.arange(len(rows)), np.diff(self.indptr))
            table[owners, self.indices] = self.data
            table[:, -1] = self.idf * (k1 + 1.0)
            self._table = table
        # Without the table, a query's common words would touch most route documents'
        # postings; their rows are kept dense (most frequent first, within the same cell
        # budget), so a query walks the postings of its rarer words only.
        frequency = np.diff(self.indptr)
        by_frequency = np.argsort(-frequency, kind="stable")
        n_common = 0
        if self._table is None and self.n_documents:
            n_common = int((frequency > self.n_documents // _COMMON_SHARE).sum())
            n_common = min(n_common, _DENSE_MAX_CELLS // self.n_documents)
        common = by_frequency[:n_common]
        self._common_slot = np.full(len(rows), -1, dtype=np.int64)
        self._common_slot[common] = np.arange(n_common)
        self._common_rows = np.zeros((n_common, self.n_documents), dtype=np.float64)
        for slot, term_id in enumerate(common.tolist()):
            postings = slice(self.indptr[term_id], self.indptr[term_id + 1])
            self._common_rows[slot, self.indices[postings]] = self.data[postings]

    def idf_of(self, document_frequency: int) -> float:
        """Inverse document frequency of a term found in `document_frequency` documents (> 0)."""
        n, df = self.n_documents, document_frequency
        return math.log1p((n - df + 0.5) / (df + 0.5))

    def upper_bound(self, tokens: Sequence[str]) -> float:
        """What `normalized` divides by: the largest score these tokens could attain, or more."""
        vocabulary, idf = self.vocabulary, self.idf
        total = sum(idf[vocabulary[t]] if t in vocabulary else self.unseen_idf for t in tokens)
        return max(float(total) * (self.k1 + 1.0), self.min_bound)

    def normalized_without(self, document: int, tokens: Sequence[str]) -> float:
        """`normalized` of `tokens` against `document` with `tokens` taken out of it.

        What BM25 would give a route's example if that example were not one of the route's
        utterances (leave-one-out), without rebuilding the index. The idf and the average
        document length are kept: one example moves them little.
        """
        counts, own = self._counts[document], Counter(tokens)
        length = self._lengths[document] - len(tokens)
        length_norm = self.k1 * (1.0 - self.b + self.b * max(length, 0.0) / self._average_length)
        vocabulary, total = self.vocabulary, 0.0
        for term in tokens:
            tf = counts.get(term, 0) - own[term]
            if tf > 0:
                total += self.idf[vocabulary[term]] * tf * (self.k1 + 1.0) / (tf + length_norm)
        return total / self.upper_bound(tokens)

    def score(self, tokens: Sequence[str]) -> NDArray[np.float64]:
        """Raw BM25 score of every route document for one tokenised query."""
        scores: NDArray[np.float64] = self.score_many([tokens])[0]
        return scores

    def normalized(self, tokens: Sequence[str]) -> FloatArray:
        """BM25 of every route divided by the query's attainable maximum, in [0, 1)."""
        scores: FloatArray = self.normalized_many([tokens])[0]
        return scores

    def score_many(self, queries: Sequence[Sequence[str]]) -> NDArray[np.float64]:
        """Raw BM25 scores, shape (len(queries), n_documents), in one vectorised pass."""
        terms = self._query_terms(queries)
        return self._score_postings(terms.ids, terms.owner, len(queries))

    def normalized_many(
        self, queries: Sequence[Sequence[str]], candidates: NDArray[np.int64] | None = None
    ) -> FloatArray:
        """`score_many` divided row-wise by each query's attainable maximum.

        With `candidates` (n, k), only those routes are scored: shape (n, k). Small indexes
        answer from the float32 table (equal to the exact scores within float32 rounding);
        large ones from the exact float64 postings.
        """
        table, unseen_bound = self._table, self.unseen_idf * (self.k1 + 1.0)
        if candidates is not None and table is not None:
            every = self.normalized_many(queries)
            picked: FloatArray = every[np.arange(len(queries))[:, None], candidates]
            return picked
        if len(queries) == 1 and table is not None:  # route(): Python scalars, few arrays
            vocabulary = self.vocabulary
            ids = [vocabulary[t] for t in queries[0] if t in vocabulary]
            sums = table.take(ids, axis=0).sum(axis=0, keepdims=True)  # take: cheapest gather
            bound = float(sums[0, -1]) + (len(queries[0]) - len(ids)) * unseen_bound
            single: FloatArray = sums[:, :-1] / max(bound, self.min_bound)
            return single
        terms = self._query_terms(queries)
        if table is not None:
            occurrences = _occurrences(terms.owner, terms.ids, (len(queries), len(table)))
            sums = np.asarray(occurrences @ table)
            scores: FloatArray = sums[:, :-1]
            bounds = sums[:, -1] + terms.unknown * unseen_bound
        else:
            scores = self._split_scores(terms, candidates)
            idf = self.idf[terms.ids]
            known_idf = np.bincount(terms.owner, weights=idf, minlength=len(queries))
            bounds = known_idf * (self.k1 + 1.0) + terms.unknown * unseen_bound
        # A query of unknown words only has a positive bound and zero scores: it stays 0.
        normalized: FloatArray = scores / np.maximum(bounds, self.min_bound)[:, None]
        return normalized

    def _query_terms(self, queries: Sequence[Sequence[str]]) -> _QueryTerms:
        vocabulary = self.vocabulary
        lengths = np.array([len(tokens) for tokens in queries], dtype=np.int64)
        looked_up = np.array(
            [vocabulary.get(t, -1) for tokens in queries for t in tokens], dtype=np.int64
        )
        known = looked_up >= 0
        owner = np.repeat(np.arange(len(queries)), lengths)[known]
        counts = np.bincount(owner, minlength=len(queries))
        return _QueryTerms(looked_up[known], owner, counts, lengths - counts)

    def _split_scores(
        self, terms: _QueryTerms, candidates: NDArray[np.int64] | None
    ) -> NDArray[np.float64]:
        """Raw BM25 of the scored routes: rare words from postings, common ones from rows."""
        n_queries, owner = len(terms.counts), terms.owner
        slots = self._common_slot[terms.ids]
        common = slots >= 0
        scores = self._score_postings(terms.ids[~common], owner[~common], n_queries)
        if candidates is not None:
            scores = scores[np.arange(n_queries)[:, None], candidates]
        if not common.any():
            return scores
        slots, owner = slots[common], owner[common]
        if candidates is None and n_queries == 1:
            scores += self._common_rows.take(slots, axis=0).sum(axis=0)
            return scores
        if candidates is None:
            occurrences = _occurrences(owner, slots, (n_queries, len(self._common_rows)))
            scores += np.asarray(occurrences @ self._common_rows)
            return scores
        k = candidates.shape[1]
        gathered = self._common_rows[slots[:, None], candidates[owner]]  # (common words, k)
        cells = (owner[:, None] * k + np.arange(k)).ravel()
        scores += np.bincount(cells, gathered.ravel(), minlength=n_queries * k).reshape(-1, k)
        return scores

    def _score_postings(
        self, ids: NDArray[np.int64], owner: NDArray[np.int64], n_queries: int
    ) -> NDArray[np.float64]:
        n_docs = self.n_documents
        if len(ids) == 0:
            return np.zeros((n_queries, n_docs), dtype=np.float64)
        starts, ends = self.indptr[ids], self.indptr[ids + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        # Positions of every posting of every query term, without a Python loop over terms.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        postings = offsets + np.arange(total, dtype=np.int64)
        rows = np.repeat(owner, lengths)
        flat = rows * n_docs + self.indices[postings]
        scores = np.bincount(flat, weights=self.data[postings], minlength=n_queries * n_docs)
        return scores.astype(np.float64, copy=False).reshape(n_queries, n_docs)


class _QueryTerms(NamedTuple):
    """Known term ids of a batch of queries, concatenated, with per-query counts."""

    ids: NDArray[np.int64]  # known term ids, query after query, repeated per occurrence
    owner: NDArray[np.int64]  # the query of each id
    counts: NDArray[np.int64]  # known terms per query
    unknown: NDArray[np.int64]  # tokens per query absent from every document


def _occurrences(
    rows: NDArray[np.int64], columns: NDArray[np.int64], shape: tuple[int, int]
) -> Any:
    """The sparse matrix counting each (row, column) pair (repeated pairs add up)."""
    from scipy.sparse import csr_matrix

    return csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=shape)
