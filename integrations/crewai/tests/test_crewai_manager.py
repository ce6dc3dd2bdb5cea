from __future__ import annotations

import pytest
from crewai import Crew, Process, Task
from crewai.tools.agent_tools.agent_tools import AgentTools
from stratarouter_core import ConfigError
from stratarouter_core.testing import AdapterContract

from stratarouter_crewai import NoRouteError, SemanticManagerAgent


def hierarchical(agents, manager, *texts):
    tasks = [Task(description=text, expected_output="a short reply") for text in texts]
    return Crew(agents=agents, tasks=tasks, process=Process.hierarchical, manager_agent=manager)


def test_manager_delegates_to_the_routed_coworker_without_calling_its_llm(
    router, make_agents, canned
):
    agents = make_agents(router.route_names)
    manager_llm = canned()
    manager = SemanticManagerAgent(router=router, llm=manager_llm)

    output = hierarchical(agents, manager, "the app crashes with error 500 when I upload").kickoff()

    assert output.raw == "tech_support did it"
    assert manager_llm.calls == 0
    assert [a.llm.calls for a in agents] == [0, 1, 0]
    [decision] = manager.decisions
    assert (decision.route, decision.target) == ("tech_support", "tech_support")
    assert decision.confidence > router.config.threshold


async def test_async_kickoff_delegates_too(router, make_agents, canned):
    agents = make_agents(router.route_names)
    manager_llm = canned()
    manager = SemanticManagerAgent(router=router, llm=manager_llm)

    output = await hierarchical(agents, manager, "refund my last payment").kickoff_async()

    assert output.raw == "billing did it"
    assert manager_llm.calls == 0
    assert [a.llm.calls for a in agents] == [1, 0, 0]


def test_abstain_falls_back_to_the_llm_manager(router, make_agents, canned):
    agents = make_agents(router.route_names)
    manager_llm = canned("Final Answer: the manager answered itself")
    manager = SemanticManagerAgent(router=router, llm=manager_llm)

    output = hierarchical(agents, manager, "recommend a good lasagna recipe").kickoff()

    assert output.raw == "the manager answered itself"
    assert manager_llm.calls == 1
    assert [a.llm.calls for a in agents] == [0, 0, 0]
    assert manager.decisions[-1].route is None and manager.decisions[-1].target is None


@pytest.mark.parametrize("with_llm", [False, True])
def test_abstain_without_llm_fallback_raises(router, make_agents, canned, with_llm):
    manager = (SemanticManagerAgent(router=router, llm=canned(), fallback_to_llm=False)
               if with_llm else SemanticManagerAgent(router=router))
    assert manager.fallback_to_llm is False
    with pytest.raises(NoRouteError, match="no llm to fall back on"):
        hierarchical(make_agents(router.route_names), manager, "lasagna recipe please").kickoff()


def test_preassigned_task_keeps_its_agent(router, make_agents):
    agents = make_agents(router.route_names)
    manager = SemanticManagerAgent(router=router)
    crew = hierarchical(agents, manager, "refund my last payment")
    crew.tasks[0].agent = agents[2]
    assert crew.kickoff().raw == "sales did it"
    assert len(manager.decisions) == 0


def test_routes_must_match_the_crews_roles(router, make_agents):
    manager = SemanticManagerAgent(router=router)
    crew = hierarchical(make_agents(["billing", "sales"]), manager, "refund my last payment")
    with pytest.raises(ConfigError, match=r"\['tech_support'\] have no agent"):
        crew.kickoff()


def test_used_outside_a_hierarchical_crew_is_a_clear_error(router):
    manager = SemanticManagerAgent(router=router)
    with pytest.raises(ConfigError, match="manager_agent"):
        manager.execute_task(Task(description="refund", expected_output="x"))


def test_copy_keeps_the_router_and_json_dump_describes_it(router):
    manager = SemanticManagerAgent(router=router)
    assert manager.copy().router is router
    assert manager.model_dump(mode="json")["router"]["routes"] == list(router.route_names)


def test_adapter_contract(router, make_agents, canned):
    agents = make_agents(router.route_names)
    manager = SemanticManagerAgent(router=router, llm=canned(default="Final Answer: manager"))
    tools = AgentTools(agents=agents).tools()  # what Crew injects into its manager

    def route(query: str) -> str | None:
        answer = manager.execute_task(Task(description=query, expected_output="x"), "", tools)
        decision = manager.decisions[-1]
        assert answer == (f"{decision.target} did it" if decision.target else "manager")
        return decision.target

    AdapterContract.check(route, router)


def test_positional_router_targets_and_fallback_coworker(router, make_agents, canned):
    roles = {"billing": "Billing Specialist", "tech_support": "Tech Support Engineer",
             "sales": "Account Executive"}
    agents = make_agents([*roles.values(), "Human Agent", "Summariser"])  # no route: fine
    manager_llm = canned()
    manager = SemanticManagerAgent(router, targets=roles, fallback="human agent",
                                   llm=manager_llm)
    crew = hierarchical(agents, manager, "refund my last payment",
                        "recommend a good lasagna recipe")
    output = crew.kickoff()
    assert [o.raw for o in output.tasks_output] == [
        "Billing Specialist did it", "Human Agent did it"
    ]
    assert manager_llm.calls == 0  # the fallback coworker took the abstained task
    assert [(d.route, d.target) for d in manager.decisions] == [
        ("billing", "Billing Specialist"), (None, "Human Agent")
    ]
    with pytest.raises(ConfigError, match="router given twice"):
        SemanticManagerAgent(router, router=router)


def test_wrong_targets_or_fallback_fail_before_any_coworker_runs(router, make_agents):
    agents = make_agents(router.route_names)
    crew = hierarchical(agents, SemanticManagerAgent(router, fallback="nobody"), "refund me")
    with pytest.raises(ConfigError, match="'nobody' is not the role"):
        crew.kickoff()
    crew = hierarchical(agents, SemanticManagerAgent(router, targets={"billing": "Accounts"}),
                        "refund me")
    with pytest.raises(ConfigError, match=r"\['billing'\] have no agent"):
        crew.kickoff()
    assert [a.llm.calls for a in agents] == [0, 0, 0]
