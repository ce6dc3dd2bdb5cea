"""Grades of served answers, learned by the `ModelRouter` of every bridge over one store.

A grade (how good a model's answer to a query was, in [0, 1]) is checked against the
ModelRouter, appended to the state store's grade log, and only then learned, with
`ModelRouter.add_graded`. Every bridge learns the log in log order, its own grades included.
Bridges over one PostgreSQL store end up with the same grades: each learns the others' as
their commit is notified (LISTEN/NOTIFY), and every ``grade_poll_s`` as the safety net. A
bridge restarted over a durable store (SQLite or PostgreSQL) learns again every grade logged
for the router it loads. The log is kept per fit (`ModelRouter.fit_id`): grades added to the
saved router offline (``model-router add``) keep it, and a refitted router starts a log of
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import NDArray
from stratarouter_core.errors import InvalidQueryError, StrataRouterError
from stratarouter_core.model_routing import InvalidScoresError, UnknownModelError

from ..observability import Metrics, NoopMetrics
from ..state import (
    ExecutionRecord,
    GradeConflictError,
    GradeNotifier,
    GradeRecord,
    StateStore,
)

if TYPE_CHECKING:
    from stratarouter_core import ModelRouter

__all__ = ["GradeFeed", "answering_model"]

logger = logging.getLogger("stratarouter_runtime")

_PAGE = 500  # grades learned per `add_graded` call when catching up


def answering_model(record: ExecutionRecord) -> str | None:
    """The model whose answer `record` holds: the target that answered (a fallback, when one
    did), else the planned one; None for a handler's answer or no answer."""
    if record.status != "succeeded" or record.result is None:
        return None
    if record.target.get("kind") == "handler":
        return None
    answered = record.result.get("target_key")
    if isinstance(answered, str) and ":" in answered:
        return answered.partition(":")[2]
    planned = record.target.get("model")
    return planned if isinstance(planned, str) and planned else None


class GradeFeed:
    """Keeps one bridge's `ModelRouter` in step with the grade log (see the module doc).

    Args:
        model_router: The fitted router that learns the grades.
        state: The store holding the grade log (the bridge's).
        poll_s: Seconds between two reads of grades other bridges logged, beside the store's
            notifications when it gives them (0: only at start, on notifications and when
            this bridge logs grades).
        metrics: Where the grades logged through this bridge are counted, per model.

    Attributes:
        position: The log position of the last grade learned.
        n_learned: Grades learned since `start` (for tests and metrics).
    """

    def __init__(
        self,
        model_router: ModelRouter,
        state: StateStore,
        *,
        poll_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        """Remember the parts; nothing is read before `start`."""
        self.model_router = model_router
        self.state = state
        self.poll_s = poll_s
        self.metrics: Metrics = metrics or NoopMetrics()
        self.position = 0
        self.n_learned = 0
        self._router_key: str | None = None
        self._lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    @property
    def router_key(self) -> str:
        """The router's `fit_id`: the key of its grade log."""
        if self._router_key is None:
            self._router_key = self.model_router.fit_id
        return self._router_key

    async def start(self) -> None:
        """Learn what the log already holds for this router, then follow it: at once on the
        store's notifications when it gives them (PostgreSQL), and every `poll_s`."""
        await self.catch_up()
        if self.poll_s > 0 and self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())
        if isinstance(self.state, GradeNotifier) and self._listener is None:
            self._listener = asyncio.ensure_future(self._listen(self.state))

    async def close(self) -> None:
        """Stop following the log."""
        for task in (self._poller, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._poller = self._listener = None

    async def add(
        self,
        queries: Sequence[str],
        scores: Sequence[Mapping[str, float | None]],
        *,
        tenant: str | None = None,
        execution_id: str | None = None,
    ) -> list[GradeRecord]:
        """Log grades (checked first: bad ones store nothing), then learn them; the grades
        as logged. `execution_id` names the execution a single query's grades are about.

        Raises:
            InvalidScoresError, UnknownModelError, NoGradedDataError: As `add_graded`.
            GradeConflictError: The execution was graded already.
            StateError: The store failed (nothing was learned).
        """
        self.model_router.check_graded(queries, scores)
        if execution_id is not None and len(queries) != 1:
            raise InvalidQueryError("grades of an execution are for its one query")
        graded = [
            (query, {m: float(v) for m, v in row.items() if v is not None})
            for query, row in zip(queries, scores, strict=True)
            if any(v is not None for v in row.values())
        ]
        # encoded once, here: every bridge learning the grade reads the vector from the log
        vectors = await self.model_router.aencode([query for query, _ in graded])
        grades = [
            GradeRecord(
                router=self.router_key,
                query=query,
                scores=row,
                tenant=tenant,
                execution_id=execution_id,
                embedding=vector.astype("<f4").tobytes(),
            )
            for (query, row), vector in zip(graded, vectors, strict=True)
        ]
        logged = await self.state.append_grades(grades)
        for grade in logged:
            for model, score in grade.scores.items():
                self.metrics.grade(model=model, score=score)
        try:
            await self.catch_up()
        except StrataRouterError as exc:  # logged: learned at the next read of the log
            logger.warning("grades logged, not learned yet: %s", exc)
        return logged

    async def grade_execution(
        self, record: ExecutionRecord, score: float, *, tenant: str | None = None
    ) -> GradeRecord:
        """Grade the answer `record` holds: `score` for the model that gave it.

        Raises:
            GradeConflictError: The execution has no model answer (unfinished, failed, a
                handler's), or was graded already.
            UnknownModelError: The answering model is not one of the ModelRouter's.
            InvalidScoresError: `score` is outside [0, 1].
        """
        model = answering_model(record)
        if model is None:
            raise GradeConflictError(
                f"execution {record.id!r} has no model answer to grade "
                f"(status {record.status!r}, target {record.target_key!r})"
            )
        (logged,) = await self.add(
            [record.query], [{model: score}], tenant=tenant, execution_id=record.id
        )
        return logged

    async def catch_up(self) -> int:
        """Learn the grades logged after `position`, in log order; how many."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        learned = 0
        async with self._lock:
            while batch := await self.state.grades_after(self.router_key, self.position, _PAGE):
                queries, scores = [g.query for g in batch], [dict(g.scores) for g in batch]
                vectors = await self._vectors(batch)  # an encoder failure: read again later
                try:
                    await self.model_router.aadd_graded(queries, scores, vectors)
                except (InvalidScoresError, UnknownModelError) as exc:  # checked when logged
                    logger.warning("grades %d-%d not learned: %s", batch[0].seq, batch[-1].seq, exc)
                self.position = batch[-1].seq
                learned += len(batch)
                self.n_learned += len(batch)
        return learned

    async def _vectors(self, grades: Sequence[GradeRecord]) -> NDArray[np.float32]:
        """The grades' query vectors: as logged, else (a grade logged without one) encoded."""
        dimension = self.model_router.encoder.dimension
        rows: list[NDArray[np.float32] | None] = [
            None
            if g.embedding is None or len(g.embedding) != 4 * dimension
            else np.frombuffer(g.embedding, dtype="<f4").astype(np.float32)
            for g in grades
        ]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            encoded = await self.model_router.aencode([grades[i].query for i in missing])
            for i, vector in zip(missing, encoded, strict=True):
                rows[i] = vector
        return np.stack(cast("list[NDArray[np.float32]]", rows))

    async def _listen(self, notifier: GradeNotifier) -> None:
        async for _ in notifier.grade_notifications():
            try:
                await self.catch_up()
            except StrataRouterError as exc:  # the next notification or poll tries again
                logger.warning("learning notified grades failed: %s", exc)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.catch_up()
            except StrataRouterError as exc:  # keep polling: the store may come back
                logger.warning(
                    "reading the grade log failed: %s",
                    exc,
                    extra={"error_type": type(exc).__name__},
                )
