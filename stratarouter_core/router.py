"""The Router: wires the stages of a routing decision, top to bottom.

candidates (prototype index) -> score parts (dense, BM25, rules, learned head)
-> fusion -> calibration -> decision (threshold, fallback)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .config import FusionWeights, RouterConfig
from .encoders.base import BaseEncoder, CachedEncoder, check_vectors
from .errors import (
    ConfigError,
    DuplicateRouteError,
    EmptyRouterError,
    IndexNotBuiltError,
    InvalidQueryError,
    RouteNotFoundError,
    RouteValidationError,
)
from .index import build_index
from .pipeline import RouterState, features, score_parts
from .scoring.model import FEATURES, Features, FloatArray, FusedScorer, ScoringModel, gathered_dot
from .scoring.rules import RuleMatcher
from .scoring.sparse import BM25Index
from .self_calibration import calibrate_from_routes
from .text import tokenize
from .types import Candidate, Route, RouteResult
from .validation import check_embeddings, check_query, normalise_rows

if TYPE_CHECKING:
    from .evaluation import EvaluationReport
    from .learning import FitReport

__all__ = ["Router"]

_FULL_SORT_MAX = 1024
_UNCALIBRATED_THRESHOLD = 0.5  # confidence is the clipped fused score: nothing to learn from
# tuple.__new__ builds each named tuple in C; Candidate._make is a Python call each.
_make_candidate = partial(tuple.__new__, Candidate)
_ONE_ROW = np.zeros((1, 1), dtype=np.intp)  # row index of a single query, built once


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
        self._built: RouterState | None = None
        self._build_lock = threading.Lock()
        self.add_routes(routes)

    # ----------------------------------------------------------------- routes
    def add_routes(self, routes: Iterable[Route]) -> None:
        """Add routes; call `build_index()` afterwards. Duplicate names are rejected."""
        new = list(routes)
        for route in new:
            if not isinstance(route, Route):
                raise RouteValidationError(
                    f"add_routes expects Route objects, got {type(route).__name__} {route!r:.60}"
                )
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
        """The scoring model in use: fitted, calibrated from the routes, or the default."""
        return self._require_built().model

    @property
    def state(self) -> RouterState:
        """The built state the pipeline stages run on (raises if not built or stale)."""
        return self._require_built()

    # ------------------------------------------------------------------ build
    def build_index(self) -> None:
        """Encode the routes' utterances, build the index, BM25 and rules, and calibrate.

        Utterances already encoded (same text) are not re-encoded. A model learned by `fit`
        is kept when the route names are unchanged; otherwise the confidence map and default
        threshold are learned again from the route examples (see `self_calibration`).
        """
        routes = tuple(self._routes.values())
        if not routes:
            raise EmptyRouterError("no routes: add routes before build_index()")
        texts = [u for r in routes for u in r.utterances]
        owner = np.repeat(np.arange(len(routes)), [len(r.utterances) for r in routes])
        vectors = normalise_rows(self.encode(texts))
        self._install(routes, vectors, owner.astype(np.int64), model=self._reusable_model(routes))

    def restore(
        self, vectors: NDArray[np.float32], owner: NDArray[np.int64], model: ScoringModel
    ) -> None:
        """Install saved utterance vectors (grouped by route, in route order) and a model.

        What `Router.load` does: nothing is encoded and the model is used as saved.
        """
        self._install(tuple(self._routes.values()), vectors, owner, model)

    def _reusable_model(self, routes: tuple[Route, ...]) -> ScoringModel | None:
        built = self._built
        if (
            built is not None
            and built.model.metadata.get("calibrated_from") == "labelled queries"
            and built.names == tuple(r.name for r in routes)
        ):
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
        prototypes = normalise_rows(np.add.reduceat(vectors, starts, axis=0))
        documents = [
            [t for text in (*r.utterances, *r.keywords) for t in tokenize(text)] for r in routes
        ]
        calibrate = model is None and self.config.calibrate_from_routes
        model = model or ScoringModel.default(self.config.weights or FusionWeights())
        built = RouterState(
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
            max_candidates=self.config.max_candidates,
        )
        if calibrate:
            calibrated = calibrate_from_routes(built, oos_rate=self.config.expected_oos_rate)
            built = self._with_model(built, calibrated)
        with self._build_lock:
            self._built = built

    def _thresholds(self, routes: Sequence[Route], model: ScoringModel) -> tuple[float, ...]:
        default = self._threshold_of(model)
        return tuple(default if r.threshold is None else float(r.threshold) for r in routes)

    def _threshold_of(self, model: ScoringModel) -> float:
        if self.config.threshold is not None:  # the user's number always wins
            return float(self.config.threshold)
        return float(model.metadata.get("threshold", _UNCALIBRATED_THRESHOLD))

    @property
    def threshold(self) -> float:
        """The router-wide threshold in force.

        `config.threshold` when given; else the last of `set_threshold`, `fit` and the
        calibration from the routes at `build_index`; 0.5 for a router with nothing to
        calibrate from (a single route, or no route with two utterances).
        """
        return self._threshold_of(self._require_built().model)

    def route_threshold(self, name: str) -> float:
        """The threshold applied to route `name` (its own, or the router-wide one)."""
        route = self.get_route(name)
        return self.threshold if route.threshold is None else route.threshold

    def set_threshold(self, threshold: float) -> None:
        """Replace the router-wide threshold; Route.threshold still wins.

        The value set replaces the configured threshold too (the config is replaced by a copy
        with `threshold=None`), so `router.threshold` is what was set.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
        model = self._require_built().model
        self.config = self.config.replace(threshold=None)
        metadata = {**model.metadata, "threshold": float(threshold)}
        self.install_model(replace(model, metadata=metadata))

    def install_model(self, model: ScoringModel) -> None:
        """Replace the scoring model of the built router (what `fit` does when it is done)."""
        built = self._require_built()
        with self._build_lock:
            self._built = self._with_model(built, model)

    def _with_model(self, built: RouterState, model: ScoringModel) -> RouterState:
        return replace(
            built,
            model=model,
            scorer=FusedScorer.compile(model, built.prototypes),
            thresholds=self._thresholds(built.routes, model),
        )

    def _require_built(self) -> RouterState:
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
        return normalise_rows(vectors)

    # ---------------------------------------------------------------- routing
    def route(self, query: str, embedding: ArrayLike | None = None) -> RouteResult:
        """Route one query; pass `embedding` to skip encoding.

        Returns the fallback route (or None) when nothing is confident enough.
        """
        start = time.perf_counter_ns()
        check_query(query)
        built = self._require_built()
        if embedding is None:
            vectors = self.encode([query])
        else:
            vectors = check_embeddings(embedding, built.prototypes.shape[1], single=True)
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
            check_query(query)
        built = self._require_built()
        if not queries:
            return []
        if embeddings is None:
            vectors = self.encode(queries)
        else:
            vectors = check_embeddings(embeddings, built.prototypes.shape[1], single=False)
            if len(vectors) != len(queries):
                raise InvalidQueryError(
                    f"{len(queries)} queries but {len(vectors)} embeddings were given"
                )
        return self._decide(built, queries, vectors, start)

    async def aroute(self, query: str, embedding: ArrayLike | None = None) -> RouteResult:
        """`route` without blocking the event loop when encoding is needed."""
        if embedding is not None:
            return self.route(query, embedding)
        check_query(query)
        vector = await self.encoder.aencode([query])
        return self.route(query, np.asarray(vector)[0])

    async def aroute_batch(
        self, queries: Sequence[str], embeddings: ArrayLike | None = None
    ) -> list[RouteResult]:
        """`route_batch`, awaiting the encoder's `aencode` when encoding is needed."""
        if embeddings is not None or isinstance(queries, str):
            return self.route_batch(queries, embeddings)
        queries = list(queries)
        for query in queries:
            check_query(query)
        if not queries:
            return []
        vectors = await self.encoder.aencode(queries)
        return self.route_batch(queries, np.asarray(vectors))

    def _decide(
        self, built: RouterState, queries: Sequence[str], vectors: NDArray[np.float32], start: int
    ) -> list[RouteResult]:
        parts = score_parts(built, queries, vectors)  # candidates and their score parts
        candidates, dense, sparse, rule = parts.candidates, parts.dense, parts.sparse, parts.rule
        scores = built.scorer.fuse(vectors, candidates, dense, sparse, rule)  # fusion
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
        confidence = built.model.confidence(scores, ranked)  # calibration
        return self._results(built, route_ids, confidence, ranked, reported, start)  # decision

    def _results(
        self,
        built: RouterState,
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
                    is_fallback=not accepted and fallback is not None,
                )
            )
        return results

    # ------------------------------------------------------------ explanation
    def explain(self, query: str, embedding: ArrayLike | None = None) -> str:
        """A readable account of how `query` was routed, candidate by candidate.

        Each candidate's score is the sum of its weighted parts shown (dense, sparse,
        sparse_rel, rule, head), so the table adds up; confidence is that score through the
        calibration.
        """
        result = self.route(query, embedding)
        built = self._require_built()
        vector = (
            self.encode([query])
            if embedding is None
            else check_embeddings(embedding, built.prototypes.shape[1], single=True)
        )
        parts = score_parts(built, [query], vector)
        every = features(built, vector, parts, built.model.head)
        column = {
            int(route): c
            for c, route in enumerate(
                range(len(built.routes)) if parts.candidates is None else parts.candidates[0]
            )
        }
        names = {name: i for i, name in enumerate(built.names)}
        weights = built.model.weights.tolist()
        lines = [f"query: {query!r}"]
        verdict = result.route_id if result.route_id is not None else "(none)"
        top = result.top
        if top is not None and top.confidence < self.route_threshold(top.route_id):
            lines.append(
                f"decision: {verdict} - best route {top.route_id!r} had confidence "
                f"{top.confidence:.3f} < threshold {self.route_threshold(top.route_id):.3f}"
            )
        else:
            lines.append(f"decision: {verdict} (confidence {result.confidence:.3f})")
        source = built.model.metadata.get("calibrated_from", "nothing (uncalibrated default)")
        lines.append(
            f"calibrated from: {source}; score = "
            + " + ".join(f"{w:.3g}*{n}" for n, w in zip(FEATURES, weights) if w)
        )
        header = f"{'route':<24}{'confidence':>11}{'score':>9}"
        lines.append(header + "".join(f"{n:>11}" for n in FEATURES))
        for candidate in result.candidates:
            c = column[names[candidate.route_id]]
            values = [0.0 if part is None else float(part[0, c]) for part in every]
            lines.append(
                f"{candidate.route_id:<24}{candidate.confidence:>11.3f}{candidate.score:>9.3f}"
                + "".join(f"{v:>11.3f}" for v in values)
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


