"""Route name -> agent resolution shared by the CrewAI adapters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crewai.agents.agent_builder.base_agent import BaseAgent
from stratarouter_core import ConfigError, Router

__all__ = ["agents_by_route", "role_key"]


def role_key(role: str) -> str:
    """Normalise a role the way CrewAI's delegation tool matches coworkers.

    Whitespace is collapsed, double quotes removed and case folded, so the route
    `"billing specialist"` names the agent whose role is `"Billing  Specialist"`.
    """
    return " ".join(role.split()).replace('"', "").casefold()


def agents_by_route(
    router: Router,
    agents: Sequence[BaseAgent],
    targets: Mapping[str, str] | None,
    *,
    every_agent: bool,
    spare_roles: Sequence[str] = (),
) -> dict[str, BaseAgent]:
    """Route name -> agent, through `targets` (route -> role; default: the route's name).

    Every route must reach an agent. The router's `fallback_route` reaches an agent when it
    is mapped or names one, else it stays an abstention. With `every_agent`, an agent that no
    route reaches (and whose role is not in `spare_roles`) is a `ConfigError`: it could never
    be picked.
    """
    if not agents:
        raise ConfigError("no agents given: pass the crew's agents")
    by_key: dict[str, BaseAgent] = {}
    for agent in agents:
        key = role_key(agent.role)
        if key in by_key:
            raise ConfigError(f"two agents share the role {agent.role!r}: roles must be unique")
        by_key[key] = agent
    given = dict(targets or {})
    fallback = router.config.fallback_route
    known = [*router.route_names, *([fallback] if fallback else [])]
    unknown = [route for route in given if route not in known]
    if unknown:
        raise ConfigError(f"targets given for unknown route(s) {unknown} (routes: {known})")
    roles = [a.role for a in agents]
    resolved: dict[str, BaseAgent] = {}
    unreached: list[str] = []
    for route in router.route_names:
        found = by_key.get(role_key(given.get(route, route)))
        if found is None:
            unreached.append(route)
        else:
            resolved[route] = found
    if unreached:
        raise ConfigError(
            f"route(s) {unreached} have no agent with that role (agent roles: {roles}); name "
            "routes after the roles or map them: targets={'billing': 'Billing Specialist'}"
        )
    if fallback and (spare := by_key.get(role_key(given.get(fallback, fallback)))) is not None:
        resolved[fallback] = spare
    if every_agent:
        reached = {id(agent) for agent in resolved.values()}
        spare_keys = {role_key(role) for role in spare_roles}
        unrouted = [a.role for a in agents
                    if id(a) not in reached and role_key(a.role) not in spare_keys]
        if unrouted:
            raise ConfigError(
                f"agent(s) {unrouted} have no route, so the router can never pick them: add a "
                f"Route for each (or map one with targets=), make one the fallback, or leave "
                f"them out (routes: {list(router.route_names)})"
            )
    return resolved
