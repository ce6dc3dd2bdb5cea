"""Check route names against the names of the agents a router picks from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from stratarouter_core import ConfigError, Router

__all__ = ["Named", "agent_names", "route_targets"]


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


def route_targets(router: Router, names: tuple[str, ...],
                  targets: Mapping[str, str] | None) -> dict[str, str]:
    """Route name -> agent name (`targets[route]`, else the route's name), for every route.

    Every route must name an agent. The router's `fallback_route` is included when it is
    mapped or names an agent; otherwise it stays an abstention. Agents no route names are
    fine: they are left to the framework's own selection.
    """
    given = dict(targets or {})
    fallback = router.config.fallback_route
    known = [*router.route_names, *([fallback] if fallback else [])]
    unknown_routes = [route for route in given if route not in known]
    if unknown_routes:
        raise ConfigError(f"targets given for unknown route(s) {unknown_routes} "
                          f"(routes: {known})")
    resolved = {route: given.get(route, route) for route in router.route_names}
    unknown = [route for route, name in resolved.items() if name not in names]
    if unknown:
        raise ConfigError(
            f"route(s) {unknown} name no agent (agents: {list(names)}); route names must be "
            "the agents' names, or map them: targets={'billing': 'billing_agent'}"
        )
    if fallback and given.get(fallback, fallback) in names:
        resolved[fallback] = given.get(fallback, fallback)
    return resolved
