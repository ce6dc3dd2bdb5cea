"""The rival `semantic-router` 1.1 (aurelio-labs), run on precomputed embeddings.

Our benchmark commands compare StrataRouter with semantic-router on identical vectors, so the
rival must never embed anything itself. Its `IndexedRouter` only reaches vectors through a
`DenseEncoder`, so this module gives it `_PrecomputedEncoder`, which looks vectors up in a dict.

How semantic-router 1.1.1 routes (read from its source, `semantic_router/routers/`):

* `IndexedRouter(encoder, routes, top_k=5, aggregation="mean")` stores one row per
  (route, utterance) in a `LocalIndex` (a float64 numpy matrix, since encoders return lists of
  Python floats). Utterances repeated within a route are stored once.
* `router(text)` runs on a shared background event loop: the encoder is called in a worker
  thread, then `LocalIndex.query` (in another worker thread) computes the cosine similarity to
  every row, re-computing the row norms on every call, and keeps the `top_k` best rows. Each
  route scores the `aggregation` (`mean`, `sum` or `max`) of its rows among those hits, 0 when
  it has none; routes are ranked by that raw score.
* Abstention: the top route is returned only if its confidence reaches a threshold (the
  route's own `confidence_threshold`, else the router's, else a per-call one). All default to
  `None`, which means no bar at all, so by default it never abstains: out-of-scope recall
  needs `threshold`.
* `fit(X, y, method="platt" | "isotonic")` only calibrates: it maps the raw top-1 score to a
  probability that the top route is right (labels `None` = out of scope). It does not choose
  a threshold; afterwards, `threshold` compares with the calibrated confidence instead of the
  raw score. Ranking, hence in-scope accuracy, never changes.

Example:
    >>> import numpy as np
    >>> baseline = SemanticRouterBaseline(  # doctest: +SKIP
    ...     {"greet": ["hello"], "bye": ["goodbye"]},
    ...     {"hello": np.array([1.0, 0.0]), "goodbye": np.array([0.0, 1.0])},
    ... )
    >>> baseline.route("hi there", np.array([0.9, 0.1]))  # doctest: +SKIP
    'greet'
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from stratarouter_core._deps import require
from stratarouter_core.errors import ConfigError, EncoderError, InvalidQueryError

__all__ = [
    "SETTINGS",
    "BaselineFitReport",
    "SemanticRouterBaseline",
    "add_compare_argument",
    "measure_latency",
]

# semantic-router is pinned by this distribution, not by an extra of the core
_INSTALL = "pip install -e benchmarks  # stratarouter-bench pins semantic-router==1.1.*"

SETTINGS: dict[str, dict[str, Any]] = {
    # IndexedRouter's own defaults
    "default": {"aggregation": "mean", "top_k": 5},
    # best of 9 (aggregation x top_k) settings on a 1,000-query CLINC150 sample (issue 3)
    "tuned": {"aggregation": "sum", "top_k": 20},
}

UtteranceVectors = Mapping[str, ArrayLike] | tuple[Sequence[str], ArrayLike]


@dataclass(frozen=True, slots=True)
class BaselineFitReport:
    """What semantic-router's `fit` reports, plus how long it took.

    Attributes:
        method: Calibration method, `"platt"` or `"isotonic"`.
        n: Number of labelled queries fitted on.
        accuracy: Top-1 accuracy on the in-scope queries among them (no threshold).
        ece: Expected calibration error (10 bins) of the fitted confidences on those queries.
        seconds: Wall-clock time of the fit.
    """

    method: str
    n: int
    accuracy: float
    ece: float
    seconds: float


class _Routable(Protocol):
    def route(self, text: str, vector: NDArray[Any]) -> str | None: ...


def _as_list(vector: ArrayLike) -> list[float]:
    """One vector as the list of Python floats that semantic-router encoders return."""
    array = np.asarray(vector, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise InvalidQueryError(f"expected one finite 1-D vector, got shape {array.shape}")
    return array.tolist()  # type: ignore[no-any-return]


def _vector_table(utterance_vectors: UtteranceVectors) -> dict[str, list[float]]:
    """Normalise both accepted forms of `utterance_vectors` into a text -> vector dict."""
    if isinstance(utterance_vectors, tuple):
        texts, vectors = utterance_vectors
        matrix = np.asarray(vectors)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise ConfigError(
                f"{len(texts)} texts but vectors of shape {matrix.shape}: need one row per text"
            )
        return {text: _as_list(row) for text, row in zip(texts, matrix, strict=True)}
    return {text: _as_list(vector) for text, vector in utterance_vectors.items()}


def _precomputed_encoder(vectors: dict[str, list[float]]) -> Any:
    """A semantic-router `DenseEncoder` that looks texts up in `vectors` (no model, no network).

    The class is built here, not at module level, so that importing this module does not
    import semantic-router.
    """
    encoders = require("semantic_router.encoders.base", install=_INSTALL)
    pydantic = require("pydantic", install=_INSTALL)

    class _PrecomputedEncoder(encoders.DenseEncoder):  # type: ignore[misc, name-defined]
        name: str = "precomputed"
        type: str = "precomputed"
        _vectors: dict[str, list[float]] = pydantic.PrivateAttr(default_factory=dict)

        def __call__(self, docs: list[Any]) -> list[list[float]]:
            try:
                return [self._vectors[doc] for doc in docs]
            except KeyError as exc:
                raise EncoderError(f"no precomputed vector for {exc.args[0]!r}") from exc

    encoder = _PrecomputedEncoder()
    encoder._vectors = vectors
    return encoder


class SemanticRouterBaseline:
    """semantic-router's `IndexedRouter` over precomputed vectors, in a named setting.

    Args:
        route_utterances: Example utterances of each route, by route name.
        utterance_vectors: The embedding of every utterance: a text -> vector mapping, or
            `(texts, vectors)` with one row of `vectors` per text.
        setting: A key of `SETTINGS`: `"default"` (top_k=5, mean) or `"tuned"` (top_k=20, sum).
        threshold: semantic-router's `confidence_threshold`: the top route is returned only
            if its raw score (its calibrated confidence after `fit`) reaches it. `None`, the
            rival's default, never abstains.

    Attributes:
        build_seconds: Time taken to convert the vectors and build the rival's router.
        router: The underlying `semantic_router.IndexedRouter`.

    Raises:
        MissingDependencyError: semantic-router is not installed (stratarouter-bench pins it).
        ConfigError: Unknown setting, no routes, or an utterance without a vector.

    Example:
        >>> import numpy as np
        >>> baseline = SemanticRouterBaseline(  # doctest: +SKIP
        ...     {"a": ["x"], "b": ["y"]}, {"x": np.array([1.0, 0.0]), "y": np.array([0.0, 1.0])}
        ... )
        >>> baseline.route_many(["q"], np.array([[0.1, 0.9]]))  # doctest: +SKIP
        ['b']
    """

    def __init__(
        self,
        route_utterances: Mapping[str, Sequence[str]],
        utterance_vectors: UtteranceVectors,
        *,
        setting: str = "default",
        threshold: float | None = None,
    ) -> None:
        if setting not in SETTINGS:
            raise ConfigError(f"unknown setting {setting!r}; expected one of {sorted(SETTINGS)}")
        if not route_utterances or not any(route_utterances.values()):
            raise ConfigError("need at least one route with at least one utterance")
        semantic_router = require("semantic_router", install=_INSTALL)
        self.setting = setting
        start = time.perf_counter()
        vectors = _vector_table(utterance_vectors)
        missing = [u for utts in route_utterances.values() for u in utts if u not in vectors]
        if missing:
            raise ConfigError(f"{len(missing)} utterances have no vector, e.g. {missing[0]!r}")
        self._vectors = vectors
        self._encoder = _precomputed_encoder(vectors)
        routes = [
            semantic_router.Route(name=name, utterances=list(utterances))
            for name, utterances in route_utterances.items()
            if utterances
        ]
        self.router: Any = semantic_router.IndexedRouter(
            encoder=self._encoder,
            routes=routes,
            confidence_threshold=threshold,
            **SETTINGS[setting],
        )
        self.build_seconds = time.perf_counter() - start
        self._ids = itertools.count()

    @property
    def threshold(self) -> float | None:
        """The rival's `confidence_threshold` (raw score, or calibrated confidence after fit)."""
        value: float | None = self.router.confidence_threshold
        return value

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self.router.confidence_threshold = value

    def decide(self, text: str, vector: ArrayLike) -> tuple[str | None, float | None]:
        """Route one query through the rival's public call, `router(text)`.

        The rival's encoder finds `vector` by a key unique to this call (so concurrent calls
        with the same text cannot mix up), which adds about 1-5 µs to the rival's time.

        Args:
            text: The query text (the rival only passes it to the encoder).
            vector: The query's precomputed embedding.

        Returns:
            The route picked (`None` if it abstained) and its confidence: the raw aggregated
            score, or the calibrated probability once `fit` has run.
        """
        key = f"{text}\x1f{next(self._ids)}"
        self._vectors[key] = _as_list(vector)
        try:
            choice = self.router(key)
        finally:
            del self._vectors[key]
        name: str | None = choice.name
        confidence: float | None = choice.confidence
        return name, confidence

    def route(self, text: str, vector: ArrayLike) -> str | None:
        """The route the rival picks for one query, or `None` if it abstains."""
        return self.decide(text, vector)[0]

    def decide_many(
        self, texts: Sequence[str], vectors: ArrayLike
    ) -> list[tuple[str | None, float | None]]:
        """`decide` for each query, one public call each (the rival has no batch call)."""
        matrix = np.asarray(vectors)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise InvalidQueryError(f"{len(texts)} texts but vectors of shape {matrix.shape}")
        return [self.decide(text, row) for text, row in zip(texts, matrix, strict=True)]

    def route_many(self, texts: Sequence[str], vectors: ArrayLike) -> list[str | None]:
        """`route` for each query, one public call each (the rival has no batch call)."""
        return [name for name, _ in self.decide_many(texts, vectors)]

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str | None],
        vectors: ArrayLike,
        *,
        method: str = "platt",
    ) -> BaselineFitReport:
        """Run semantic-router's `fit`: calibrate the top-1 score into P(top route is right).

        This is all its 1.1 `fit` does. It picks no threshold and does not change which route
        ranks first; set `threshold` afterwards to make it abstain on calibrated confidence.

        Args:
            texts: Held-out labelled queries (not the route utterances: those score ~1.0).
            labels: Their routes; `None` marks an out-of-scope query.
            vectors: One precomputed embedding per query.
            method: `"platt"` (the rival's default) or `"isotonic"`.

        Returns:
            The rival's fit report and the time it took.
        """
        matrix = np.asarray(vectors)
        if matrix.ndim != 2 or not len(texts) == len(labels) == matrix.shape[0]:
            raise ConfigError("texts, labels and vectors must have one entry/row per query")
        added = {
            text: _as_list(row)
            for text, row in zip(texts, matrix, strict=True)
            if text not in self._vectors
        }
        self._vectors.update(added)
        start = time.perf_counter()
        try:
            report = self.router.fit(list(texts), list(labels), method=method)
        finally:
            for text in added:
                del self._vectors[text]
        return BaselineFitReport(
            method=report.method,
            n=report.n,
            accuracy=report.accuracy,
            ece=report.ece,
            seconds=time.perf_counter() - start,
        )


def measure_latency(
    baseline: _Routable,
    texts: Sequence[str],
    vectors: ArrayLike,
    n: int,
    warmup: int = 50,
) -> NDArray[np.float64]:
    """Seconds taken by each of `n` single `route(text, vector)` calls, after `warmup` calls.

    Queries are taken in order, cycling when `n` exceeds their number.

    Args:
        baseline: Anything with `route(text, vector)`, e.g. a `SemanticRouterBaseline`.
        texts: Query texts.
        vectors: Their embeddings, one row per text.
        n: Number of timed calls.
        warmup: Untimed calls made first.

    Returns:
        Per-call latencies in seconds, in call order.
    """
    matrix = np.asarray(vectors)
    if not texts or matrix.ndim != 2 or matrix.shape[0] != len(texts):
        raise InvalidQueryError(f"{len(texts)} texts but vectors of shape {matrix.shape}")
    if n < 1 or warmup < 0:
        raise ConfigError(f"need n >= 1 and warmup >= 0, got n={n}, warmup={warmup}")
    for i in range(warmup):
        baseline.route(texts[i % len(texts)], matrix[i % len(texts)])
    timings = np.empty(n, dtype=np.float64)
    for i in range(n):
        text, row = texts[i % len(texts)], matrix[i % len(texts)]
        start = time.perf_counter()
        baseline.route(text, row)
        timings[i] = time.perf_counter() - start
    return timings


def add_compare_argument(parser: Any) -> None:
    """`--compare semantic-router`: run the rival on the same embeddings too (repeatable)."""
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        choices=["semantic-router"],
        help="also run a rival on the same embeddings",
    )
