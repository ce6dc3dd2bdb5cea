"""Assign CrewAI tasks to the agent the router picks (sequential crews)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from crewai import Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from stratarouter_core import ConfigError, DecisionLog, NoRouteError, Router, RouteResult

from ._roles import agents_by_route, role_key

__all__ = ["SemanticDelegator"]


class SemanticDelegator:
    """Pick, for each task, the agent the router chooses; no manager LLM involved.

    Each route goes to the agent whose role is `targets[route]`, or the route's own name
    (matched as CrewAI's delegation tool matches roles: case and whitespace are ignored).
    Both directions are checked when the delegator is built: a route with no agent, or an
    agent no route reaches (other than `fallback`), is a `ConfigError`. The router's
    `fallback_route`, when it reaches an agent, is routed to like any route; otherwise it
    counts as an abstention.

    Args:
        router: A built router.
        agents: The agents to choose from.
        targets: Route name -> agent role, for routes not named after their agent's role
            (`{"billing": "Billing Specialist"}`).
        fallback: The agent (or the role of one of `agents`) `assign` uses when the router
            abstains and the task has no agent; without one, `NoRouteError` is raised.
        max_decisions: How many recent decisions `decisions` keeps.

    Example:
        >>> from crewai import Agent, Task
        >>> from stratarouter_core.testing import AdapterContract
        >>> router = AdapterContract.build_router()
        >>> roles = {"billing": "Billing Specialist", "tech_support": "Tech Support",
        ...          "sales": "Account Executive"}
        >>> agents = [Agent(role=r, goal=r, backstory=r) for r in roles.values()]
        >>> task = Task(description="refund my last payment", expected_output="a reply")
        >>> SemanticDelegator(router, agents, targets=roles).assign(task)[0].agent.role
        'Billing Specialist'
    """

    def __init__(
        self,
        router: Router,
        agents: Sequence[BaseAgent],
        *,
        targets: Mapping[str, str] | None = None,
        fallback: BaseAgent | str | None = None,
        max_decisions: int = 1000,
    ) -> None:
        """Check that routes and agents match one to one."""
        self.router = router
        self.fallback = _fallback_agent(fallback, agents)
        spare = [self.fallback.role] if self.fallback is not None else []
        self.targets = agents_by_route(router, agents, targets, every_agent=True,
                                       spare_roles=spare)
        self.decisions = DecisionLog(max_decisions)

    def select(self, text: str) -> BaseAgent | None:
        """The agent the router picks for `text`, or None when it abstains."""
        start = time.perf_counter()
        return self._record(text, self.router.route(text), start)

    async def aselect(self, text: str) -> BaseAgent | None:
        """Async `select`, through `Router.aroute`."""
        start = time.perf_counter()
        return self._record(text, await self.router.aroute(text), start)

    def assign(self, tasks: Task | Iterable[Task]) -> list[Task]:
        """Set each task's `agent` from its description, before `Crew(...).kickoff()`.

        Takes a list of tasks, or a single `Task`. When the router abstains the task keeps
        the agent it already has, else gets `fallback`, else `NoRouteError` is raised (no task
        is left without an agent).

        Returns:
            The tasks, in order, now carrying their agents.

        Raises:
            ConfigError: Something other than tasks was given.
            NoRouteError: The router abstained on a task that has no agent, and there is no
                fallback.
        """
        task_list = _tasks(tasks)
        for task in task_list:
            task.agent = self._resolve(task, self.select(task.description))
        return task_list

    async def aassign(self, tasks: Task | Iterable[Task]) -> list[Task]:
        """Async `assign`."""
        task_list = _tasks(tasks)
        for task in task_list:
            task.agent = self._resolve(task, await self.aselect(task.description))
        return task_list

    def _resolve(self, task: Task, agent: BaseAgent | None) -> BaseAgent:
        for chosen in (agent, task.agent, self.fallback):
            if chosen is not None:
                return chosen
        raise NoRouteError(
            f"the router abstained on task {task.description[:60]!r} (confidence "
            f"{self.decisions[-1].confidence:.2f}) and the task has no agent: pass "
            "SemanticDelegator(fallback=...), set task.agent, or give the router a "
            "fallback_route naming an agent"
        )

    def _record(self, text: str, result: RouteResult, start: float) -> BaseAgent | None:
        agent = self.targets.get(result.route_id) if result.route_id else None
        self.decisions.record(text, result, agent.role if agent is not None else None, start)
        return agent


def _fallback_agent(fallback: BaseAgent | str | None,
                    agents: Sequence[BaseAgent]) -> BaseAgent | None:
    if fallback is None or isinstance(fallback, BaseAgent):
        return fallback
    for agent in agents:
        if role_key(agent.role) == role_key(fallback):
            return agent
    raise ConfigError(f"fallback {fallback!r} is not the role of one of the agents "
                      f"({[a.role for a in agents]}); pass the agent itself or one of its roles")


def _tasks(tasks: Task | Iterable[Task]) -> list[Task]:
    """`tasks` as a list, checked: a pydantic `Task` iterates as (field, value) pairs."""
    if isinstance(tasks, Task):
        return [tasks]
    try:
        task_list = list(tasks)
    except TypeError:
        raise ConfigError(f"assign() takes a Task or a list of Tasks, got "
                          f"{type(tasks).__name__}") from None
    wrong = [type(t).__name__ for t in task_list if not isinstance(t, Task)]
    if wrong:
        raise ConfigError(f"assign() takes a Task or a list of Tasks, got a list holding "
                          f"{sorted(set(wrong))}")
    return task_list
