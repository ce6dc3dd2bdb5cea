"""A LangGraph support graph: a StrataRouter node sends each ticket to the right agent node.

The router node writes its decision (`route`, `confidence`) into the graph state and goes to
the agent with `Command(goto=...)`; a ticket with two intents fans out to both agents with
`Send` when the runner-up intent's calibrated confidence also reaches the fan-out bar (with
the real model it may not: the ticket then goes to its best intent); an off-topic ticket goes
to the `human` node. Runs offline: fake chat models, and the
bundled all-MiniLM-L6-v2 `LocalEncoder` when installed, else the `HashingEncoder`.

    python examples/langgraph_router.py
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langgraph.graph import START, StateGraph
from stratarouter_langgraph import RouterState, route_edge, router_node

from stratarouter_core import BaseEncoder, Route, Router, RouterConfig
from stratarouter_core.testing import AdapterContract, HashingEncoder

QUERIES = [
    "My card was billed twice this month, can I get my money back?",
    "The mobile app keeps freezing after the update",
    "How much would 200 seats on the business plan cost?",
    "I was charged twice and now the app crashes with an error",
    "Can you recommend a good lasagna recipe?",
]
KEYWORDS = {
    "billing": ["refund", "charged", "billed", "invoice", "payment", "money back"],
    "tech_support": ["crash", "crashes", "freezing", "error", "bug", "log in"],
    "sales": ["price", "cost", "quote", "seats", "plan", "demo"],
}


def make_encoder() -> tuple[BaseEncoder, float]:
    """The real local model if installed (else the hashing encoder), with a threshold for it.

    Set STRATAROUTER_EXAMPLE_ENCODER=hashing to force the hashing encoder.
    """
    if os.environ.get("STRATAROUTER_EXAMPLE_ENCODER") == "hashing":
        return HashingEncoder(), 0.2
    try:
        from stratarouter_core.encoders.local import LocalEncoder

        return LocalEncoder(), 0.3
    except ImportError:  # MissingDependencyError is an ImportError
        return HashingEncoder(), 0.2


def make_router() -> Router:
    encoder, threshold = make_encoder()
    router = Router(encoder=encoder, config=RouterConfig(threshold=threshold))
    router.add_routes([Route(name=name, examples=list(examples), keywords=KEYWORDS[name])
                       for name, examples in AdapterContract.routes.items()])
    router.build_index()
    return router


def agent(name: str) -> Any:
    model = FakeListChatModel(responses=[f"[{name}] on it."])

    def node(state: RouterState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    return node


def build_graph(router: Router) -> Any:
    graph = StateGraph(RouterState)
    # Confidences are calibrated probabilities: fan out only to clearly likely runner-ups.
    router_node(router, fallback="human", fan_out_top_k=2,
                min_confidence_for_fan_out=0.75).add_to(graph, "router")
    for name in (*router.route_names, "human"):
        graph.add_node(name, agent(name))
    graph.add_edge(START, "router")
    return graph.compile()


def main() -> None:
    router = make_router()
    encoder = getattr(router.encoder, "inner", router.encoder)  # unwrap the encoding cache
    print(f"encoder: {type(encoder).__name__}, threshold {router.config.threshold}")
    app = build_graph(router)
    for query in QUERIES:
        decision: dict[str, Any] = {}
        handlers: list[str] = []
        for mode, chunk in app.stream({"messages": [("user", query)]},
                                      stream_mode=["custom", "updates"]):
            if mode == "custom":
                decision = chunk["stratarouter_decision"]
            else:
                handlers += [node for node in chunk if node != "router"]
        print(f"{' + '.join(handlers):26} confidence={decision['confidence']:.2f}  {query!r}")

    # The same router as a conditional edge (no state update; decision on the custom stream).
    graph = StateGraph(RouterState)
    for name in (*router.route_names, "human"):
        graph.add_node(name, agent(name))
    route_edge(router, fallback="human").attach(graph, START)
    edge_app: Any = graph.compile()
    taken = [next(iter(update)) for query in QUERIES
             for update in edge_app.stream({"messages": [("user", query)]}, stream_mode="updates")]
    print(f"as a conditional edge: {taken}")


if __name__ == "__main__":
    main()
