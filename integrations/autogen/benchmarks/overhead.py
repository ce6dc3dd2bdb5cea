"""Extra time per call that the AutoGen adapters add on top of `router.route` (median, us).

Adapter call and `router.route` (or `await router.aroute`) on the same text are timed
alternately and the extra is the median of the per-pair differences (robust to a busy
machine). The encoding cache is warm, so the numbers are the adapters' own work: finding
the message in the thread, mapping the route to a participant, logging the decision.

    python integrations/autogen/benchmarks/overhead.py
"""

from __future__ import annotations

import asyncio
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from autogen_agentchat.messages import TextMessage
from stratarouter_core.testing import AdapterContract

from stratarouter_autogen import SpeakerSelector, ag2_speaker_selection

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


async def apaired_extra_us(func: Callable[[], Awaitable[Any]],
                           reference: Callable[[], Awaitable[Any]]) -> float:
    """`paired_extra_us` for coroutines, awaited in one running loop."""
    extra = []
    for i in range(N + 200):
        t0 = time.perf_counter_ns()
        await func()
        t1 = time.perf_counter_ns()
        await reference()
        t2 = time.perf_counter_ns()
        if i >= 200:
            extra.append((t1 - t0) - (t2 - t1))
    return statistics.median(extra) / 1000


def main() -> None:
    """Print one line per adapter."""
    router = AdapterContract.build_router()
    selector = SpeakerSelector(router, router.route_names)
    one = [TextMessage(content=QUERY, source="user")]
    long = [TextMessage(content=f"turn {i}", source="billing") for i in range(19)] + one

    def route() -> Any:
        return router.route(QUERY)

    rows: list[tuple[str, Callable[[], Any]]] = [
        ("SpeakerSelector (sync, 1-message thread)", lambda: selector(one)),
        ("SpeakerSelector (sync, 20-message thread)", lambda: selector(long)),
        ("SpeakerSelector.candidate_func", lambda: selector.candidate_func(one)),
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from autogen import Agent, ConversableAgent, GroupChat
        names = ("user", *router.route_names)
        agents: list[Agent] = [ConversableAgent(n, llm_config=False) for n in names]
        chat = GroupChat(agents=agents, messages=[{"content": QUERY, "name": "user"}])
        select = ag2_speaker_selection(router, fallback=None)
        rows.append(("ag2_speaker_selection", lambda: select(agents[0], chat)))
    except ImportError:
        print("ag2 not installed: skipping ag2_speaker_selection")
    for name, func in rows:
        print(f"{name:<44} +{paired_extra_us(func, route):7.1f} us")

    async def async_rows() -> None:
        async def aroute() -> Any:
            return await router.aroute(QUERY)

        async def aselect() -> Any:
            return await selector.async_selector(one)

        extra = await apaired_extra_us(aselect, aroute)
        print(f"{'SpeakerSelector.async_selector (vs aroute)':<44} +{extra:7.1f} us")

    asyncio.run(async_rows())


if __name__ == "__main__":
    main()
