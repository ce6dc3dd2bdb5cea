"""`ModelRouter`: send each query to the LLM that answers it well for the price.

Learns, from graded answers (or pairwise preferences), a calibrated probability that each model
answers a query well (see `predictor`), prices each model on the query (see `costs`) and picks
one with a decision rule (see `decision`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..encoders.base import BaseEncoder, check_vectors
from ..errors import DimensionMismatchError, InvalidQueryError, NotFittedError
from .costs import make_token_counter
from .decision import Rule, decide_one, unfamiliar
from .errors import (
    DuplicateModelError,
    InvalidScoresError,
    ModelSpecError,
    NoGradedDataError,
    UnknownModelError,
)
from .predictor import SuccessModel, fit_success_model
from .types import (
    ModelChoice,
    ModelOption,
    ModelRouterConfig,
    ModelRoutingReport,
    ModelSpec,
    check_similarity_floor,
)

__all__ = ["ModelRouter"]

F64 = NDArray[np.float64]
MIN_GRADED = 10  # fewer graded queries than this cannot be cross-fitted meaningfully
Scores = Sequence[Mapping[str, float | None]] | Mapping[str, Mapping[str, float | None]]


class ModelRouter:
    """Routes each query to one of several LLMs, by calibrated success probability and cost.

    Example:
        >>> from stratarouter_core.testing import HashingEncoder
        >>> models = [ModelSpec("big", 2.5, 10.0), ModelSpec("small", 0.15, 0.6)]
        >>> mr = ModelRouter(models, encoder=HashingEncoder(dimension=64))
        >>> hard = [f"prove theorem {i} about primes" for i in range(40)]
        >>> easy = [f"say hello to friend {i}" for i in range(40)]
        >>> scores = [{"big": 1.0, "small": 0.0}] * 40 + [{"big": 1.0, "small": 1.0}] * 40
        >>> _ = mr.fit(hard + easy, scores)
        >>> mr.route("say hello to friend 77", min_quality=0.8).model
        'small'
        >>> mr.route("prove theorem 77 about primes", min_quality=0.8).model
        'big'
    """

    def __init__(
        self,
        models: Sequence[ModelSpec],
        encoder: BaseEncoder | None = None,
        config: ModelRouterConfig | None = None,
    ) -> None:
        """Route over `models`; with no encoder, the offline all-MiniLM-L6-v2 `LocalEncoder`."""
        models = tuple(models)
        if not models:
            raise ModelSpecError("a ModelRouter needs at least one model")
        seen: set[str] = set()
        for spec in models:
            if not isinstance(spec, ModelSpec):
                raise ModelSpecError(f"models must be ModelSpec, got {type(spec).__name__}")
            if spec.name in seen:
                raise DuplicateModelError(f"two models are named {spec.name!r}")
            seen.add(spec.name)
        self.config = config or ModelRouterConfig()
        if self.config.fallback_model is not None and self.config.fallback_model not in seen:
            raise UnknownModelError(f"fallback_model {self.config.fallback_model!r} is not a model")
        if encoder is None:
            from ..encoders.local import LocalEncoder

            encoder = LocalEncoder()
        self.encoder = encoder
        self._models = models
        self._index = {spec.name: i for i, spec in enumerate(models)}
        self._names = tuple(spec.name for spec in models)
        fallback = self.config.fallback_model
        self._fallback_index = None if fallback is None else self._index[fallback]
        self._count_tokens = make_token_counter(encoder, self.config.chars_per_token)
        self._predictor: SuccessModel | None = None
        self._mean_quality: list[float] | None = None
        self._report: ModelRoutingReport | None = None
        self._fit_id: str | None = None
        self._output_tokens = self._default_output_tokens({})
        self._prices()

    # -------------------------------------------------------------------- properties
    @property
    def models(self) -> tuple[ModelSpec, ...]:
        """The models, in the order of every per-model array."""
        return self._models

    @property
    def model_names(self) -> tuple[str, ...]:
        """Names of the models, in order."""
        return tuple(spec.name for spec in self._models)

    @property
    def is_fitted(self) -> bool:
        """True once `fit` (or `fit_preferences`, or `load`) has run."""
        return self._predictor is not None

    @property
    def report(self) -> ModelRoutingReport | None:
        """The last fit's report (None before fitting)."""
        return self._report

    @property
    def token_counting(self) -> str:
        """How prompt tokens are counted: "tokenizer" or "estimate" (see `costs`)."""
        return self._count_tokens.method

    @property
    def output_tokens(self) -> dict[str, float]:
        """Expected completion tokens per model (spec, learned, or the config's default)."""
        return dict(zip(self.model_names, self._output_tokens.tolist()))

    def _default_output_tokens(self, learned: Mapping[str, float]) -> F64:
        return np.array(
            [
                spec.expected_output_tokens
                if spec.expected_output_tokens is not None
                else learned.get(spec.name, self.config.default_output_tokens)
                for spec in self._models
            ],
            dtype=np.float64,
        )

    def _prices(self) -> None:
        """Cost of a query = input_tokens * slope + intercept, per model."""
        per_input = np.array([s.input_usd_per_mtok for s in self._models]) / 1e6
        per_output = np.array([s.output_usd_per_mtok for s in self._models]) / 1e6
        self._cost_slope = per_input
        self._cost_intercept = (
            self._output_tokens * per_output + self.config.prompt_overhead_tokens * per_input
        )
        # route() prices one query with Python floats: cheaper than arrays of a few models
        self._slope_list: list[float] = self._cost_slope.tolist()
        self._intercept_list: list[float] = self._cost_intercept.tolist()

    # ---------------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Encode texts with the router's encoder, validated and L2-normalised."""
        return self._checked(self.encoder.encode(list(texts)), len(texts))

    async def aencode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """`encode` awaiting the encoder's `aencode` (a worker thread for a local model)."""
        return self._checked(await self.encoder.aencode(list(texts)), len(texts))

    def _checked(self, vectors: NDArray[np.float32], n: int) -> NDArray[np.float32]:
        encoder = self.encoder
        return _normalise(check_vectors(vectors, n, encoder.dimension, type(encoder).__name__))

    def _vectors(self, queries: Sequence[str], embeddings: ArrayLike | None) -> NDArray[np.float32]:
        if embeddings is None:
            return self.encode(queries)
        return _check_embeddings(embeddings, len(queries), self.encoder.dimension)

    # ----------------------------------------------------------------------- fitting
    def fit(
        self,
        queries: Sequence[str],
        scores: Scores,
        embeddings: ArrayLike | None = None,
        *,
        output_tokens: Sequence[Mapping[str, float]] | None = None,
    ) -> ModelRoutingReport:
        """Learn p_success per model from graded answers.

        Args:
            queries: The graded queries.
            scores: Per query, {model: quality in [0, 1]} (a model absent or None: ungraded);
                either aligned with `queries`, or a mapping keyed by query text.
            embeddings: (len(queries), dimension) vectors to use instead of encoding.
            output_tokens: Per query, {model: completion tokens observed}; each model's mean
                becomes its expected output length unless its ModelSpec sets one.

        Raises:
            InvalidScoresError: A score outside [0, 1] or not a number; misaligned lists.
            UnknownModelError: A score for a model the router does not know.
            NoGradedDataError: No query graded, or a model with fewer than 10 graded queries.
        """
        started = time.perf_counter()
        queries, grades, graded = self._graded_rows(
            queries, scores, "do the queries and the scores line up?"
        )
        counts = (~np.isnan(grades[graded])).sum(axis=0)
        for name, count in zip(self.model_names, counts.tolist()):
            if count < MIN_GRADED:
                raise NoGradedDataError(
                    f"model {name!r} has {int(count)} graded queries; at least {MIN_GRADED} "
                    "are needed to learn it"
                )
        vectors = self._vectors(queries, embeddings)[graded]
        kept = [q for q, keep in zip(queries, graded) if keep]
        log_tokens = np.log1p(self._count_tokens(kept))
        learned = self._learn_output_tokens(output_tokens, len(queries))
        model, diagnostics = fit_success_model(
            vectors, grades[graded], log_tokens, kept, self.config
        )
        self._adopt(model)
        self._fit_id = uuid.uuid4().hex
        self._output_tokens = self._default_output_tokens(learned)
        self._prices()
        names = self.model_names

        def per_model(values: Sequence[Any]) -> dict[str, Any]:
            return dict(zip(names, values))

        self._report = ModelRoutingReport(
            n_queries=int(graded.sum()),
            n_graded=per_model([int(c) for c in counts]),
            hyperparameters={
                "ridge_strength": per_model(diagnostics.ridge_strength),
                "stacker_c": per_model(diagnostics.stacker_c),
                "calibration": per_model(diagnostics.calibration),
                "n_clusters": diagnostics.n_clusters,
                "temperatures": diagnostics.temperatures,
                "folds": diagnostics.folds,
                "evidence_temperature": diagnostics.evidence_temperature,
                "evidence_strength": diagnostics.evidence_strength,
                "repeat_reliability": diagnostics.repeat_reliability,
                "repeat_reliability_estimated": diagnostics.repeat_reliability_estimated,
                "cross_fold_repeats": diagnostics.cross_fold_repeats,
            },
            cv_brier=per_model(diagnostics.cv_brier),
            cv_ece=per_model(diagnostics.cv_ece),
            output_tokens=self.output_tokens,
            duration_s=time.perf_counter() - started,
            nearest_graded_similarity=_percentiles(diagnostics.cv_nearest_similarity),
        )
        return self._report

    def fit_preferences(
        self,
        queries: Sequence[str],
        winners: Sequence[str],
        losers: Sequence[str],
        embeddings: ArrayLike | None = None,
        *,
        ties: Sequence[bool] | None = None,
    ) -> ModelRoutingReport:
        """Learn from pairwise preferences (query, winner, loser), the form RouteLLM trains on.

        Each comparison counts 1 for the winner and 0 for the loser (0.5 each for a tie); a
        model's score on a query is its mean over that query's comparisons, and `fit` learns
        from those. p_success then reads as the probability that the model's answer is
        preferred to the answers it was compared with in the training data.

        Args:
            queries: One entry per comparison (a query may repeat).
            winners, losers: Model names, aligned with `queries`.
            embeddings: Vectors aligned with `queries` (the first one of each query is used).
            ties: Per comparison, True when neither answer was preferred.
        """
        queries = _check_queries(queries)
        n = len(queries)
        if len(winners) != n or len(losers) != n or (ties is not None and len(ties) != n):
            raise InvalidScoresError("queries, winners, losers (and ties) must have equal lengths")
        points: dict[str, dict[str, list[float]]] = {}
        first: dict[str, int] = {}
        for i, (query, winner, loser) in enumerate(zip(queries, winners, losers)):
            for name in (winner, loser):
                if name not in self._index:
                    raise UnknownModelError(f"comparison {i}: unknown model {name!r}")
            if winner == loser:
                raise InvalidScoresError(f"comparison {i}: {winner!r} is compared with itself")
            tie = bool(ties[i]) if ties is not None else False
            entry = points.setdefault(query, {})
            first.setdefault(query, i)
            entry.setdefault(winner, []).append(0.5 if tie else 1.0)
            entry.setdefault(loser, []).append(0.5 if tie else 0.0)
        unique = list(points)
        scores = [{m: float(np.mean(v)) for m, v in points[q].items()} for q in unique]
        vectors = None
        if embeddings is not None:
            vectors = _check_embeddings(embeddings, n, self.encoder.dimension)[
                [first[q] for q in unique]
            ]
        return self.fit(unique, scores, vectors)

    def add_graded(
        self, queries: Sequence[str], scores: Scores, embeddings: ArrayLike | None = None
    ) -> int:
        """Learn from more graded answers at once, without a refit; returns how many queries
        were added (those with at least one score).

        The grades go where graded queries are looked up: a repeat of an added query's text
        is answered mostly from its grades, a near copy through the graded-neighbour update
        (when `fit`'s cross-validation kept it: `report.hyperparameters`), and
        `nearest_graded_similarity` measures against them too. The stacked predictor, its
        calibration and every parameter stay as fitted, so `fit` on all the graded data
        is still the way to learn from many new grades. The new state is built aside and swapped
        in, so bad input changes nothing.

        Raises:
            NotFittedError: Before `fit` or `load`.
            InvalidScoresError, UnknownModelError: As for `fit`.
            NoGradedDataError: No query has a score.
        """
        predictor = self._require_fitted()
        queries, grades, graded = self._graded_rows(queries, scores, "nothing to add")
        vectors = self._vectors(queries, embeddings)[graded]
        kept = [q for q, keep in zip(queries, graded) if keep]
        self._adopt(predictor.with_graded(vectors, grades[graded], kept))
        return len(kept)

    async def aadd_graded(
        self, queries: Sequence[str], scores: Scores, embeddings: ArrayLike | None = None
    ) -> int:
        """`add_graded` without blocking the event loop: the queries are encoded with the
        encoder's `aencode` and the new state is built in a worker thread (about 10 ms for one
        query on a router fitted on 5,608), then swapped in. Concurrent calls all land: one
        built from a state another call has replaced since is built again."""
        predictor = self._require_fitted()
        queries, grades, graded = self._graded_rows(queries, scores, "nothing to add")
        if embeddings is None:
            vectors = (await self.aencode(queries))[graded]
        else:
            vectors = self._vectors(queries, embeddings)[graded]
        kept = [q for q, keep in zip(queries, graded) if keep]
        while True:
            built = await asyncio.to_thread(predictor.with_graded, vectors, grades[graded], kept)
            if self._predictor is predictor:
                self._adopt(built)
                return len(kept)
            predictor = self._require_fitted()

    def check_graded(self, queries: Sequence[str], scores: Scores) -> int:
        """Check grades as `add_graded` would, changing nothing; returns how many queries it
        would add. For a caller that must store grades durably before applying them.

        Raises:
            NotFittedError, InvalidScoresError, UnknownModelError, NoGradedDataError: As
                `add_graded` would.
        """
        self._require_fitted()
        _, _, graded = self._graded_rows(queries, scores, "nothing to add")
        return int(graded.sum())

    @property
    def fit_id(self) -> str:
        """Identifies the fit this router comes from: new at each `fit`, kept by `add_graded`,
        `save` and `load` (a save from before it had one: its `fingerprint` at load). The
        runtime keeps the grades of served answers per fit id, so grades added to a saved
        router (``model-router add``) keep those, and a refit starts anew.

        Raises:
            NotFittedError: Before `fit` or `load`.
        """
        self._require_fitted()
        assert self._fit_id is not None  # set with the predictor, by fit and load
        return self._fit_id

    def fingerprint(self) -> str:
        """A digest of the fitted state (models, prices, parameters, graded data): two routers
        with the same fingerprint route alike. `add_graded` changes it; save and load keep it.

        Raises:
            NotFittedError: Before `fit` or `load`.
        """
        predictor = self._require_fitted()
        digest = hashlib.sha256()
        header = {
            "models": [spec.to_dict() for spec in self.models],
            "config": self.config.to_dict(),
            "output_tokens": self._output_tokens.tolist(),
            "predictor": predictor.scalars(),
            "encoder": self.encoder.fingerprint,
        }
        digest.update(json.dumps(header, sort_keys=True, default=str).encode())
        for name, array in sorted(predictor.arrays().items()):
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:32]

    def _graded_rows(
        self, queries: Sequence[str], scores: Scores, hint: str
    ) -> tuple[list[str], F64, NDArray[np.bool_]]:
        """The checked queries, their (n, M) grades and which queries have any score; none is
        a NoGradedDataError ending with `hint`."""
        checked = _check_queries(queries)
        grades = self._grades(checked, scores)
        graded: NDArray[np.bool_] = np.asarray(~np.isnan(grades).all(axis=1), dtype=bool)
        if not graded.any():
            raise NoGradedDataError(
                f"none of the {len(checked)} queries has a score for any of the models "
                f"{list(self.model_names)}: {hint}"
            )
        return checked, grades, graded

    def _grades(self, queries: Sequence[str], scores: Scores) -> F64:
        """(n, M) grades with NaN for ungraded, every value checked."""
        if isinstance(scores, Mapping):
            rows: Sequence[Mapping[str, float | None] | None] = [scores.get(q) for q in queries]
        elif isinstance(scores, (str, bytes)) or not isinstance(scores, Sequence):
            raise InvalidScoresError("scores must be a sequence of {model: score} or a mapping")
        else:
            if len(scores) != len(queries):
                raise InvalidScoresError(
                    f"{len(scores)} score entries for {len(queries)} queries: they must align"
                )
            rows = scores
        grades = np.full((len(queries), len(self._models)), np.nan)
        for i, row in enumerate(rows):
            if row is None:
                continue
            if not isinstance(row, Mapping):
                raise InvalidScoresError(f"scores[{i}] must be a {{model: score}} mapping")
            for name, value in row.items():
                j = self._index.get(name)
                if j is None:
                    raise UnknownModelError(
                        f"scores[{i}] grades {name!r}, which is not one of {list(self.model_names)}"
                    )
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise InvalidScoresError(f"scores[{i}][{name!r}] = {value!r} is not a number")
                if not 0.0 <= float(value) <= 1.0:  # NaN fails this too
                    raise InvalidScoresError(f"scores[{i}][{name!r}] = {value!r} is outside [0, 1]")
                grades[i, j] = float(value)
        return grades

    def _learn_output_tokens(
        self, output_tokens: Sequence[Mapping[str, float]] | None, n: int
    ) -> dict[str, float]:
        if output_tokens is None:
            return {}
        if len(output_tokens) != n:
            raise InvalidScoresError("output_tokens must align with queries")
        seen: dict[str, list[float]] = {}
        for i, row in enumerate(output_tokens):
            for name, value in row.items():
                if name not in self._index:
                    raise UnknownModelError(f"output_tokens[{i}] names unknown model {name!r}")
                if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise InvalidScoresError(f"output_tokens[{i}][{name!r}] must be >= 0")
                seen.setdefault(name, []).append(float(value))
        return {name: float(np.mean(values)) for name, values in seen.items()}

    # ----------------------------------------------------------------------- routing
    def _require_fitted(self) -> SuccessModel:
        if self._predictor is None:
            raise NotFittedError("ModelRouter.fit() (or load) before routing")
        return self._predictor

    def predict_proba(self, queries: Sequence[str], embeddings: ArrayLike | None = None) -> F64:
        """Calibrated p_success, shape (len(queries), n_models), columns in `model_names` order."""
        predictor = self._require_fitted()
        queries = _check_queries(queries)
        vectors = self._vectors(queries, embeddings)
        return predictor.predict(vectors, np.log1p(self._count_tokens(queries)), queries).p_success

    def expected_costs(self, queries: Sequence[str]) -> F64:
        """Expected USD cost of each model on each query, shape (len(queries), n_models)."""
        tokens = self._count_tokens(_check_queries(queries))
        out: F64 = tokens[:, None] * self._cost_slope + self._cost_intercept
        return out

    def _rule(
        self, min_quality: float | None, cost_weight: float | None, max_cost: float | None
    ) -> Rule:
        if min_quality is None and cost_weight is None and max_cost is None:
            c = self.config
            return Rule(c.min_quality, c.cost_weight, c.max_cost)
        return Rule(min_quality, cost_weight, max_cost)

    def route(
        self,
        query: str,
        embedding: ArrayLike | None = None,
        *,
        min_quality: float | None = None,
        cost_weight: float | None = None,
        max_cost: float | None = None,
        min_graded_similarity: float | None = None,
    ) -> ModelChoice:
        """Pick a model for one query; pass `embedding` to skip encoding.

        Rules (see `decision`): `min_quality` (cheapest model likely enough to succeed),
        `cost_weight` (best p_success minus weighted relative cost), `max_cost` (USD budget,
        alone or with either). With none given, the config's rule; with none there either, the
        highest p_success. When the rule cannot be met, `config.fallback_model` or the rule's
        best effort is returned with `fallback=True`. A query whose nearest graded query is
        less similar than `min_graded_similarity` (default: the config's; -1 routes every
        query by the rule) goes to the fallback model, else the best model on the graded data.
        """
        predictor = self._require_fitted()
        rule = self._rule(min_quality, cost_weight, max_cost)
        floor = self._similarity_floor(min_graded_similarity)
        _check_query(query)
        if embedding is None:
            vector = self.encode([query])[0]
        else:
            vector = _check_one_embedding(embedding, self.encoder.dimension)
        tokens = self._count_tokens.one(query)
        p, similarity = predictor.predict_one(vector, math.log1p(tokens), query)
        costs = [tokens * a + b for a, b in zip(self._slope_list, self._intercept_list)]
        return self._choice(p, costs, tokens, rule, similarity, floor)

    async def aroute(
        self,
        query: str,
        embedding: ArrayLike | None = None,
        *,
        min_quality: float | None = None,
        cost_weight: float | None = None,
        max_cost: float | None = None,
        min_graded_similarity: float | None = None,
    ) -> ModelChoice:
        """`route` without blocking the event loop while the query is encoded."""
        if embedding is None:
            self._require_fitted()
            _check_query(query)
            embedding = (await self.aencode([query]))[0]
        return self.route(
            query,
            embedding,
            min_quality=min_quality,
            cost_weight=cost_weight,
            max_cost=max_cost,
            min_graded_similarity=min_graded_similarity,
        )

    async def aroute_batch(
        self,
        queries: Sequence[str],
        embeddings: ArrayLike | None = None,
        *,
        min_quality: float | None = None,
        cost_weight: float | None = None,
        max_cost: float | None = None,
        min_graded_similarity: float | None = None,
    ) -> list[ModelChoice]:
        """`route_batch`, awaiting the encoder's `aencode` when the queries must be encoded."""
        if embeddings is None:
            self._require_fitted()
            queries = _check_queries(queries)
            embeddings = await self.aencode(queries)
        return self.route_batch(
            queries,
            embeddings,
            min_quality=min_quality,
            cost_weight=cost_weight,
            max_cost=max_cost,
            min_graded_similarity=min_graded_similarity,
        )

    def route_batch(
        self,
        queries: Sequence[str],
        embeddings: ArrayLike | None = None,
        *,
        min_quality: float | None = None,
        cost_weight: float | None = None,
        max_cost: float | None = None,
        min_graded_similarity: float | None = None,
    ) -> list[ModelChoice]:
        """`route` for many queries at once (one encoding batch, one prediction)."""
        predictor = self._require_fitted()
        rule = self._rule(min_quality, cost_weight, max_cost)
        floor = self._similarity_floor(min_graded_similarity)
        queries = _check_queries(queries)
        vectors = self._vectors(queries, embeddings)
        tokens = self._count_tokens(queries)
        p, similarity = predictor.predict(vectors, np.log1p(tokens), queries)
        costs = tokens[:, None] * self._cost_slope + self._cost_intercept
        # each record needs its row's preference order, which decide_one gives with the choice
        return [
            self._choice(
                p_row,
                cost_row,
                float(n_tokens),
                rule,
                None if math.isnan(near) else near,
                floor,
            )
            for p_row, cost_row, n_tokens, near in zip(
                p.tolist(), costs.tolist(), tokens.tolist(), similarity.tolist()
            )
        ]

    def _similarity_floor(self, given: float | None) -> float | None:
        if given is None:
            return self.config.min_graded_similarity
        return check_similarity_floor(given)

    def _choice(
        self,
        p: list[float],
        costs: list[float],
        tokens: float,
        rule: Rule,
        similarity: float | None,
        floor: float | None,
    ) -> ModelChoice:
        decision = decide_one(p, costs, rule, self._fallback_index)
        return self._record(p, costs, tokens, rule, decision, similarity, floor)

    def _record(
        self,
        p: list[float],
        costs: list[float],
        tokens: float,
        rule: Rule,
        decision: tuple[int, bool, list[int]],
        similarity: float | None,
        floor: float | None,
    ) -> ModelChoice:
        index, fell_back, order = decision
        rule_name = rule.name
        if floor is not None and similarity is not None and similarity < floor:
            # a router saved before mean grades were kept falls back on p_success itself
            quality = p if self._mean_quality is None else self._mean_quality
            index = unfamiliar(quality, costs, rule, self._fallback_index)
            fell_back, rule_name = True, "min_graded_similarity"
        names = self._names
        return ModelChoice(
            model=names[index],
            p_success=dict(zip(names, p)),
            expected_cost_usd=costs[index],
            expected_costs_usd=dict(zip(names, costs)),
            alternatives=tuple(ModelOption(names[i], p[i], costs[i]) for i in order if i != index),
            rule=rule_name,
            fallback=fell_back,
            input_tokens=tokens,
            nearest_graded_similarity=similarity,
        )

    # ------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted router to the directory `path` (see `persistence`)."""
        from .persistence import SavedModelRouter, save_model_router

        if self._predictor is None:
            raise NotFittedError("fit the ModelRouter before saving it")
        saved = SavedModelRouter(
            list(self.models),
            self.config,
            self._predictor,
            self._output_tokens,
            self._report,
            self.fit_id,
        )
        save_model_router(saved, self.encoder, Path(path))

    @classmethod
    def load(cls, path: str | Path, encoder: BaseEncoder | None = None) -> ModelRouter:
        """Read a router written by `save`; `encoder` must match the one it was fitted with."""
        from .persistence import load_model_router

        saved, encoder = load_model_router(Path(path), encoder)
        router = cls(saved.models, encoder=encoder, config=saved.config)
        router._install(saved.predictor, saved.output_tokens, saved.report)
        # a save from before fit ids: its state as saved identifies the fit
        router._fit_id = saved.fit_id or router.fingerprint()
        return router

    def _install(
        self, predictor: SuccessModel, output_tokens: F64, report: ModelRoutingReport | None
    ) -> None:
        """Adopt a fitted predictor (loading, or another config over the same fit)."""
        self._adopt(predictor)
        self._output_tokens = output_tokens
        self._report = report
        self._prices()

    def _adopt(self, predictor: SuccessModel) -> None:
        self._predictor = predictor
        means = predictor.mean_grades
        self._mean_quality = None if means is None else means.tolist()


def _check_query(query: object) -> None:
    if not isinstance(query, str):
        raise InvalidQueryError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidQueryError("query is empty or whitespace")


def _check_queries(queries: Sequence[str]) -> list[str]:
    if isinstance(queries, str):
        raise InvalidQueryError("expected a sequence of queries, not one string")
    out = list(queries)
    for query in out:
        _check_query(query)
    return out


def _normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise InvalidQueryError("embedding has zero norm: it points nowhere")
    out: NDArray[np.float32] = vectors / norms
    return out


def _check_one_embedding(embedding: ArrayLike, dimension: int) -> NDArray[np.float32]:
    """One vector, checked with Python scalars (cheaper than array reductions), normalised."""
    try:
        array = np.asarray(embedding, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidQueryError("embedding must be a numeric array") from exc
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise InvalidQueryError(
            f"expected one embedding of dimension {dimension}, got {array.shape}"
        )
    if array.shape[0] != dimension:
        raise DimensionMismatchError(
            f"embedding has dimension {array.shape[0]}, the encoder has {dimension}"
        )
    norm = math.sqrt(float(array @ array))
    if not math.isfinite(norm):
        raise InvalidQueryError("embedding contains NaN or infinite values")
    if norm == 0.0:
        raise InvalidQueryError("embedding has zero norm: it points nowhere")
    out: NDArray[np.float32] = array / norm
    return out


def _check_embeddings(embeddings: ArrayLike, n: int, dimension: int) -> NDArray[np.float32]:
    """(n, dimension) finite, non-zero vectors, L2-normalised; a 1-D vector counts as one row."""
    try:
        array = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidQueryError("embeddings must be a numeric array") from exc
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] != n:
        raise InvalidQueryError(
            f"expected {n} embedding(s) of dimension {dimension}, got shape {array.shape}"
        )
    if array.shape[1] != dimension:
        raise DimensionMismatchError(
            f"embedding has dimension {array.shape[1]}, the encoder has {dimension}"
        )
    if not np.isfinite(array).all():
        raise InvalidQueryError("embedding contains NaN or infinite values")
    return _normalise(array)


def _percentiles(similarity: F64) -> dict[str, float] | None:
    """The report's scale of nearest-graded cosines (None when no query had a neighbour)."""
    found = similarity[np.isfinite(similarity)]
    if not len(found):
        return None
    levels = (1, 5, 25, 50)
    return {f"p{q}": float(v) for q, v in zip(levels, np.percentile(found, levels))}
