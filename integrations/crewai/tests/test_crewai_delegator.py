from __future__ import annotations

import pytest
from crewai import Crew, Process, Task
from stratarouter_core import ConfigError, Route, Router, RouterConfig
from stratarouter_core.testing import AdapterContract, HashingEncoder

from stratarouter_crewai import NoRouteError, SemanticDelegator


def task(text: str, agent=None) -> Task:
    return Task(description=text, expected_output="a short reply", agent=agent)


def test_sequential_crew_runs_each_task_on_the_routed_agent(router, make_agents):
    agents = make_agents(router.route_names)
    tasks = [
        task("I was charged twice, please refund my payment"),
        task("the app crashes with error 500 when I upload"),
        task("book a demo and get a quote for an enterprise license"),
    ]
    delegator = SemanticDelegator(router, agents)
    assert delegator.assign(tasks) == tasks

    output = Crew(agents=agents, tasks=tasks, process=Process.sequential).kickoff()

    assert [o.agent for o in output.tasks_output] == ["billing", "tech_support", "sales"]
    assert [o.raw for o in output.tasks_output] == [
        "billing did it", "tech_support did it", "sales did it"
    ]
    assert [a.llm.calls for a in agents] == [1, 1, 1]
    assert [d.route for d in delegator.decisions] == ["billing", "tech_support", "sales"]
    assert all(0 < d.confidence <= 1 and d.latency_us > 0 for d in delegator.decisions)


def test_abstain_keeps_the_task_agent_then_default_then_raises(router, make_agents):
    billing, tech, sales = make_agents(router.route_names)
    [human] = make_agents(["human"])
    off_topic = "recommend a good lasagna recipe"

    delegator = SemanticDelegator(router, [billing, tech, sales])
    assert delegator.assign([task(off_topic, agent=sales)])[0].agent is sales
    with pytest.raises(NoRouteError, match="fallback"):
        delegator.assign([task(off_topic)])
    assert delegator.decisions[-1].route is None
    assert delegator.decisions[-1].target is None

    with_default = SemanticDelegator(router, [billing, tech, sales], fallback=human)
    assert with_default.assign([task(off_topic)])[0].agent is human
    assert with_default.assign([task(off_topic, agent=tech)])[0].agent is tech
    by_role = SemanticDelegator(router, [billing, tech, sales, human], fallback="Human")
    assert by_role.assign(task(off_topic))[0].agent is human
    assert by_role.decisions[-1].target is None  # the router's own pick: none
    with pytest.raises(ConfigError, match="'nobody' is not the role"):
        SemanticDelegator(router, [billing, tech, sales], fallback="nobody")


def test_fallback_route_naming_an_agent_is_routed_to(make_agents):
    router = AdapterContract.build_router(fallback_route="human")
    agents = make_agents([*router.route_names, "Human"])  # roles match case-insensitively
    delegator = SemanticDelegator(router, agents)
    assert delegator.select("what is the capital of mongolia").role == "Human"
    assert delegator.decisions[-1].result.is_fallback


async def test_async_assign(router, make_agents):
    agents = make_agents(router.route_names)
    [t] = await SemanticDelegator(router, agents).aassign([task("refund my last payment")])
    assert t.agent is agents[0]


def test_bad_wiring_is_a_clear_error(router, make_agents):
    with pytest.raises(ConfigError, match=r"route\(s\) \['sales'\] have no agent"):
        SemanticDelegator(router, make_agents(["billing", "tech_support"]))
    with pytest.raises(ConfigError, match=r"agent\(s\) \['legal'\] have no route"):
        SemanticDelegator(router, make_agents([*router.route_names, "legal"]))
    with pytest.raises(ConfigError, match="share the role"):
        SemanticDelegator(router, make_agents([*router.route_names, "Billing"]))
    with pytest.raises(ConfigError, match="no agents"):
        SemanticDelegator(router, [])


def test_role_matching_follows_crewai_normalisation(make_agents):
    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.0))
    router.add_routes([
        Route(name="billing specialist", examples=["refund my invoice"]),
        Route(name="Tech Support", examples=["the app crashes"]),
    ])
    router.build_index()
    agents = make_agents(["Billing  Specialist", "tech support"])
    assert SemanticDelegator(router, agents).select("refund the invoice") is agents[0]


def test_adapter_contract(router, make_agents):
    delegator = SemanticDelegator(router, make_agents(router.route_names))

    def route(query: str) -> str | None:
        agent = delegator.select(query)
        return agent.role if agent is not None else None

    AdapterContract.check(route, router)


ROLES = {"billing": "Billing Specialist", "tech_support": "Tech Support Engineer",
         "sales": "Account Executive"}


def test_targets_map_routes_to_roles(router, make_agents):
    agents = make_agents(ROLES.values())
    delegator = SemanticDelegator(router, agents, targets=ROLES)
    tasks = delegator.assign([task("refund my last payment"), task("the app crashes")])
    assert [t.agent.role for t in tasks] == ["Billing Specialist", "Tech Support Engineer"]
    assert [(d.route, d.target) for d in delegator.decisions] == [
        ("billing", "Billing Specialist"), ("tech_support", "Tech Support Engineer")
    ]
    output = Crew(agents=agents, tasks=tasks, process=Process.sequential).kickoff()
    assert [o.raw for o in output.tasks_output] == [
        "Billing Specialist did it", "Tech Support Engineer did it"
    ]
    # partial mapping: the other routes keep their own names as roles
    partial = make_agents(["Billing Specialist", "tech_support", "sales"])
    assert SemanticDelegator(router, partial, targets={"billing": "billing specialist"}).select(
        "refund my last payment") is partial[0]
    unmapped = r"\['billing', 'tech_support', 'sales'\] have no agent.*targets="
    with pytest.raises(ConfigError, match=unmapped):
        SemanticDelegator(router, make_agents(ROLES.values()))
    with pytest.raises(ConfigError, match="unknown route"):
        SemanticDelegator(router, agents, targets={**ROLES, "legal": "Lawyer"})


def test_assign_takes_one_task_or_a_list(router, make_agents):
    delegator = SemanticDelegator(router, make_agents(router.route_names))
    [one] = delegator.assign(task("refund my last payment"))
    assert one.agent.role == "billing"
    assert [t.agent.role for t in delegator.assign((task("the app crashes"),))] == [
        "tech_support"
    ]
    with pytest.raises(ConfigError, match=r"Task or a list of Tasks.*\['str'\]"):
        delegator.assign(["refund my last payment"])
    with pytest.raises(ConfigError, match="Task or a list of Tasks, got int"):
        delegator.assign(5)
