"""Check route names against the names of the agents a router picks from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from stratarouter_core import ConfigError, Router

__all__ = ["Named", "agent_names", "check_routes"]


class Named(Protocol):
    """Anything with a `name`: AutoGen agents and teams, ag2 agents."""

    @property
    def name(self) -> str:
        """The agent's name."""
        ...


def agent_names(agents: Iterable[str | Named]) -> tuple[str, ...]:
    """The agents' names, in order; duplicates are a `ConfigError`."""
    names = tuple(agent if isinstance(agent, str) else agent.name for agent in agents)
    if not names:
        raise ConfigError("no agents given: pass the participants (agents or their names)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"agent names must be unique, got {duplicates} more than once")
    return names


def check_routes(router: Router, names: tuple[str, ...], *, every_agent: bool) -> None:
    """Every route must name an agent; with `every_agent`, every agent must have a route.

    The router's `fallback_route` need not name an agent (abstaining then), and an agent
    named like it needs no route of its own.
    """
    unknown = [route for route in router.route_names if route not in names]
    if unknown:
        raise ConfigError(
            f"route(s) {unknown} name no agent (agents: {list(names)}); route names must be "
            "the agents' names"
        )
    if every_agent:
        routed = {*router.route_names, router.config.fallback_route}
        unrouted = [name for name in names if name not in routed]
        if unrouted:
            raise ConfigError(
                f"agent(s) {unrouted} have no route, so the router can never pick them: add "
                f"a Route(name=<agent name>, ...) for each (routes: {list(router.route_names)})"
            )
