"""The routing pipeline's stages over a built router state, shared by every caller.

candidates -> score parts -> fusion -> calibration -> decision

`Router.route` / `route_batch` run them through the compiled `FusedScorer`; `fit`, the
self-calibration at `build_index` and `explain` call the same stage functions on the same
`RouterState`, so there is one definition of what a route's score parts are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .config import RouterConfig
from .encoders.base import BaseEncoder
from .index import CandidateIndex
from .scoring.model import Features, FloatArray, FusedScorer, LinearHead, ScoringModel
from .scoring.rules import RuleMatcher
from .scoring.sparse import BM25Index
from .text import tokenize
from .types import Route, RouteResult

__all__ = ["RouterState", "RoutingEngine", "ScoreParts", "features", "score_parts"]


@dataclass(frozen=True)
class RouterState:
    """Everything `build_index` derives from the routes; replaced as a whole, never mutated."""

    routes: tuple[Route, ...]
    names: tuple[str, ...]
    routes_version: int
    utterance_vectors: NDArray[np.float32]  # (n_utterances, d), normalised
    utterance_owner: NDArray[np.int64]  # route index of each utterance
    prototypes: NDArray[np.float32]  # (n_routes, d), normalised centroids
    index: CandidateIndex
    bm25: BM25Index
    rules: RuleMatcher
    model: ScoringModel
    scorer: FusedScorer  # `model` folded with the prototypes: what route() evaluates
    thresholds: tuple[float, ...]  # per route, after Route.threshold overrides
    max_candidates: int


class RoutingEngine(Protocol):
    """What `fit`, `evaluate` and persistence need of a router (`Router` is one).

    They depend on this, not on `Router`, so the router can call them without an import
    circle.
    """

    config: RouterConfig
    encoder: BaseEncoder

    def __init__(
        self,
        encoder: BaseEncoder | None = ...,
        config: RouterConfig | None = ...,
        routes: Iterable[Route] = ...,
    ) -> None: ...

    @property
    def state(self) -> RouterState:
        """The built state."""
        ...

    @property
    def route_names(self) -> tuple[str, ...]:
        """Route names in order."""
        ...

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Normalised vectors of `texts`."""
        ...

    def route(self, query: str, embedding: ArrayLike | None = None) -> RouteResult:
        """Route one query."""
        ...

    def route_batch(
        self, queries: Sequence[str], embeddings: ArrayLike | None = None
    ) -> list[RouteResult]:
        """Route many queries."""
        ...

    def install_model(self, model: ScoringModel) -> None:
        """Replace the scoring model."""
        ...

    def restore(
        self,
        vectors: NDArray[np.float32],
        owner: NDArray[np.int64],
        model: ScoringModel,
    ) -> None:
        """Install saved utterance vectors and model without encoding or calibrating."""
        ...


@dataclass(frozen=True)
class ScoreParts:
    """Stages 1-2 for a batch of queries: the scored routes and their raw score parts.

    Every array is aligned with the scored routes: `candidates` (n, k), or every route when
    `candidates` is None (then `dense` is None too: the fused scorer computes the cosines).
    """

    candidates: NDArray[np.int64] | None
    dense: NDArray[np.float32] | None
    sparse: FloatArray
    rule: FloatArray | None  # 1 where a scored route's rule fired; None when none fired


def score_parts(
    state: RouterState, queries: Sequence[str], vectors: NDArray[np.float32]
) -> ScoreParts:
    """Candidates, then BM25 and rule parts of every scored route, for normalised `vectors`."""
    tokens = [tokenize(q) for q in queries]
    fired = _fired_rules(state, queries, tokens)
    candidates, dense = _candidates(state, vectors, fired)
    sparse = state.bm25.normalized_many(tokens, candidates)
    rule = _rule_columns(fired, candidates, len(queries), len(state.routes))
    return ScoreParts(candidates, dense, sparse, rule)


def features(
    state: RouterState,
    vectors: NDArray[np.float32],
    parts: ScoreParts,
    head: LinearHead | None,
) -> Features:
    """Every score part of the scored routes, for learning and explanation (not the hot path).

    `head` is the linear head to score with (the state's own, a cross-fitted one, or None).
    """
    dense = vectors @ state.prototypes.T if parts.dense is None else parts.dense
    logits = None if head is None else head.logits(vectors, parts.candidates)
    return Features(dense, parts.sparse, relative_sparse(parts.sparse), parts.rule, logits)


def relative_sparse(sparse: FloatArray) -> FloatArray:
    """BM25 relative to each query's best scored route; a row whose best is 0 stays 0."""
    out: FloatArray = sparse / np.maximum(sparse.max(axis=1, keepdims=True), 1e-12)
    return out


def _fired_rules(
    state: RouterState, queries: Sequence[str], tokens: Sequence[Sequence[str]]
) -> list[list[int]] | None:
    """Per query, the routes whose keywords or patterns match; None when there are no rules."""
    if state.rules.is_empty:
        return None
    return [sorted(state.rules.matched_routes(q, t)) for q, t in zip(queries, tokens)]


def _candidates(
    state: RouterState, vectors: NDArray[np.float32], fired: list[list[int]] | None
) -> tuple[NDArray[np.int64] | None, NDArray[np.float32] | None]:
    """Routes to score per query, and their cosines: (None, None) for every route.

    Every route is scored up to `max_candidates` routes, and whenever the index is exact
    (an exact search already costs a pass over every route). Above, HNSW preselects
    `max_candidates` routes, and routes whose rules fire replace the weakest of them.
    """
    k = state.max_candidates
    if len(state.routes) <= k or state.index.kind == "exact":
        return None, None
    candidates, dense = state.index.search(vectors, k)
    for row, routes in enumerate(fired or ()):
        missing = sorted(set(routes).difference(candidates[row].tolist()))[:k]
        if missing:
            slots = slice(k - len(missing), k)
            candidates[row, slots] = missing
            dense[row, slots] = state.prototypes[missing] @ vectors[row]
    return candidates, dense


def _rule_columns(
    fired: list[list[int]] | None,
    candidates: NDArray[np.int64] | None,
    n_queries: int,
    n_routes: int,
) -> NDArray[np.float64] | None:
    """1 where a scored route's rule fired for a query; None when no rule fired."""
    if not fired or not any(fired):
        return None
    if candidates is not None:
        return np.array([np.isin(row, routes) for row, routes in zip(candidates, fired)], float)
    rule = np.zeros((n_queries, n_routes))
    for row, routes in enumerate(fired):
        rule[row, routes] = 1.0
    return rule
