"""`SemanticRouteDispatch`: route the input, then run (or stream) the chosen branch."""

from __future__ import annotations

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
from stratarouter_core import ConfigError, Router, RouteResult, StrataRouterError

from ._text import RouterInput, to_text

__all__ = ["NoBranchError", "SemanticRouteDispatch"]

DECISION_EVENT = "stratarouter_decision"


class NoBranchError(StrataRouterError, LookupError):
    """The router abstained (or chose a route without a branch) and there is no default."""


class SemanticRouteDispatch(Runnable[RouterInput, Any]):
    """Routes the input, then runs the branch registered for the chosen route.

    The branch runs as a child of this run with the tag `route:<name>` and the metadata
    `stratarouter_route`, `stratarouter_confidence`, `stratarouter_is_fallback` and
    `stratarouter_latency_us`; a `stratarouter_decision` custom event carries the same data.
    The router's decision picks the branch: `route_id` (which may be the router's configured
    fallback route) runs its branch; no route (abstain), or a route without a branch, runs
    `default`.
    `stream`/`astream` stream the branch's own chunks.

    Args:
        router: A built `stratarouter_core.Router`.
        branches: Route name -> runnable. Every name must be one of the router's routes or
            its configured `fallback_route`.
        default: Runs on abstain and for routes without a branch.
        input_key: Key holding the query when the input is a dict.
        name: Run name shown in traces.

    Raises:
        ConfigError: A branch names an unknown route, or a route has no branch and there is
            no default.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> from stratarouter_core.testing import AdapterContract
        >>> router = AdapterContract.build_router()
        >>> dispatch = SemanticRouteDispatch(
        ...     router,
        ...     {name: RunnableLambda(lambda x, n=name: n.upper()) for name in router.route_names},
        ...     default=RunnableLambda(lambda x: "HUMAN"),
        ... )
        >>> dispatch.invoke("refund my last payment"), dispatch.invoke("lasagna recipe")
        ('BILLING', 'HUMAN')
    """

    def __init__(
        self,
        router: Router,
        branches: Mapping[str, Runnable[Any, Any]],
        default: Runnable[Any, Any] | None = None,
        *,
        input_key: str = "input",
        name: str = "stratarouter_dispatch",
    ) -> None:
        """Check the branches against the router's routes and store them."""
        fallback = router.config.fallback_route
        known = list(router.route_names)
        if fallback is not None and fallback not in known:
            known.append(fallback)
        unknown = [b for b in branches if b not in known]
        if unknown:
            raise ConfigError(f"{type(self).__name__}: branch(es) {unknown} are not routes of the "
                              f"router (routes: {known})")
        missing = [r for r in known if r not in branches]
        if missing and default is None:
            raise ConfigError(f"{type(self).__name__}: route(s) {missing} have no branch and no "
                              f"default was given; add branches or pass default=...")
        self.router = router
        self.branches = dict(branches)
        self.default = default
        self.input_key = input_key
        self.name = name

    def _pick(self, input: RouterInput, result: RouteResult) -> Runnable[Any, Any]:
        """The branch for the router's decision: its route's branch, else the default."""
        route = result.route_id
        branch = self.branches.get(route) if route is not None else None
        if branch is None:
            branch = self.default
        if branch is None:
            raise NoBranchError(f"{self.name}: router abstained on {input!r} (confidence "
                                f"{result.confidence:.3f}) and no default runnable was given")
        return branch

    @staticmethod
    def _child(result: RouteResult, config: RunnableConfig,
               callbacks: BaseCallbackManager) -> RunnableConfig:
        """The branch's config: our run's child callbacks plus the decision in tags/metadata."""
        child = patch_config(config, callbacks=callbacks)  # a fresh dict: safe to extend
        child["tags"] = [*child.get("tags", []), f"route:{result.route_id}"]
        child["metadata"] = {**child.get("metadata", {}),
                             **{f"stratarouter_{k}": v for k, v in decision_data(result).items()}}
        return child

    def _dispatch(self, input: RouterInput, result: RouteResult, config: RunnableConfig,
                  callbacks: CallbackManager) -> tuple[Runnable[Any, Any], RunnableConfig]:
        branch = self._pick(input, result)
        data = decision_data(result)
        callbacks.on_custom_event(DECISION_EVENT, data, run_id=callbacks.parent_run_id)
        return branch, self._child(result, config, callbacks)

    async def _adispatch(
        self, input: RouterInput, result: RouteResult, config: RunnableConfig,
        callbacks: AsyncCallbackManager,
    ) -> tuple[Runnable[Any, Any], RunnableConfig]:
        branch = self._pick(input, result)
        await callbacks.on_custom_event(DECISION_EVENT, decision_data(result),
                                        run_id=callbacks.parent_run_id)
        return branch, self._child(result, config, callbacks)

    def _text(self, value: RouterInput) -> str:
        return to_text(value, self.input_key, type(self).__name__)

    def invoke(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """Route `input` and return the output of the chosen branch."""
        return self._call_with_config(self._run, input, config, **kwargs)

    async def ainvoke(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """Async `invoke`: routes with `aroute` and awaits the branch's `ainvoke`."""
        return await self._acall_with_config(self._arun, input, config, **kwargs)

    def stream(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        """Route `input`, then yield the chosen branch's chunks as it produces them."""
        yield from self._transform_stream_with_config(iter([input]), self._stream, config, **kwargs)

    async def astream(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        """Async `stream`: yields the chosen branch's `astream` chunks."""
        async for chunk in self._atransform_stream_with_config(
            _aiter_one(input), self._astream, config, **kwargs
        ):
            yield chunk

    def _run(self, input: RouterInput, run_manager: CallbackManagerForChainRun,
             config: RunnableConfig, **kwargs: Any) -> Any:
        result = self.router.route(self._text(input))
        branch, child = self._dispatch(input, result, config, run_manager.get_child())
        return branch.invoke(input, child, **kwargs)

    async def _arun(self, input: RouterInput, run_manager: AsyncCallbackManagerForChainRun,
                    config: RunnableConfig, **kwargs: Any) -> Any:
        result = await self.router.aroute(self._text(input))
        branch, child = await self._adispatch(input, result, config, run_manager.get_child())
        return await branch.ainvoke(input, child, **kwargs)

    def _stream(self, inputs: Iterator[RouterInput], run_manager: CallbackManagerForChainRun,
                config: RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        input = next(inputs)
        result = self.router.route(self._text(input))
        branch, child = self._dispatch(input, result, config, run_manager.get_child())
        yield from branch.stream(input, child, **kwargs)

    async def _astream(self, inputs: AsyncIterator[RouterInput],
                       run_manager: AsyncCallbackManagerForChainRun,
                       config: RunnableConfig, **kwargs: Any) -> AsyncIterator[Any]:
        input = await anext(inputs)
        result = await self.router.aroute(self._text(input))
        branch, child = await self._adispatch(input, result, config, run_manager.get_child())
        async for chunk in branch.astream(input, child, **kwargs):
            yield chunk


def decision_data(result: RouteResult) -> dict[str, Any]:
    """The decision as plain data: route, confidence, is_fallback, latency_us."""
    return {"route": result.route_id,
            "confidence": result.confidence, "is_fallback": result.is_fallback,
            "latency_us": result.latency_us}


async def _aiter_one(value: RouterInput) -> AsyncIterator[RouterInput]:
    yield value
