"""Assign CrewAI tasks to the agent whose role the router picks (sequential crews)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from crewai import Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from stratarouter_core import ConfigError, Router, RouteResult

from ._decision import NoRouteError, RoutingDecision, role_key

__all__ = ["SemanticDelegator"]


class SemanticDelegator:
    """Pick, for each task, the agent whose role the router chooses; no manager LLM involved.

    Route names are agent roles (matched as CrewAI's delegation tool matches them: case and
    whitespace are ignored). Both directions are checked when the delegator is built: a route
    with no agent, or an agent with no route, is a `ConfigError`. The router's
    `fallback_route`, when it names an agent, is routed to like any route; otherwise it counts
    as an abstention.

    Args:
        router: A built router whose route names are the agents' roles.
        agents: The agents to choose from.
        default_agent: Used by `assign` when the router abstains and the task has no agent.
        max_decisions: How many recent decisions `decisions` keeps.

    Example:
        >>> from crewai import Agent, Task
        >>> from stratarouter_core.testing import AdapterContract
        >>> router = AdapterContract.build_router()
        >>> agents = [Agent(role=r, goal=r, backstory=r) for r in router.route_names]
        >>> task = Task(description="refund my last payment", expected_output="a reply")
        >>> SemanticDelegator(router, agents).assign([task])[0].agent.role
        'billing'
    """

    def __init__(
        self,
        router: Router,
        agents: Sequence[BaseAgent],
        *,
        default_agent: BaseAgent | None = None,
        max_decisions: int = 1000,
    ) -> None:
        """Check that routes and agent roles match one to one."""
        self.router = router
        self.default_agent = default_agent
        self._by_role: Mapping[str, BaseAgent] = agents_by_role(router, agents)
        self.decisions: deque[RoutingDecision] = deque(maxlen=max_decisions)

    def select(self, text: str) -> BaseAgent | None:
        """The agent the router picks for `text`, or None when it abstains."""
        start = time.perf_counter()
        return self._record(text, self.router.route(text), start)

    async def aselect(self, text: str) -> BaseAgent | None:
        """Async `select`, through `Router.aroute`."""
        start = time.perf_counter()
        return self._record(text, await self.router.aroute(text), start)

    def assign(self, tasks: Iterable[Task]) -> list[Task]:
        """Set each task's `agent` from its description, before `Crew(...).kickoff()`.

        When the router abstains the task keeps the agent it already has, else gets
        `default_agent`, else `NoRouteError` is raised (no task is left without an agent).

        Returns:
            The tasks, in order, now carrying their agents.
        """
        tasks = list(tasks)
        for task in tasks:
            task.agent = self._resolve(task, self.select(task.description))
        return tasks

    async def aassign(self, tasks: Iterable[Task]) -> list[Task]:
        """Async `assign`."""
        tasks = list(tasks)
        for task in tasks:
            task.agent = self._resolve(task, await self.aselect(task.description))
        return tasks

    def _resolve(self, task: Task, agent: BaseAgent | None) -> BaseAgent:
        for chosen in (agent, task.agent, self.default_agent):
            if chosen is not None:
                return chosen
        raise NoRouteError(
            f"the router abstained on task {task.description[:60]!r} (confidence "
            f"{self.decisions[-1].confidence:.2f}) and the task has no agent: pass "
            "SemanticDelegator(default_agent=...), set task.agent, or give the router a "
            "fallback_route naming an agent"
        )

    def _record(self, text: str, result: RouteResult, start: float) -> BaseAgent | None:
        agent = self._by_role.get(role_key(result.route_id)) if result.route_id else None
        self.decisions.append(
            RoutingDecision(
                text=text,
                route=result.route_id,
                target=agent.role if agent is not None else None,
                confidence=result.confidence,
                latency_us=(time.perf_counter() - start) * 1e6,
                result=result,
            )
        )
        return agent


def agents_by_role(router: Router, agents: Sequence[BaseAgent]) -> dict[str, BaseAgent]:
    """Map each normalised role to its agent; raise `ConfigError` unless routes == roles."""
    if not agents:
        raise ConfigError("no agents given: pass the crew's agents")
    by_key: dict[str, BaseAgent] = {}
    for agent in agents:
        key = role_key(agent.role)
        if key in by_key:
            raise ConfigError(f"two agents share the role {agent.role!r}: roles must be unique")
        by_key[key] = agent
    routes = {role_key(name): name for name in router.route_names}
    unknown = [name for key, name in routes.items() if key not in by_key]
    if unknown:
        raise ConfigError(
            f"route(s) {unknown} have no agent with that role (agent roles: "
            f"{[a.role for a in agents]}); route names must be the agents' roles"
        )
    fallback = router.config.fallback_route
    allowed = set(routes) | ({role_key(fallback)} if fallback else set())
    unrouted = [agent.role for key, agent in by_key.items() if key not in allowed]
    if unrouted:
        raise ConfigError(
            f"agent(s) {unrouted} have no route, so the router can never pick them: add a "
            f"Route(name=<role>, examples=[...]) for each, or leave them out (routes: "
            f"{list(router.route_names)})"
        )
    return by_key
