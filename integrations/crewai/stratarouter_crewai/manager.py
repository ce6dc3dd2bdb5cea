"""A hierarchical-crew manager that delegates by routing instead of asking an LLM."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from crewai import Agent, Crew, Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.tools.agent_tools.delegate_work_tool import DelegateWorkTool
from crewai.tools.base_tool import BaseTool
from pydantic import ConfigDict, Field, PlainSerializer, PrivateAttr, model_validator
from stratarouter_core import ConfigError, DecisionLog, NoRouteError, Router, RouteResult

from ._roles import agents_by_route, role_key

__all__ = ["SemanticManagerAgent"]


def _describe_router(router: Router) -> dict[str, Any]:
    return {"routes": list(router.route_names), "threshold": router.config.threshold}


class SemanticManagerAgent(Agent):
    """`manager_agent` for `Process.hierarchical` that picks the coworker with the router.

    Each task goes to the coworker the router picks (the agent whose role is
    `targets[route]`, or the route's own name), through the `DelegateWorkTool` CrewAI injects
    into the manager, so delegation events and the coworker's own execution are CrewAI's usual
    ones; the manager's LLM is not called. When the router abstains, the task goes to the
    `fallback` coworker if one is named, else the manager behaves as CrewAI's LLM manager
    (`Agent.execute_task`) if it was given an `llm`, else it raises `NoRouteError`. A task
    that already has an agent goes to that agent, as CrewAI offers the manager only that
    coworker. Every route must reach one of the crew's agents (checked on the first task of
    each crew, before any coworker runs); crew agents without a route are left to the LLM
    manager.

    Built like the other adapters, `SemanticManagerAgent(router, targets=..., fallback=...)`
    (the router may also be passed as `router=`).

    Example:
        >>> from stratarouter_core.testing import AdapterContract
        >>> manager = SemanticManagerAgent(AdapterContract.build_router(),
        ...                                targets={"billing": "Billing Specialist"})
        >>> manager.role, manager.targets, len(manager.decisions)
        ('Semantic Manager', {'billing': 'Billing Specialist'}, 0)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: Annotated[Router, PlainSerializer(_describe_router, when_used="json")] = Field(
        description="Router whose route names are the coworkers' roles."
    )
    role: str = Field(default="Semantic Manager", description="Role of the manager.")
    goal: str = Field(
        default="Hand every task to the coworker best suited to it.",
        description="Goal of the manager.",
    )
    backstory: str = Field(
        default="You dispatch work to the right specialist.", description="Manager backstory."
    )
    targets: dict[str, str] = Field(
        default_factory=dict,
        description="Route name -> coworker role, for routes not named after the role.",
    )
    fallback: str | None = Field(
        default=None, description="Role of the coworker that takes the task on abstain."
    )
    fallback_to_llm: bool | None = Field(
        default=None,
        description="On abstain with no fallback, let the LLM manager decide (None: whether "
        "llm= was given).",
    )
    max_decisions: int = Field(default=1000, ge=1, description="Decisions kept in `decisions`.")
    _decisions: DecisionLog = PrivateAttr()
    _by_route: tuple[tuple[int, ...], dict[str, BaseAgent]] | None = PrivateAttr(None)

    def __init__(self, router: Router | None = None, /, **data: Any) -> None:
        """`SemanticManagerAgent(router, **fields)`, like the other adapters, or `router=`."""
        if router is not None:
            if "router" in data:
                raise ConfigError("router given twice: positionally and as router=")
            data["router"] = router
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _default_fallback(cls, data: Any) -> Any:
        # Agent always ends up with an llm (a default OpenAI one when none is given), so
        # whether the caller gave one can only be seen here.
        if isinstance(data, dict) and data.get("fallback_to_llm") is None:
            data = {**data, "fallback_to_llm": data.get("llm") is not None}
        return data

    def model_post_init(self, context: Any, /) -> None:
        """Set up the decision log."""
        super().model_post_init(context)
        self._decisions = DecisionLog(self.max_decisions)

    @property
    def decisions(self) -> DecisionLog:
        """The most recent routing decisions, oldest first."""
        return self._decisions

    def execute_task(
        self, task: Task, context: str | None = None, tools: list[BaseTool] | None = None
    ) -> Any:
        """Delegate `task` to the routed coworker; fall back to the LLM manager on abstain."""
        start = time.perf_counter()
        delegate = _delegate_tool(tools)
        coworker = self._preassigned(delegate) or self._routed(
            task, delegate, self.router.route(task.description), start
        )
        if coworker is None:
            self._require_llm(task)
            return super().execute_task(task, context, tools)
        return delegate.run(task=_brief(task), context=context or "", coworker=coworker)

    async def aexecute_task(
        self, task: Task, context: str | None = None, tools: list[BaseTool] | None = None
    ) -> Any:
        """Async `execute_task`, through `Router.aroute`."""
        start = time.perf_counter()
        delegate = _delegate_tool(tools)
        coworker = self._preassigned(delegate) or self._routed(
            task, delegate, await self.router.aroute(task.description), start
        )
        if coworker is None:
            self._require_llm(task)
            return await super().aexecute_task(task, context, tools)
        return await asyncio.to_thread(
            delegate.run, task=_brief(task), context=context or "", coworker=coworker
        )

    def _crew_agents(self, delegate: DelegateWorkTool) -> list[BaseAgent]:
        crew = self.crew
        return list(crew.agents) if isinstance(crew, Crew) else list(delegate.agents)

    def _preassigned(self, delegate: DelegateWorkTool) -> str | None:
        """The coworker CrewAI imposes: it offers only `task.agent` when the task has one."""
        offered, members = delegate.agents, self._crew_agents(delegate)
        if len(offered) == 1 and [id(a) for a in offered] != [id(a) for a in members]:
            return offered[0].role
        return None

    def _routed(
        self, task: Task, delegate: DelegateWorkTool, result: RouteResult, start: float
    ) -> str | None:
        agents = self._crew_agents(delegate)
        by_route = self._coworkers(agents)
        agent = by_route.get(result.route_id) if result.route_id else None
        coworker = agent.role if agent is not None else self._fallback_role(agents)
        self._decisions.record(task.description, result, coworker, start)
        return coworker

    def _fallback_role(self, agents: list[BaseAgent]) -> str | None:
        if self.fallback is None:
            return None
        for agent in agents:
            if role_key(agent.role) == role_key(self.fallback):
                return agent.role
        raise ConfigError(f"fallback {self.fallback!r} is not the role of a crew agent "
                          f"({[a.role for a in agents]})")

    def _coworkers(self, agents: list[BaseAgent]) -> dict[str, BaseAgent]:
        ids = tuple(id(agent) for agent in agents)
        cached = self._by_route  # one read: private attributes go through pydantic's __getattr__
        if cached is None or cached[0] != ids:
            resolved = agents_by_route(self.router, agents, self.targets, every_agent=False)
            self._fallback_role(agents)  # a wrong fallback fails before any coworker runs
            cached = self._by_route = (ids, resolved)
        return cached[1]

    def _require_llm(self, task: Task) -> None:
        if not self.fallback_to_llm:
            raise NoRouteError(
                f"the router abstained on task {task.description[:60]!r} and "
                "SemanticManagerAgent has no fallback coworker and no llm to fall back on: "
                "pass fallback=<role>, llm=... to let the LLM manager decide, or give the "
                "router a fallback_route naming a coworker"
            )


def _delegate_tool(tools: list[BaseTool] | None) -> DelegateWorkTool:
    for tool in tools or ():
        if isinstance(tool, DelegateWorkTool):
            return tool
    raise ConfigError(
        "SemanticManagerAgent got no delegation tool: use it as Crew(manager_agent=..., "
        "process=Process.hierarchical), not as a crew member"
    )


def _brief(task: Task) -> str:
    """What a manager would tell the coworker: the task and the output it expects."""
    return f"{task.description}\n\nExpected output: {task.expected_output}"
