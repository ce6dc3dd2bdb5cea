"""Speaker selection for classic ag2 `GroupChat(speaker_selection_method=...)` (ag2 0.9-0.x).

Nothing here imports ag2 at run time; the selector only calls the `GroupChat` it is given.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stratarouter_core import ConfigError, DecisionLog, Router

from ._names import Named, agent_names, route_targets

if TYPE_CHECKING:
    from autogen import Agent, GroupChat

__all__ = ["Ag2SpeakerSelector", "ag2_speaker_selection"]

METHODS = frozenset({"auto", "manual", "random", "round_robin"})


class Ag2SpeakerSelector:
    """A `speaker_selection_method` callable: the routed agent, else the fallback.

    ag2 calls it synchronously, even under `a_run_chat`, with `(last_speaker, groupchat)`. It
    routes the newest message (when `last_speaker` is one of `sources`) and returns the agent
    the route names (`targets[route]`, else the route's name). Otherwise (abstain, a turn not
    routed, an empty message) it returns
    `fallback`: a built-in method name ("auto" needs an LLM on the manager; "round_robin",
    "random", "manual"), an agent name, or None, which ends the chat after the routed reply.
    Route names are checked against the group chat's agent names on every call that sees a
    new set of agents (and at construction when `agents` is given).
    """

    def __init__(
        self,
        router: Router,
        *,
        agents: Sequence[str | Named] | None = None,
        targets: Mapping[str, str] | None = None,
        fallback: str | None = "auto",
        sources: Collection[str] | None = None,
        max_decisions: int = 1000,
    ) -> None:
        """See `ag2_speaker_selection`."""
        self.router = router
        self.fallback = fallback
        self.sources = None if sources is None else frozenset(sources)
        self.decisions = DecisionLog(max_decisions)
        self._given_targets = dict(targets or {})
        self.targets: dict[str, str] = {}
        self._checked: tuple[str, ...] | None = None
        if agents is not None:
            self._check(agent_names(agents))

    def __call__(self, last_speaker: Agent, groupchat: GroupChat) -> Agent | str | None:
        """Pick the next speaker of `groupchat`."""
        start = time.perf_counter()
        names = tuple(groupchat.agent_names)
        if names != self._checked:
            self._check(names)
        text = _text(groupchat.messages[-1]) if groupchat.messages else ""
        if (self.sources is not None and last_speaker.name not in self.sources) or not text:
            return self._fallback(groupchat)
        result = self.router.route(text)
        name = self.targets.get(result.route_id) if result.route_id else None
        agent = groupchat.agent_by_name(name) if name is not None else None
        self.decisions.record(text, result, agent.name if agent is not None else None, start)
        return agent if agent is not None else self._fallback(groupchat)

    def _check(self, names: tuple[str, ...]) -> None:
        self.targets = route_targets(self.router, names, self._given_targets)
        fallback = self.fallback
        if fallback is not None and fallback.lower() not in METHODS and fallback not in names:
            raise ConfigError(
                f"fallback {fallback!r} is neither a speaker selection method {sorted(METHODS)} "
                f"nor an agent of the group chat ({list(names)})"
            )
        self._checked = names

    def _fallback(self, groupchat: GroupChat) -> Agent | str | None:
        if self.fallback is None or self.fallback.lower() in METHODS:
            return self.fallback
        return groupchat.agent_by_name(self.fallback)


def ag2_speaker_selection(
    router: Router,
    *,
    agents: Sequence[str | Named] | None = None,
    targets: Mapping[str, str] | None = None,
    fallback: str | None = "auto",
    sources: Collection[str] | None = None,
    max_decisions: int = 1000,
) -> Ag2SpeakerSelector:
    """Build a `speaker_selection_method` for ag2's `GroupChat` from a router.

    Args:
        router: A built router.
        agents: The group chat's agents (or names), to check the routes now rather than on
            the first turn.
        targets: Route name -> agent name, for routes not named after their agent.
        fallback: Returned when the router abstains or a turn is not routed: "auto" (the
            manager's LLM picks; needs `llm_config` on the `GroupChatManager`), another
            method name, an agent name, or None to end the chat.
        sources: Names of the speakers whose messages are routed; None routes every turn.
        max_decisions: How many recent decisions `decisions` keeps.

    Returns:
        The callable to pass as `GroupChat(speaker_selection_method=...)`; its `decisions`
        holds the recent routing decisions.

    Example:
        >>> from stratarouter_core.testing import AdapterContract
        >>> select = ag2_speaker_selection(
        ...     AdapterContract.build_router(), agents=["user", "billing", "tech_support", "sales"],
        ...     fallback=None, sources=["user"])
        >>> select.fallback is None
        True
    """
    return Ag2SpeakerSelector(router, agents=agents, targets=targets, fallback=fallback,
                              sources=sources, max_decisions=max_decisions)


def _text(message: Mapping[str, Any]) -> str:
    """The text of an ag2 message: a string, or the text parts of multimodal content."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping)
        )
    return content.strip() if isinstance(content, str) else ""
