"""A support crew in CrewAI: StrataRouter hands each ticket to the right agent, no manager LLM.

Three ways in, one router; `targets=` maps its route names to the agents' roles:
  1. sequential crew: `SemanticDelegator.assign` sets each task's agent before kickoff;
  2. hierarchical crew: `SemanticManagerAgent` delegates through CrewAI's own delegation tool,
     and lets its LLM decide only when the router abstains;
  3. Flow: `SemanticFlowRouter` gives the `@router` step the label of the routed listener.

Runs offline: the agents' LLMs are canned `BaseLLM`s, and the encoder is the bundled
all-MiniLM-L6-v2 `LocalEncoder` when installed, else the dependency-free `HashingEncoder`.

    pip install -e integrations/crewai && python examples/crewai_delegation.py
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# An offline demo: no trace upload prompt, no telemetry (set before crewai is imported).
for _key, _value in {
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
}.items():
    os.environ.setdefault(_key, _value)

from crewai import Agent, BaseLLM, Crew, Process, Task  # noqa: E402
from crewai.agents.agent_builder.base_agent import BaseAgent  # noqa: E402
from crewai.flow.flow import Flow, listen, router, start  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from stratarouter_crewai import (  # noqa: E402
    SemanticDelegator,
    SemanticFlowRouter,
    SemanticManagerAgent,
)

from stratarouter_core import BaseEncoder, Route, Router, RouterConfig  # noqa: E402
from stratarouter_core.testing import AdapterContract, HashingEncoder  # noqa: E402

TICKETS = [
    "I was charged twice this month, please refund the second payment",
    "The app crashes with error 500 whenever I upload a file",
    "Can I get a quote for 50 enterprise seats?",
    "Can you recommend a good lasagna recipe?",
]
ROLES = {"billing": "Billing Specialist", "tech_support": "Tech Support", "sales": "Account Exec"}
KEYWORDS = {
    "billing": ["refund", "charged", "invoice", "payment"],
    "tech_support": ["crash", "crashes", "error", "log in"],
    "sales": ["quote", "price", "seats", "demo"],
}


class CannedLLM(BaseLLM):
    """Offline stand-in for a chat model: always gives the same final answer."""

    answer: str = "done"

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        return f"Final Answer: {self.answer}"

    def get_input_tokens_count(self, messages: Any, *args: Any, **kwargs: Any) -> int:
        return len(str(messages)) // 4  # what BaseLLM estimates too, minus its warning


def make_encoder() -> tuple[BaseEncoder, float]:
    """The local model if installed, else the hashing encoder, with a threshold for it.

    Set STRATAROUTER_EXAMPLE_ENCODER=hashing to force the hashing encoder.
    """
    if os.environ.get("STRATAROUTER_EXAMPLE_ENCODER") == "hashing":
        return HashingEncoder(), 0.2
    try:
        from stratarouter_core.encoders import LocalEncoder

        encoder = LocalEncoder()
        encoder.encode(["probe"])  # weights load lazily: fail here, not mid-demo
        return encoder, 0.3
    except ImportError:  # MissingDependencyError is an ImportError
        return HashingEncoder(), 0.2


def make_router() -> Router:
    """The contract routes (billing, tech_support, sales), on the best encoder installed."""
    encoder, threshold = make_encoder()
    router = Router(encoder=encoder, config=RouterConfig(threshold=threshold))
    router.add_routes([Route(name=name, examples=list(examples), keywords=KEYWORDS[name])
                       for name, examples in AdapterContract.routes.items()])
    router.build_index()
    return router


def make_agents(router: Router) -> list[BaseAgent]:
    return [Agent(role=role, goal=f"Resolve {route} tickets", backstory=f"A {route} specialist",
                  llm=CannedLLM(model="canned", answer=f"the {route} team resolved it"))
            for route, role in ROLES.items()]


def show(mode: str, ticket: str, handler: str, confidence: float) -> None:
    print(f"{mode:<13} {ticket[:58]:<58} -> {handler:<18} confidence {confidence:.2f}")


def sequential(router: Router) -> None:
    agents = make_agents(router)
    generalist = Agent(role="generalist", goal="Answer anything", backstory="Knows a bit",
                       llm=CannedLLM(model="canned", answer="a generalist answered"))
    delegator = SemanticDelegator(router, agents, targets=ROLES, fallback=generalist)
    tasks = delegator.assign([Task(description=t, expected_output="A reply") for t in TICKETS])
    crew = Crew(agents=[*agents, generalist], tasks=tasks, process=Process.sequential)
    for output, decision in zip(crew.kickoff().tasks_output, delegator.decisions, strict=True):
        show("sequential", decision.text, output.agent, decision.confidence)


def hierarchical(router: Router) -> None:
    manager = SemanticManagerAgent(  # the LLM only answers when the router abstains
        router, targets=ROLES, llm=CannedLLM(model="canned", answer="the manager answered"))
    for ticket in TICKETS:
        crew = Crew(agents=make_agents(router), process=Process.hierarchical,
                    tasks=[Task(description=ticket, expected_output="A reply")],
                    manager_agent=manager)
        crew.kickoff()
        decision = manager.decisions[-1]
        show("hierarchical", ticket, decision.target or "(manager LLM)", decision.confidence)


class TicketState(BaseModel):
    ticket: str = ""
    route: str = ""
    confidence: float = 0.0


class TicketFlow(Flow[TicketState]):
    """Routes a ticket to the listener of its team; 'human' when the router abstains."""

    if TYPE_CHECKING:  # set on the instance (not a pydantic field): see flow() below
        semantic: SemanticFlowRouter

    @start()
    def receive(self) -> str:
        return self.state.ticket

    @router(receive)
    def pick(self) -> str:
        return self.semantic.route(self.state.ticket)

    @listen("billing")
    def billing_team(self) -> str:
        return "billing"

    @listen("tech_support")
    def tech_team(self) -> str:
        return "tech_support"

    @listen("sales")
    def sales_team(self) -> str:
        return "sales"

    @listen("human")
    def escalate(self) -> str:
        return "human"


def flow(router: Router) -> None:
    for ticket in TICKETS:
        ticket_flow = TicketFlow(suppress_flow_events=True)
        ticket_flow.semantic = SemanticFlowRouter(router, ticket_flow, fallback="human")
        handler = ticket_flow.kickoff(inputs={"ticket": ticket})
        show("flow", ticket, str(handler), ticket_flow.state.confidence)


def main() -> None:
    router = make_router()
    encoder = getattr(router.encoder, "inner", router.encoder)
    print(f"encoder: {type(encoder).__name__}, threshold {router.config.threshold}")
    sequential(router)
    hierarchical(router)
    flow(router)


if __name__ == "__main__":
    main()
