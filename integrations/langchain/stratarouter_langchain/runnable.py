"""`StrataRouterRunnable`: the router as a LangChain `Runnable` that returns the decision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from langchain_core.runnables import Runnable, RunnableConfig
from stratarouter_core import DecisionLog, Router, RouteResult, StrataRouterError

from ._text import RouterInput, to_text

__all__ = ["StrataRouterRunnable"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class StrataRouterRunnable(Runnable[RouterInput, RouteResult]):
    """Routes its input and returns the `RouteResult` (route, confidence, candidates).

    Every call goes through LangChain's callback machinery, so tracers and callback handlers
    see a run named `name` whose output is the decision. `batch`/`abatch` route all inputs
    in one vectorised `route_batch` call while still opening one run per input. Every
    decision is kept in `decisions` (target: the route; it never raises on abstain, the
    `RouteResult` says so).

    Args:
        router: A built `stratarouter_core.Router`.
        input_key: Key holding the query when the input is a dict.
        name: Run name shown in traces.
        max_decisions: How many recent decisions `decisions` keeps.

    Example:
        >>> from stratarouter_core.testing import AdapterContract
        >>> runnable = StrataRouterRunnable(AdapterContract.build_router())
        >>> runnable.invoke({"input": "refund my last payment"}).route_id
        'billing'
    """

    def __init__(self, router: Router, *, input_key: str = "input", name: str = "stratarouter",
                 max_decisions: int = 1000) -> None:
        """Wrap `router`."""
        self.router = router
        self.input_key = input_key
        self.name = name
        self.decisions = DecisionLog(max_decisions)

    def _text(self, value: RouterInput) -> str:
        return to_text(value, self.input_key, type(self).__name__)

    def _logged(self, text: str, result: RouteResult) -> RouteResult:
        self.decisions.record(text, result, result.route_id)
        return result

    def _route(self, value: RouterInput) -> RouteResult:
        text = self._text(value)
        return self._logged(text, self.router.route(text))

    async def _aroute(self, value: RouterInput) -> RouteResult:
        text = self._text(value)
        return self._logged(text, await self.router.aroute(text))

    def invoke(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RouteResult:
        """Route one input inside a traced run."""
        return self._call_with_config(self._route, input, config)

    async def ainvoke(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RouteResult:
        """Route one input without blocking the event loop, inside a traced run."""
        return await self._acall_with_config(self._aroute, input, config)

    def batch(
        self,
        inputs: list[RouterInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[RouteResult]:
        """Route many inputs with one `route_batch` call; one traced run per input."""
        return self._batch_with_config(
            self._route_many, inputs, config, return_exceptions=return_exceptions
        )

    async def abatch(
        self,
        inputs: list[RouterInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[RouteResult]:
        """Async `batch`: one `aroute_batch` call; one traced run per input."""
        return await self._abatch_with_config(
            self._aroute_many, inputs, config, return_exceptions=return_exceptions
        )

    def _route_many(self, inputs: list[RouterInput]) -> list[RouteResult | Exception]:
        texts = self._texts(inputs)
        valid = [t for t in texts if isinstance(t, str)]
        try:
            routed = iter(self.router.route_batch(valid))
        except StrataRouterError:  # one bad query: route one by one to blame only it
            return [t if isinstance(t, Exception) else _safe(self._route, t) for t in texts]
        return [t if isinstance(t, Exception) else self._logged(t, next(routed)) for t in texts]

    async def _aroute_many(self, inputs: list[RouterInput]) -> list[RouteResult | Exception]:
        texts = self._texts(inputs)
        valid = [t for t in texts if isinstance(t, str)]
        try:
            routed = iter(await self.router.aroute_batch(valid))
        except StrataRouterError:
            return [t if isinstance(t, Exception) else _safe(self._route, t) for t in texts]
        return [t if isinstance(t, Exception) else self._logged(t, next(routed)) for t in texts]

    def _texts(self, inputs: list[RouterInput]) -> list[str | Exception]:
        return [_safe(self._text, value) for value in inputs]


def _safe(func: Callable[[_T], _R], value: _T) -> _R | Exception:
    """`func(value)`, or the exception it raised (batch reports errors per input)."""
    try:
        return func(value)
    except Exception as exc:
        return exc
