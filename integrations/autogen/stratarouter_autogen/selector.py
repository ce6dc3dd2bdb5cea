"""Speaker selection for AutoGen's `SelectorGroupChat` (autogen-agentchat 0.7)."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from stratarouter_core import ConfigError, DecisionLog, Router, RouteResult

from ._names import Named, agent_names, route_targets

__all__ = ["SpeakerSelector"]

Thread = Sequence[BaseAgentEvent | BaseChatMessage]


class SpeakerSelector:
    """`selector_func` / `candidate_func` for `SelectorGroupChat`, backed by a router.

    As `selector_func` (the instance itself, or `async_selector`), it routes the newest chat
    message when it comes from one of `sources` (the user, by default) and returns the routed
    participant's name. When the router abstains it returns `fallback`; with no fallback (the
    default) it returns None, which hands the turn to AutoGen's model selector, as it does for
    turns it does not route. As `candidate_func`, it narrows the model's choice to the router's
    `top_k` participants for the newest message from `sources`, plus every participant no
    route names.

    Each route names a participant: `targets[route]`, or the route's own name (AutoGen names
    are Python identifiers). Participants no route names (a summariser, a critic) are fine:
    the router never picks them and the model selector still can.

    Args:
        router: A built router.
        agents: The group chat's participants, or their names.
        targets: Route name -> participant name, for routes not named after their agent.
        fallback: Participant named when the router abstains; None lets the model choose.
        sources: Message sources whose turns are routed; None routes every chat message.
        top_k: Most routed names `candidate_func` returns.
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
        targets: Mapping[str, str] | None = None,
        fallback: str | None = None,
        sources: Collection[str] | None = ("user",),
        top_k: int = 3,
        max_decisions: int = 1000,
    ) -> None:
        """Check that every route names a participant."""
        names = agent_names(agents)
        invalid = [name for name in names if not name.isidentifier()]
        if invalid:
            raise ConfigError(f"AutoGen agent names must be Python identifiers, got {invalid}")
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        if fallback is not None and fallback not in names:
            raise ConfigError(f"fallback {fallback!r} is not a participant ({list(names)})")
        self.router = router
        self.names = names
        self.targets = route_targets(router, names, targets)
        self.fallback = fallback
        self.unrouted = tuple(n for n in names if n not in self.targets.values())
        self.sources = None if sources is None else frozenset(sources)
        self.top_k = top_k
        self.decisions = DecisionLog(max_decisions)

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
        if result is None:
            return list(self.names)
        ranked = [self.targets[c.route_id] for c in result.candidates if c.route_id in self.targets]
        routed = list(dict.fromkeys(ranked))[: self.top_k]
        return [*routed, *self.unrouted]  # the model may always pick an agent with no route

    def _record(self, text: str, result: RouteResult, start: float) -> str | None:
        routed = self.targets.get(result.route_id) if result.route_id is not None else None
        target = routed if routed is not None else self.fallback
        self.decisions.record(text, result, target, start)
        return target
