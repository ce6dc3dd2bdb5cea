"""Speaker selection for AutoGen's `SelectorGroupChat` (autogen-agentchat 0.7)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Sequence

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from stratarouter_core import ConfigError, Router, RouteResult

from ._decision import RoutingDecision
from ._names import Named, agent_names, check_routes

__all__ = ["SpeakerSelector"]

Thread = Sequence[BaseAgentEvent | BaseChatMessage]


class SpeakerSelector:
    """`selector_func` / `candidate_func` for `SelectorGroupChat`, backed by a router.

    As `selector_func` (the instance itself, or `async_selector`), it routes the newest chat
    message when it comes from one of `sources` (the user, by default) and returns the routed
    participant's name; it returns None, which hands the turn to the model selector, when the
    router abstains or the turn is not a user turn. As `candidate_func`, it narrows the model's
    choice to the router's `top_k` participants for the newest message from `sources`.

    Route names must be the participants' names (valid Python identifiers, as AutoGen
    requires); both directions are checked when the selector is built.

    Args:
        router: A built router whose route names are the participants' names.
        agents: The group chat's participants, or their names.
        sources: Message sources whose turns are routed; None routes every chat message.
        top_k: Most names `candidate_func` returns.
        max_decisions: How many recent decisions `decisions` keeps.

    Example:
        >>> from autogen_agentchat.messages import TextMessage
        >>> from stratarouter_core.testing import AdapterContract
        >>> router = AdapterContract.build_router()
        >>> select = SpeakerSelector(router, ["billing", "tech_support", "sales"])
        >>> select([TextMessage(content="refund my last payment", source="user")])
        'billing'
        >>> select([TextMessage(content="what is the capital of mongolia", source="user")])
    """

    def __init__(
        self,
        router: Router,
        agents: Sequence[str | Named],
        *,
        sources: Collection[str] | None = ("user",),
        top_k: int = 3,
        max_decisions: int = 1000,
    ) -> None:
        """Check that route names and participant names match one to one."""
        names = agent_names(agents)
        invalid = [name for name in names if not name.isidentifier()]
        if invalid:
            raise ConfigError(f"AutoGen agent names must be Python identifiers, got {invalid}")
        check_routes(router, names, every_agent=True)
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        self.router = router
        self.names = names
        self.sources = None if sources is None else frozenset(sources)
        self.top_k = top_k
        self.decisions: deque[RoutingDecision] = deque(maxlen=max_decisions)

    def __call__(self, thread: Thread) -> str | None:
        """Sync `selector_func`: the routed participant's name, or None to abstain."""
        text = self._new_turn(thread)
        if text is None:
            return None
        start = time.perf_counter()
        return self._record(text, self.router.route(text), start)

    async def async_selector(self, thread: Thread) -> str | None:
        """Async `selector_func`, through `Router.aroute`."""
        text = self._new_turn(thread)
        if text is None:
            return None
        start = time.perf_counter()
        return self._record(text, await self.router.aroute(text), start)

    def candidate_func(self, thread: Thread) -> list[str]:
        """Sync `candidate_func`: the router's top participants, best first."""
        text = self._latest_from_sources(thread)
        return self._shortlist(self.router.route(text) if text else None)

    async def async_candidate_func(self, thread: Thread) -> list[str]:
        """Async `candidate_func`, through `Router.aroute`."""
        text = self._latest_from_sources(thread)
        return self._shortlist(await self.router.aroute(text) if text else None)

    def _routed_source(self, message: BaseChatMessage) -> bool:
        return self.sources is None or message.source in self.sources

    def _new_turn(self, thread: Thread) -> str | None:
        """The newest chat message's text, if it is a turn this selector routes."""
        for message in reversed(thread):
            if isinstance(message, BaseChatMessage):
                text = message.to_model_text()
                return text if self._routed_source(message) and text.strip() else None
        return None

    def _latest_from_sources(self, thread: Thread) -> str | None:
        for message in reversed(thread):
            if isinstance(message, BaseChatMessage) and self._routed_source(message):
                text = message.to_model_text()
                return text if text.strip() else None
        return None

    def _shortlist(self, result: RouteResult | None) -> list[str]:
        ranked = [c.route_id for c in result.candidates] if result is not None else []
        names = [name for name in ranked if name in self.names][: self.top_k]
        return names or list(self.names)

    def _record(self, text: str, result: RouteResult, start: float) -> str | None:
        target = result.route_id if result.route_id in self.names else None
        self.decisions.append(
            RoutingDecision(
                text=text,
                route=result.route_id,
                target=target,
                confidence=result.confidence,
                latency_us=(time.perf_counter() - start) * 1e6,
                result=result,
            )
        )
        return target
