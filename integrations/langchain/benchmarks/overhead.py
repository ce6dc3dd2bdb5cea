"""Extra time per call that the LangChain adapter adds on top of `router.route` (median).

The encoding cache is warm (the same query is routed before timing), so the numbers are the
adapter's translation and LangChain's run/callback machinery, not the encoder.

    python integrations/langchain/benchmarks/overhead.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableLambda
from stratarouter_core.testing import AdapterContract

from stratarouter_langchain import RouterInput, SemanticRouteDispatch, StrataRouterRunnable

QUERY = "I was charged twice, please refund my payment"
N = 3000


class NoOp(BaseCallbackHandler):
    """A handler that does nothing, like a tracer that is switched on."""


def paired_us(func: Callable[[], Any], reference: Callable[[], Any] | None = None,
              n: int = N) -> tuple[float, float]:
    """Median of `func()` and median extra over `reference()`, in microseconds.

    The two are called alternately and the extra is the median of the per-pair differences,
    which cancels most of the drift of a busy machine.
    """
    for _ in range(200):
        func()
        if reference is not None:
            reference()
    own, extra = [], []
    for _ in range(n):
        start = time.perf_counter_ns()
        func()
        middle = time.perf_counter_ns()
        if reference is not None:
            reference()
        end = time.perf_counter_ns()
        own.append(middle - start)
        extra.append((middle - start) - (end - middle))
    return statistics.median(own) / 1000, statistics.median(extra) / 1000 if reference else 0.0


def main() -> None:
    """Print the table."""
    router = AdapterContract.build_router()
    runnable = StrataRouterRunnable(router)
    identity: Runnable[Any, Any] = RunnableLambda(lambda x: x)
    dispatch = SemanticRouteDispatch(router, dict.fromkeys(router.route_names, identity),
                                     default=identity)
    plain: Runnable[Any, Any] = RunnableLambda(router.route)
    traced: Any = {"callbacks": [NoOp()]}

    def route() -> Any:
        return router.route(QUERY)

    def route_then_branch() -> Any:  # what the dispatcher does, minus the adapter
        return identity.invoke(router.route(QUERY))

    def route_then_branch_traced() -> Any:
        return identity.invoke(router.route(QUERY), traced)

    queries: list[RouterInput] = [*AdapterContract.queries() * 9]  # 108 inputs
    per_query = 1 / len(queries)

    texts = AdapterContract.queries() * 9

    def batch_base() -> Any:
        return router.route_batch(texts)

    rows = [
        ("router.route (baseline)", *paired_us(route)),
        ("RunnableLambda(router.route).invoke (for scale)",
         *paired_us(lambda: plain.invoke(QUERY), route)),
        ("StrataRouterRunnable.invoke", *paired_us(lambda: runnable.invoke(QUERY), route)),
        ("  ... with a callback handler",
         *paired_us(lambda: runnable.invoke(QUERY, traced), route)),
        ("SemanticRouteDispatch.invoke vs route + branch.invoke",
         *paired_us(lambda: dispatch.invoke(QUERY), route_then_branch)),
        ("  ... with a callback handler",
         *paired_us(lambda: dispatch.invoke(QUERY, traced), route_then_branch_traced)),
        ("SemanticRouteDispatch.stream vs route + branch.invoke",
         *paired_us(lambda: list(dispatch.stream(QUERY)), route_then_branch)),
    ]
    batch_rows = [
        ("router.route_batch (baseline)", *paired_us(batch_base, n=200)),
        ("StrataRouterRunnable.batch (one route_batch call)",
         *paired_us(lambda: runnable.batch(queries), batch_base, n=200)),
        ("Runnable.batch default (thread pool of invoke)",
         *paired_us(lambda: Runnable.batch(runnable, queries), batch_base, n=200)),
    ]
    rows += [(f"{name}, per query", own * per_query, extra * per_query)
             for name, own, extra in batch_rows]
    print(f"{'call (median of ' + str(N) + ' interleaved pairs)':56} {'us':>8} {'extra us':>9}")
    for name, own, extra in rows:
        print(f"{name:56} {own:8.1f} {extra:9.1f}" if extra else f"{name:56} {own:8.1f}")


if __name__ == "__main__":
    main()
