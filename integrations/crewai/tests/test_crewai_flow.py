from __future__ import annotations

import pytest
from crewai.flow.flow import Flow, listen, or_, start
from crewai.flow.flow import router as flow_router
from pydantic import BaseModel
from stratarouter_core import ConfigError, NoRouteError
from stratarouter_core.testing import AdapterContract

from stratarouter_crewai import SemanticFlowRouter


class TicketState(BaseModel):
    query: str = ""
    route: str = ""
    confidence: float = 0.0


class TicketFlow(Flow[TicketState]):
    """Routes a ticket; each handler asks its own canned LLM."""

    def __init__(self, semantic_router, llms, **kwargs):
        super().__init__(**kwargs)
        self.llms = llms
        self.semantic = SemanticFlowRouter(semantic_router, self, fallback="escalate")

    @start()
    def receive(self):
        return self.state.query

    @flow_router(receive)
    def pick(self):
        return self.semantic.route(self.state.query)

    def _answer(self, who):
        return self.llms[who].call([{"role": "user", "content": self.state.query}])

    @listen("billing")
    def handle_billing(self):
        return self._answer("billing")

    @listen("tech_support")
    def handle_tech(self):
        return self._answer("tech_support")

    @listen("sales")
    def handle_sales(self):
        return self._answer("sales")

    @listen("escalate")
    def handle_escalation(self):
        return self._answer("human")


@pytest.fixture
def llms(canned):
    return {who: canned(default=f"{who} answered")
            for who in ("billing", "tech_support", "sales", "human")}


def test_flow_runs_the_routed_listener_and_records_the_decision(router, llms):
    flow = TicketFlow(router, llms)
    assert flow.kickoff(inputs={"query": "update my credit card for the subscription"}) == (
        "billing answered"
    )
    assert flow.state.route == "billing"
    assert flow.state.confidence == pytest.approx(flow.semantic.decisions[-1].confidence)
    assert flow.state.confidence > router.config.threshold
    assert {who: llm.calls for who, llm in llms.items()} == {
        "billing": 1, "tech_support": 0, "sales": 0, "human": 0
    }


def test_abstain_emits_the_fallback_label(router, llms):
    flow = TicketFlow(router, llms)
    assert flow.kickoff(inputs={"query": "what is the capital of mongolia"}) == "human answered"
    assert flow.state.route == "escalate"
    assert flow.state.confidence < router.config.threshold
    assert flow.semantic.decisions[-1].route is None


async def test_async_router_step_with_dict_state_and_relabelled_routes(router):
    class DictFlow(Flow[dict]):
        @start()
        def receive(self):
            return self.state["query"]

        @flow_router(receive)
        async def pick(self):
            return await self.semantic.aroute(self.state["query"])

        @listen(or_("money", "tech_support"))
        def handle(self):
            return f"handled {self.state['route']}"

        @listen("sales")
        def handle_sales(self):
            return "sales"

        @listen("nobody")
        def handle_rest(self):
            return "rest"

    flow = DictFlow()
    flow.semantic = SemanticFlowRouter(
        router, flow, fallback="nobody", targets={"billing": "money"},
        route_key="route", confidence_key="score",
    )
    assert await flow.kickoff_async(inputs={"query": "refund my last payment"}) == "handled money"
    assert flow.state["score"] > 0


def test_unheard_labels_are_a_clear_error(router, llms):
    class Partial(Flow[TicketState]):
        @start()
        def receive(self):
            return 1

        @listen("billing")
        def handle_billing(self):
            return 2

    with pytest.raises(ConfigError, match="silently ends the flow") as info:
        SemanticFlowRouter(router, Partial(), fallback="escalate")
    assert "'sales'" in str(info.value) and "'escalate'" in str(info.value)
    assert "'billing'" not in str(info.value).split("Listened-to")[0]


def test_label_for_unknown_route_and_missing_state_field_are_errors(router, llms):
    flow = TicketFlow(router, llms)
    with pytest.raises(ConfigError, match="unknown route"):
        SemanticFlowRouter(router, flow, fallback="escalate", targets={"legal": "billing"})
    with pytest.raises(ConfigError, match=r"no field\(s\) \['why'\]"):
        SemanticFlowRouter(router, flow, fallback="escalate", confidence_key="why")


def test_adapter_contract(router, llms):
    flow = TicketFlow(router, llms)

    def route(query: str) -> str | None:
        label = flow.semantic.route(query)
        return None if label == "escalate" else label

    AdapterContract.check(route, router)


def test_crewai_refuses_a_listener_named_like_its_label_and_targets_avoid_it(router):
    """CrewAI's own check, at flow creation; mapping the route to another label keeps the name."""
    class SameName(Flow[dict]):
        @start()
        def receive(self):
            return 1

        @listen("billing")
        def billing(self):
            return "billing"

    with pytest.raises(ValueError, match="infinite loop"):
        SameName()

    class Mapped(Flow[dict]):
        @start()
        def receive(self):
            return self.state["query"]

        @flow_router(receive)
        def pick(self):
            return self.semantic.route(self.state["query"])

        @listen("to_billing")
        def billing(self):
            return "billing team"

        @listen("to_tech_support")
        def tech_support(self):
            return "tech team"

        @listen("to_sales")
        def sales(self):
            return "sales team"

        @listen("to_human")
        def human(self):
            return "a human"

    flow = Mapped()
    flow.semantic = SemanticFlowRouter(
        router, flow, targets={r: f"to_{r}" for r in router.route_names}, fallback="to_human"
    )
    assert flow.kickoff(inputs={"query": "refund my last payment"}) == "billing team"
    assert flow.kickoff(inputs={"query": "recommend a good lasagna recipe"}) == "a human"
    assert [(d.route, d.target) for d in flow.semantic.decisions] == [
        ("billing", "to_billing"), (None, "to_human")
    ]


def test_no_fallback_raises_no_route_error(router, llms):
    flow = TicketFlow(router, llms)
    strict = SemanticFlowRouter(router, flow)  # no fallback label: "escalate" need not exist
    assert strict.route("refund my last payment") == "billing"
    with pytest.raises(NoRouteError, match="no fallback"):
        strict.route("what is the capital of mongolia")
    assert strict.decisions[-1].route is None and strict.decisions[-1].target is None
