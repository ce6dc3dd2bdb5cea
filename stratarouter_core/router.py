"""The Router: wires the stages of a routing decision, top to bottom.

candidates (prototype index) -> score parts (dense, BM25, rules, learned head)
-> fusion -> calibration -> decision (threshold, fallback)
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .config import RouterConfig
from .encoders.base import BaseEncoder, CachedEncoder, check_vectors
from .errors import (
    ConfigError,
    DimensionMismatchError,
    DuplicateRouteError,
    IndexNotBuiltError,
    InvalidQueryError,
    RouteNotFoundError,
)
from .index import CandidateIndex, build_index
from .scoring.model import (
    FEATURES,
    Features,
    FloatArray,
    FusedScorer,
    ScoringModel,
    gathered_dot,
)
from .scoring.rules import RuleMatcher
from .scoring.sparse import BM25Index
from .text import tokenize
from .types import Candidate, Route, RouteResult

if TYPE_CHECKING:
    from .evaluation import EvaluationReport
    from .learning import FitReport

__all__ = ["Router"]

_FULL_SORT_MAX = 1024
# tuple.__new__ builds each named tuple in C; Candidate._make is a Python call each.
_make_candidate = partial(tuple.__new__, Candidate)
_ONE_ROW = np.zeros((1, 1), dtype=np.intp)  # row index of a single query, built once


@dataclass(frozen=True)
class _Built:
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


class Router:
    """Routes queries to the best of a set of routes, with a calibrated confidence.

    Example:
        >>> from stratarouter_core.testing import HashingEncoder
        >>> router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.2))
        >>> router.add_routes([
        ...     Route(name="billing", examples=["refund my invoice", "I was charged twice"]),
        ...     Route(name="weather", examples=["will it rain today", "weather forecast"]),
        ... ])
        >>> router.build_index()
        >>> router.route("please refund this invoice").route_id
        'billing'
    """

    def __init__(
        self,
        encoder: BaseEncoder | None = None,
        config: RouterConfig | None = None,
        routes: Iterable[Route] = (),
    ) -> None:
        """Create a router; with no encoder, the offline all-MiniLM-L6-v2 `LocalEncoder`."""
        self.config = config or RouterConfig()
        if encoder is None:
            from .encoders.local import LocalEncoder

            encoder = LocalEncoder()
        if self.config.encoder_cache_size and not isinstance(encoder, CachedEncoder):
            encoder = CachedEncoder(encoder, max_entries=self.config.encoder_cache_size)
        self.encoder: BaseEncoder = encoder
        self._routes: dict[str, Route] = {}
        self._routes_version = 0  # bumped on every change, so staleness is an int compare
        self._built: _Built | None = None
        self._build_lock = threading.Lock()
        self.add_routes(routes)

    # ----------------------------------------------------------------- routes
    def add_routes(self, routes: Iterable[Route]) -> None:
        """Add routes; call `build_index()` afterwards. Duplicate names are rejected."""
        new = list(routes)
        for route in new:
            if not isinstance(route, Route):
                raise TypeError(f"expected Route, got {type(route).__name__}")
        names = [r.name for r in new]
        duplicates = sorted({n for n in names if names.count(n) > 1 or n in self._routes})
        if duplicates:
            raise DuplicateRouteError(f"duplicate route name(s): {', '.join(duplicates)}")
        for route in new:
            self._routes[route.name] = route
        self._routes_version += 1

    def add_route(self, route: Route) -> None:
        """Add one route; call `build_index()` afterwards."""
        self.add_routes([route])

    def remove_route(self, name: str) -> None:
        """Remove a route by name; call `build_index()` afterwards."""
        if name not in self._routes:
            raise RouteNotFoundError(f"unknown route {name!r}")
        del self._routes[name]
        self._routes_version += 1

    @property
    def route_names(self) -> tuple[str, ...]:
        """Names of the routes, in the order they were added."""
        return tuple(self._routes)

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes, in the order they were added."""
        return tuple(self._routes.values())

    def get_route(self, name: str) -> Route:
        """The route called `name`."""
        try:
            return self._routes[name]
        except KeyError:
            raise RouteNotFoundError(
                f"unknown route {name!r}; known routes: {', '.join(self._routes) or '(none)'}"
            ) from None

    @property
    def is_built(self) -> bool:
        """True when the index reflects the current routes."""
        built = self._built
        return built is not None and built.routes_version == self._routes_version

    @property
    def model(self) -> ScoringModel:
        """The scoring model in use (fitted or default)."""
        return self._require_built().model

    # ------------------------------------------------------------------ build
    def build_index(self) -> None:
        """Encode the routes' utterances and build the candidate index, BM25 and rules.

        Utterances already encoded (same text) are not re-encoded. A model learned by `fit`
        is kept when the route names are unchanged.
        """
        routes = tuple(self._routes.values())
        if not routes:
            raise IndexNotBuiltError("no routes: add routes before build_index()")
        texts = [u for r in routes for u in r.utterances]
        owner = np.repeat(np.arange(len(routes)), [len(r.utterances) for r in routes])
        vectors = _normalise_rows(self.encode(texts))
        self._install(routes, vectors, owner.astype(np.int64), model=self._reusable_model(routes))

    def _reusable_model(self, routes: tuple[Route, ...]) -> ScoringModel | None:
        built = self._built
        if built is not None and [r.name for r in built.routes] == [r.name for r in routes]:
            return built.model
        return None

    def _install(
        self,
        routes: tuple[Route, ...],
        vectors: NDArray[np.float32],
        owner: NDArray[np.int64],
        model: ScoringModel | None,
    ) -> None:
        starts = np.searchsorted(owner, np.arange(len(routes)))  # utterances are grouped by route
        prototypes = _normalise_rows(np.add.reduceat(vectors, starts, axis=0))
        documents = [
            [t for text in (*r.utterances, *r.keywords) for t in tokenize(text)] for r in routes
        ]
        model = model or ScoringModel.default(self.config.weights)
        built = _Built(
            routes=routes,
            names=tuple(r.name for r in routes),
            routes_version=self._routes_version,
            utterance_vectors=vectors,
            utterance_owner=owner,
            prototypes=prototypes,
            index=build_index(prototypes, self.config.index),
            bm25=BM25Index(documents, k1=self.config.bm25_k1, b=self.config.bm25_b),
            rules=RuleMatcher(routes),
            model=model,
            scorer=FusedScorer.compile(model, prototypes),
            thresholds=self._thresholds(routes, model),
        )
        with self._build_lock:
            self._built = built

    def _thresholds(self, routes: Sequence[Route], model: ScoringModel) -> tuple[float, ...]:
        default = float(model.metadata.get("threshold", self.config.threshold))
        return tuple(default if r.threshold is None else float(r.threshold) for r in routes)

    @property
    def threshold(self) -> float:
        """The router-wide threshold in force: fitted by `fit`, else `config.threshold`."""
        return float(self._require_built().model.metadata.get("threshold", self.config.threshold))

    def route_threshold(self, name: str) -> float:
        """The threshold applied to route `name` (its own, or the router-wide one)."""
        route = self.get_route(name)
        return self.threshold if route.threshold is None else route.threshold

    def set_threshold(self, threshold: float) -> None:
        """Replace the router-wide threshold (fitted or configured); Route.threshold still wins."""
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
        model = self._require_built().model
        self._set_model(replace(model, metadata={**model.metadata, "threshold": float(threshold)}))

    def _set_model(self, model: ScoringModel) -> None:
        built = self._require_built()
        with self._build_lock:
            self._built = replace(
                built,
                model=model,
                scorer=FusedScorer.compile(model, built.prototypes),
                thresholds=self._thresholds(built.routes, model),
            )

    def _require_built(self) -> _Built:
        built = self._built
        if built is None:
            raise IndexNotBuiltError("the router has no index: call build_index() first")
        if built.routes_version != self._routes_version:
            raise IndexNotBuiltError("routes changed since build_index(): call build_index() again")
        return built

    # --------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode texts with the router's encoder (cached), validated, L2-normalised."""
        vectors = check_vectors(
            self.encoder.encode(list(texts)),
            len(texts),
            self.encoder.dimension,
            type(self.encoder).__name__,
        )
        return _normalise_rows(vectors)

    # ---------------------------------------------------------------- routing
    def route(self, query: str, embedding: ArrayLike | None = None) -> RouteResult:
        """Route one query; pass `embedding` to skip encoding.

        Returns the fallback route (or None) when nothing is confident enough.
        """
        start = time.perf_counter_ns()
        _check_query(query)
        built = self._require_built()
        if embedding is None:
            vectors = self.encode([query])
        else:
            vectors = _check_embeddings(embedding, built.prototypes.shape[1], single=True)
        return self._decide(built, [query], vectors, start)[0]

    def route_batch(
        self, queries: Sequence[str], embeddings: ArrayLike | None = None
    ) -> list[RouteResult]:
        """Route many queries in one vectorised pass; same results as `route` one by one."""
        start = time.perf_counter_ns()
        if isinstance(queries, str):
            raise InvalidQueryError("route_batch expects a sequence of queries, not one string")
        queries = list(queries)
        for query in queries:
            _check_query(query)
        built = self._require_built()
        if not queries:
            return []
        if embeddings is None:
            vectors = self.encode(queries)
        else:
            vectors = _check_embeddings(embeddings, built.prototypes.shape[1], single=False)
            if len(vectors) != len(queries):
                raise InvalidQueryError(
                    f"{len(queries)} queries but {len(vectors)} embeddings were given"
                )
        return self._decide(built, queries, vectors, start)

    async def aroute(self, query: str, embedding: ArrayLike | None = None) -> RouteResult:
        """`route` without blocking the event loop when encoding is needed."""
        if embedding is not None:
            return self.route(query, embedding)
        _check_query(query)
        vector = await self.encoder.aencode([query])
        return self.route(query, np.asarray(vector)[0])

    async def aroute_batch(
        self, queries: Sequence[str], embeddings: ArrayLike | None = None
    ) -> list[RouteResult]:
        """`route_batch` without blocking the event loop."""
        return await asyncio.to_thread(self.route_batch, queries, embeddings)

    def _decide(
        self, built: _Built, queries: Sequence[str], vectors: NDArray[np.float32], start: int
    ) -> list[RouteResult]:
        tokens = [tokenize(q) for q in queries]
        fired = self._fired_rules(built, queries, tokens)
        candidates, dense = self._candidates(built, vectors, fired)
        # Score parts are aligned with the scored routes: candidates, or every route.
        sparse = built.bm25.normalized_many(tokens, candidates)
        rule = _rule_columns(fired, candidates, len(queries), len(built.routes))
        scores = built.scorer.fuse(vectors, candidates, dense, sparse, rule)
        rows = _ONE_ROW if len(queries) == 1 else np.arange(len(queries))[:, None]
        order = _best_first(scores, self.config.top_k)
        ranked = scores[rows, order]
        route_ids = order if candidates is None else candidates[rows, order]
        # Only the reported candidates need their score parts: for confidence and the result.
        if dense is None:
            reported_dense = gathered_dot(built.prototypes, route_ids, vectors)
        else:
            reported_dense = dense[rows, order]
        reported = Features(
            reported_dense,
            sparse[rows, order],
            None,
            None if rule is None else rule[rows, order],
            None,
        )
        confidence = built.model.confidence(scores, ranked, reported)
        return self._results(built, route_ids, confidence, ranked, reported, start)

    def _fired_rules(
        self, built: _Built, queries: Sequence[str], tokens: Sequence[Sequence[str]]
    ) -> list[list[int]] | None:
        """Per query, the routes whose keywords or patterns match; None when rules are off."""
        if built.rules.is_empty:
            return None
        return [sorted(built.rules.matched_routes(q, t)) for q, t in zip(queries, tokens)]

    def _candidates(
        self, built: _Built, vectors: NDArray[np.float32], fired: list[list[int]] | None
    ) -> tuple[NDArray[np.int64] | None, NDArray[np.float32] | None]:
        """Routes to score per query, and their cosines: (None, None) for every route.

        Every route is scored up to `max_candidates` routes, and whenever the index is exact
        (an exact search already costs a pass over every route). Above, HNSW preselects
        `max_candidates` routes, and routes whose rules fire replace the weakest of them.
        """
        k = self.config.max_candidates
        if len(built.routes) <= k or built.index.kind == "exact":
            return None, None
        candidates, dense = built.index.search(vectors, k)
        for row, routes in enumerate(fired or ()):
            missing = sorted(set(routes).difference(candidates[row].tolist()))[:k]
            if missing:
                slots = slice(k - len(missing), k)
                candidates[row, slots] = missing
                dense[row, slots] = built.prototypes[missing] @ vectors[row]
        return candidates, dense

    @staticmethod
    def _features(
        built: _Built,
        vectors: NDArray[np.float32],
        candidates: NDArray[np.int64] | None,
        dense: NDArray[np.float32] | None,
        sparse: FloatArray,
        rule: FloatArray | None,
    ) -> Features:
        """Every score part of the scored routes (candidates, or every route when None).

        `dense`, `sparse` and `rule` are aligned with the scored routes; `rule` None means none
        fired; `dense` is None exactly when every route is scored (candidates None).
        """
        # sparse_rel is relative to the query's best BM25 among the scored routes; a row whose
        # best is 0 is all zeros, and dividing by a tiny floor keeps it 0.
        sparse_rel = sparse / np.maximum(sparse.max(axis=1, keepdims=True), 1e-12)
        head = built.model.head
        if dense is None:  # every route is scored: no index computed the cosines
            dense = vectors @ built.prototypes.T
        logits = None if head is None else head.logits(vectors, candidates)
        return Features(dense, sparse, sparse_rel, rule, logits)

    def _results(
        self,
        built: _Built,
        route_ids: NDArray[np.int64],
        confidence: FloatArray,
        scores: FloatArray,
        features: Features,
        start: int,
    ) -> list[RouteResult]:
        """RouteResults from the top candidates of each query (arrays of shape (n, top_k))."""
        names, thresholds, fallback = built.names, built.thresholds, self.config.fallback_route
        columns = zip(
            route_ids.tolist(),
            confidence.tolist(),
            scores.tolist(),
            features.dense.tolist(),
            features.sparse.tolist(),
            repeat([0.0] * scores.shape[1]) if features.rule is None else features.rule.tolist(),
        )
        latency_us = (time.perf_counter_ns() - start) / 1000.0 / len(scores)
        results = []
        make = _make_candidate
        for ids, conf, score, dense, sparse, rules in columns:
            ranked = tuple(
                map(make, zip([names[i] for i in ids], conf, score, dense, sparse, rules))
            )
            accepted = conf[0] >= thresholds[ids[0]]
            results.append(
                RouteResult(
                    route_id=ranked[0].route_id if accepted else fallback,
                    confidence=conf[0],
                    candidates=ranked,
                    latency_us=latency_us,
                    is_fallback=not accepted,
                )
            )
        return results

    # ------------------------------------------------------------ explanation
    def explain(self, query: str, embedding: ArrayLike | None = None) -> str:
        """A readable account of how `query` was routed, candidate by candidate."""
        result = self.route(query, embedding)
        lines = [f"query: {query!r}"]
        verdict = result.route_id if result.route_id is not None else "(none)"
        top = result.top
        if result.is_fallback and top is not None:
            lines.append(
                f"decision: {verdict} - best route {top.route_id!r} had confidence "
                f"{top.confidence:.3f} < threshold {self.route_threshold(top.route_id):.3f}"
            )
        else:
            lines.append(f"decision: {verdict} (confidence {result.confidence:.3f})")
        fitted = "fitted" if self.model.is_fitted else "default, not fitted"
        lines.append(
            f"scoring: {fitted}; weights "
            + ", ".join(f"{n}={w:.3g}" for n, w in zip(FEATURES, self.model.weights) if w)
        )
        lines.append(
            f"{'route':<24}{'confidence':>11}{'score':>9}{'dense':>8}{'sparse':>8}{'rule':>6}"
        )
        for c in result.candidates:
            lines.append(
                f"{c.route_id:<24}{c.confidence:>11.3f}{c.score:>9.3f}{c.dense:>8.3f}"
                f"{c.sparse:>8.3f}{c.rule:>6.0f}"
            )
        lines.append(f"latency: {result.latency_us:.0f} us")
        return "\n".join(lines)

    # ------------------------------------------------------- learn / evaluate
    def fit(
        self,
        queries: Sequence[str],
        labels: Sequence[str | None],
        embeddings: ArrayLike | None = None,
        **options: Any,
    ) -> FitReport:
        """Learn fusion weights, a linear head, the calibrator and the threshold.

        See `stratarouter_core.learning.fit_router` for the options.
        """
        from .learning import fit_router

        return fit_router(self, queries, labels, embeddings, **options)

    def evaluate(
        self,
        queries: Sequence[str],
        labels: Sequence[str | None],
        embeddings: ArrayLike | None = None,
    ) -> EvaluationReport:
        """Accuracy, out-of-scope handling, calibration and latency on labelled queries."""
        from .evaluation import evaluate_router

        return evaluate_router(self, queries, labels, embeddings)

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Save routes, config, vectors, learned model and encoder fingerprint to a directory."""
        from .persistence import save_router

        save_router(self, Path(path))

    @classmethod
    def load(cls, path: str | Path, encoder: BaseEncoder | None = None) -> Router:
        """Load a router saved with `save`, without re-encoding anything."""
        from .persistence import load_router

        return load_router(cls, Path(path), encoder)


def _check_query(query: object) -> None:
    if not isinstance(query, str):
        raise InvalidQueryError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidQueryError("query is empty or whitespace")


def _check_embeddings(embedding: ArrayLike, dimension: int, *, single: bool) -> NDArray[np.float32]:
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


def _rule_columns(
    fired: list[list[int]] | None,
    candidates: NDArray[np.int64] | None,
    n_queries: int,
    n_routes: int,
) -> NDArray[np.float64] | None:
    """1 where a scored route's rule fired for a query, aligned with the scored routes.

    Shape (n_queries, n_routes), or that of `candidates`; None when no rule fired.
    """
    if not fired or not any(fired):
        return None
    if candidates is not None:
        return np.array([np.isin(row, routes) for row, routes in zip(candidates, fired)], float)
    rule = np.zeros((n_queries, n_routes))
    for row, routes in enumerate(fired):
        rule[row, routes] = 1.0
    return rule


def _best_first(scores: FloatArray, k: int) -> NDArray[np.int64]:
    """Column indices of each row's k highest scores, best first (ties: lower index first)."""
    n_rows, n_columns = scores.shape
    if n_columns <= k or (n_rows == 1 and n_columns <= _FULL_SORT_MAX):
        # One short row: a full sort costs less than a partition and a sort of its top.
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rows = np.arange(n_rows)[:, None]
    top = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    order = np.argsort(-scores[rows, top], axis=1, kind="stable")
    result: NDArray[np.int64] = top[rows, order]
    return result


def _normalise_rows(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: NDArray[np.float32] = (vectors / norms).astype(np.float32, copy=False)
    return np.ascontiguousarray(out)
