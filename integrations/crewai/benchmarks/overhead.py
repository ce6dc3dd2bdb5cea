"""Extra time per call that the CrewAI adapters add on top of `router.route` (median, us).

Adapter call and `router.route` on the same text are timed alternately and the extra is
the median of the per-pair differences (robust to a busy machine). The encoding cache is
warm, so the numbers are the adapters' own work, not the encoder. For the manager, only
its routing step is timed: the delegation that follows is CrewAI's `DelegateWorkTool` run.

    python integrations/crewai/benchmarks/overhead.py
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any, cast

_tmp = tempfile.mkdtemp(prefix="stratarouter-crewai-bench-")  # crewai writes under HOME
atexit.register(shutil.rmtree, _tmp, ignore_errors=True)
os.environ.update(CREWAI_TRACING_ENABLED="false", CREWAI_DISABLE_TELEMETRY="true",
                  OTEL_SDK_DISABLED="true", CREWAI_STORAGE_DIR=os.path.join(_tmp, "storage"),
                  HOME=_tmp)

from crewai import Agent, Task  # noqa: E402
from crewai.flow.flow import Flow, listen, start  # noqa: E402
from crewai.tools.agent_tools.agent_tools import AgentTools  # noqa: E402
from crewai.tools.agent_tools.delegate_work_tool import DelegateWorkTool  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from stratarouter_core.testing import AdapterContract  # noqa: E402

from stratarouter_crewai import (  # noqa: E402
    SemanticDelegator,
    SemanticFlowRouter,
    SemanticManagerAgent,
)

QUERY = "I was charged twice, please refund my payment"
N = 3000


def paired_extra_us(func: Callable[[], Any], reference: Callable[[], Any]) -> float:
    """Median of (func - reference) over N alternating pairs, in microseconds."""
    for _ in range(200):
        func()
        reference()
    extra = []
    for _ in range(N):
        t0 = time.perf_counter_ns()
        func()
        t1 = time.perf_counter_ns()
        reference()
        t2 = time.perf_counter_ns()
        extra.append((t1 - t0) - (t2 - t1))
    return statistics.median(extra) / 1000


def median_us(func: Callable[[], Any]) -> float:
    """Median time of func() over N calls, in microseconds."""
    times = []
    for _ in range(N):
        t0 = time.perf_counter_ns()
        func()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


class State(BaseModel):
    """Flow state with the decision fields."""

    route: str = ""
    confidence: float = 0.0


class Tickets(Flow[State]):
    """A flow listening to every route and to the fallback label."""

    @start()
    def begin(self) -> None:  # noqa: D102
        return None

    @listen("billing")
    def a(self) -> None:  # noqa: D102
        return None

    @listen("tech_support")
    def b(self) -> None:  # noqa: D102
        return None

    @listen("sales")
    def c(self) -> None:  # noqa: D102
        return None

    @listen("human")
    def d(self) -> None:  # noqa: D102
        return None


def main() -> None:
    """Print one line per adapter."""
    router = AdapterContract.build_router()
    agents = [Agent(role=r, goal=r, backstory=r) for r in router.route_names]
    delegator = SemanticDelegator(router, agents)
    task = Task(description=QUERY, expected_output="a reply")
    flow = Tickets(suppress_flow_events=True)
    flow_router = SemanticFlowRouter(router, flow, fallback="human")
    manager = SemanticManagerAgent(router=router)
    delegate = cast(DelegateWorkTool, AgentTools(agents=agents).tools()[0])

    def manager_step() -> Any:
        start = time.perf_counter()
        return manager._preassigned(delegate) or manager._routed(
            task, delegate, router.route(QUERY), start)

    def route() -> Any:
        return router.route(QUERY)

    print(f"router.route (reference, warm cache)         {median_us(route):8.1f} us")
    for name, func in [
        ("SemanticDelegator.select", lambda: delegator.select(QUERY)),
        ("SemanticDelegator.assign([task])", lambda: delegator.assign([task])),
        ("SemanticFlowRouter.route (pydantic state)", lambda: flow_router.route(QUERY)),
        ("SemanticManagerAgent routing step", manager_step),
    ]:
        print(f"{name:<44} +{paired_extra_us(func, route):7.1f} us")


if __name__ == "__main__":
    main()
