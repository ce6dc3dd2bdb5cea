"""`SemanticRouteDispatch`: route the input, then run (or stream) the chosen branch."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForChainRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForChainRun,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config
from stratarouter_core import (
    ConfigError,
    DecisionLog,
    NoRouteError,
    Router,
    RouteResult,
    RoutingDecision,
)

from ._choosing import ChoosingRunnable
from ._text import RouterInput

__all__ = ["FALLBACK_TARGET", "NoBranchError", "SemanticRouteDispatch"]

DECISION_EVENT = "stratarouter_decision"

FALLBACK_TARGET = "fallback"
"""`RoutingDecision.target` when the `fallback` runnable ran."""

NoBranchError = NoRouteError
"""The name this package used before `stratarouter_core.NoRouteError`; the same class."""


class SemanticRouteDispatch(ChoosingRunnable):
    """Routes the input, then runs the branch registered for the chosen route.

    The branch runs as a child of this run with the tag `route:<name>` and the metadata
    `stratarouter_route`, `stratarouter_confidence`, `stratarouter_is_fallback` and
    `stratarouter_latency_us`; a `stratarouter_decision` custom event carries the same data.
    The router's decision picks the branch: `route_id` (which may be the router's configured
    fallback route) runs its target; no route (abstain), or a route without a target, runs
    `fallback`, and with no `fallback` raises `stratarouter_core.NoRouteError`.
    `stream`/`astream` stream the branch's own chunks. Every decision is kept in `decisions`.

    Args:
        router: A built `stratarouter_core.Router`.
        targets: Route name -> runnable. Every name must be one of the router's routes or
            its configured `fallback_route`.
        fallback: Runs on abstain and for routes without a target.
        input_key: Key holding the query when the input is a dict.
        name: Run name shown in traces.
        max_decisions: How many recent decisions `decisions` keeps.

    Raises:
        ConfigError: A target names an unknown route, or a route has no target and there is
            no fallback.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> from stratarouter_core.testing import AdapterContract
        >>> router = AdapterContract.build_router()
        >>> dispatch = SemanticRouteDispatch(
        ...     router,
        ...     {name: RunnableLambda(lambda x, n=name: n.upper()) for name in router.route_names},
        ...     fallback=RunnableLambda(lambda x: "HUMAN"),
        ... )
        >>> dispatch.invoke("refund my last payment"), dispatch.invoke("lasagna recipe")
        ('BILLING', 'HUMAN')
        >>> [(d.route, d.target) for d in dispatch.decisions]
        [('billing', 'billing'), (None, 'fallback')]
    """

    def __init__(
        self,
        router: Router,
        targets: Mapping[str, Runnable[Any, Any]],
        *,
        fallback: Runnable[Any, Any] | None = None,
        input_key: str = "input",
        name: str = "stratarouter_dispatch",
        max_decisions: int = 1000,
    ) -> None:
        """Check the targets against the router's routes and store them."""
        fallback_route = router.config.fallback_route
        known = list(router.route_names)
        if fallback_route is not None and fallback_route not in known:
            known.append(fallback_route)
        unknown = [b for b in targets if b not in known]
        if unknown:
            raise ConfigError(f"{type(self).__name__}: target(s) {unknown} are not routes of the "
                              f"router (routes: {known})")
        missing = [r for r in known if r not in targets]
        if missing and fallback is None:
            raise ConfigError(f"{type(self).__name__}: route(s) {missing} have no target and no "
                              f"fallback was given; add targets or pass fallback=...")
        self.router = router
        self.targets = dict(targets)
        self.fallback = fallback
        self.input_key = input_key
        self.name = name
        self.decisions = DecisionLog(max_decisions)

    def _pick(self, text: str, result: RouteResult,
              start: float) -> tuple[Runnable[Any, Any], RoutingDecision]:
        """The runnable for the router's decision: its route's target, else the fallback."""
        route = result.route_id
        branch = self.targets.get(route) if route is not None else None
        if branch is not None:
            return branch, self.decisions.record(text, result, route, start)
        decision = self.decisions.record(
            text, result, FALLBACK_TARGET if self.fallback is not None else None, start
        )
        if self.fallback is None:
            raise NoRouteError(f"{self.name}: router abstained on {text!r:.80} (confidence "
                               f"{result.confidence:.3f}) and no fallback runnable was given")
        return self.fallback, decision

    @staticmethod
    def _child(decision: RoutingDecision, config: RunnableConfig,
               callbacks: BaseCallbackManager) -> RunnableConfig:
        """The branch's config: our run's child callbacks plus the decision in tags/metadata."""
        child = patch_config(config, callbacks=callbacks)  # a fresh dict: safe to extend
        child["tags"] = [*child.get("tags", []), f"route:{decision.route}"]
        child["metadata"] = {**child.get("metadata", {}),
                             **{f"stratarouter_{k}": v for k, v in decision.to_dict().items()}}
        return child

    def _dispatch(self, text: str, result: RouteResult, start: float, config: RunnableConfig,
                  callbacks: CallbackManager) -> tuple[Runnable[Any, Any], RunnableConfig]:
        branch, decision = self._pick(text, result, start)
        callbacks.on_custom_event(DECISION_EVENT, decision.to_dict(),
                                  run_id=callbacks.parent_run_id)
        return branch, self._child(decision, config, callbacks)

    async def _adispatch(
        self, text: str, result: RouteResult, start: float, config: RunnableConfig,
        callbacks: AsyncCallbackManager,
    ) -> tuple[Runnable[Any, Any], RunnableConfig]:
        branch, decision = self._pick(text, result, start)
        await callbacks.on_custom_event(DECISION_EVENT, decision.to_dict(),
                                        run_id=callbacks.parent_run_id)
        return branch, self._child(decision, config, callbacks)

    def _run(self, input: RouterInput, run_manager: CallbackManagerForChainRun,
             config: RunnableConfig, **kwargs: Any) -> Any:
        start, text = time.perf_counter(), self._text(input)
        branch, child = self._dispatch(text, self.router.route(text), start, config,
                                       run_manager.get_child())
        return branch.invoke(input, child, **kwargs)

    async def _arun(self, input: RouterInput, run_manager: AsyncCallbackManagerForChainRun,
                    config: RunnableConfig, **kwargs: Any) -> Any:
        start, text = time.perf_counter(), self._text(input)
        branch, child = await self._adispatch(text, await self.router.aroute(text), start,
                                              config, run_manager.get_child())
        return await branch.ainvoke(input, child, **kwargs)

    def _stream(self, inputs: Iterator[RouterInput], run_manager: CallbackManagerForChainRun,
                config: RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        input = next(inputs)
        start, text = time.perf_counter(), self._text(input)
        branch, child = self._dispatch(text, self.router.route(text), start, config,
                                       run_manager.get_child())
        yield from branch.stream(input, child, **kwargs)

    async def _astream(self, inputs: AsyncIterator[RouterInput],
                       run_manager: AsyncCallbackManagerForChainRun,
                       config: RunnableConfig, **kwargs: Any) -> AsyncIterator[Any]:
        input = await anext(inputs)
        start, text = time.perf_counter(), self._text(input)
        branch, child = await self._adispatch(text, await self.router.aroute(text), start,
                                              config, run_manager.get_child())
        async for chunk in branch.astream(input, child, **kwargs):
            yield chunk

