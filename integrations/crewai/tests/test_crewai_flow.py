from __future__ import annotations

import pytest
from crewai.flow.flow import Flow, listen, or_, start
from crewai.flow.flow import router as flow_router
from pydantic import BaseModel
from stratarouter_core import ConfigError
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
        router, flow, fallback="nobody", labels={"billing": "money"},
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
        SemanticFlowRouter(router, flow, fallback="escalate", labels={"legal": "billing"})
    with pytest.raises(ConfigError, match=r"no field\(s\) \['why'\]"):
        SemanticFlowRouter(router, flow, fallback="escalate", confidence_key="why")


def test_adapter_contract(router, llms):
    flow = TicketFlow(router, llms)

    def route(query: str) -> str | None:
        label = flow.semantic.route(query)
        return None if label == "escalate" else label

    AdapterContract.check(route, router)
