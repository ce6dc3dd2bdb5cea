from __future__ import annotations

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langgraph.graph import END, START, MessagesState, StateGraph
from lg_helpers import ROUTES, add_agents, ran
from stratarouter_core import ConfigError
from stratarouter_core.testing import AdapterContract

from stratarouter_langgraph import RouterState, router_node

BILLING_Q = "refund my last payment"
OFF_TOPIC = "recommend a good lasagna recipe"
TWO_INTENTS = "refund my payment, and the app crashes with error 500"


def build(router, state=RouterState, **kwargs):
    kwargs.setdefault("fallback", "human")
    graph = StateGraph(state)
    router_node(router, **kwargs).add_to(graph, "router")
    add_agents(graph)
    graph.add_edge(START, "router")
    return graph.compile()


def test_decision_lives_in_state_and_routed_node_runs(router):
    app = build(router)
    assert ran(app, BILLING_Q) == [["router"], ["billing"]]
    final = app.invoke({"messages": [("user", BILLING_Q)]})
    assert final["route"] == "billing"
    assert final["confidence"] == pytest.approx(router.route(BILLING_Q).confidence)
    assert final["messages"][-1].content == "billing here"


def test_state_update_and_custom_stream(router):
    parts = list(build(router).stream({"messages": [("user", BILLING_Q)]},
                                      stream_mode=["updates", "custom"]))
    kinds = [kind for kind, _ in parts]
    assert kinds == ["custom", "updates", "updates"]
    decision = parts[0][1]["stratarouter_decision"]
    assert decision["goto"] == ["billing"] and decision["latency_us"] > 0
    assert parts[1][1]["router"] == {"route": "billing", "confidence": decision["confidence"]}


def test_abstain_goes_to_fallback(router):
    app = build(router)
    assert ran(app, OFF_TOPIC) == [["router"], ["human"]]
    assert app.invoke({"messages": [("user", OFF_TOPIC)]})["route"] is None
    assert ran(build(router, fallback=END), OFF_TOPIC) == [["router"]]


def test_destinations_are_drawn(router):
    edges = {(e.source, e.target) for e in build(router).get_graph().edges}
    assert {("router", n) for n in (*ROUTES, "human")} <= edges


def test_state_without_route_keys_is_rejected(router):
    with pytest.raises(ConfigError, match=r"route.*confidence.*RouterState"):
        router_node(router, fallback="human").add_to(StateGraph(MessagesState))


def test_bad_targets(router):
    with pytest.raises(ConfigError, match=r"targets \['biling'\] are not routes"):
        router_node(router, fallback="human", targets={"biling": "billing"})
    graph = StateGraph(RouterState)
    router_node(router, fallback="human").add_to(graph)
    add_agents(graph, names=("billing", "sales", "human"))  # no tech_support node
    graph.add_edge(START, "router")
    with pytest.raises(ValueError, match="unknown node `tech_support`"):
        graph.compile()


def test_fan_out_to_several_nodes(router):
    app = build(router, fan_out_top_k=2, min_confidence_for_fan_out=0.2)
    steps = ran(app, TWO_INTENTS)
    assert steps[0] == ["router"]
    assert sorted(n for step in steps[1:] for n in step) == ["billing", "tech_support"]
    # a single-intent query still goes to one node, and a high bar disables fan-out
    assert ran(app, BILLING_Q) == [["router"], ["billing"]]
    # a bar above the runner-up's confidence keeps the query on its best route
    runner_up = router.route(TWO_INTENTS).candidates[1].confidence
    strict = build(router, fan_out_top_k=2, min_confidence_for_fan_out=runner_up + 1e-6)
    assert ran(strict, TWO_INTENTS) == [["router"], [router.route(TWO_INTENTS).route_id]]


def test_fan_out_arguments_are_checked(router):
    with pytest.raises(ConfigError, match="fan_out_top_k"):
        router_node(router, fallback=END, fan_out_top_k=0)
    with pytest.raises(ConfigError, match="min_confidence_for_fan_out"):
        router_node(router, fallback=END, fan_out_top_k=2, min_confidence_for_fan_out=1.5)


def test_fan_out_sends_each_route_its_own_decision(router):
    seen = []
    graph = StateGraph(RouterState)
    router_node(router, fallback=END, fan_out_top_k=3, min_confidence_for_fan_out=0.2).add_to(graph)
    for name in ROUTES:
        graph.add_node(name, lambda state, n=name: seen.append((n, state["route"])) or {})
    graph.add_edge(START, "router")
    graph.compile().invoke({"messages": [("user", TWO_INTENTS)]})
    assert sorted(seen) == [("billing", "billing"), ("tech_support", "tech_support")]


async def test_async_graph(router):
    app = build(router)
    updates = [list(u) async for u in app.astream({"messages": [("user", BILLING_Q)]},
                                                  stream_mode="updates")]
    assert updates == [["router"], ["billing"]]


def test_contract(router):
    app = build(router, fallback=END)
    AdapterContract.check(lambda q: app.invoke({"messages": [("user", q)]})["route"], router)


class _Events(BaseCallbackHandler):
    def __init__(self):
        self.events = []

    def on_custom_event(self, name, data, *, run_id, **kwargs):
        self.events.append((name, data["route"], data["goto"]))


def test_decision_event_joins_the_node_run(router):
    events = _Events()
    build(router).invoke({"messages": [("user", BILLING_Q)]}, {"callbacks": [events]})
    assert events.events == [("stratarouter_decision", "billing", ["billing"])]


async def test_decision_event_async(router):
    events = _Events()
    await build(router).ainvoke({"messages": [("user", OFF_TOPIC)]}, {"callbacks": [events]})
    assert events.events == [("stratarouter_decision", None, ["human"])]


def test_direct_call_outside_a_graph(router):
    node = router_node(router, fallback="human", targets={"sales": "human"})
    command = node.invoke({"messages": [("user", BILLING_Q)]})
    assert command.goto == "billing" and command.update["route"] == "billing"
    assert node.invoke({"messages": [("user", "what does the premium plan cost")]}).goto == "human"
    assert [(d.route, d.target) for d in node.decisions] == [("billing", "billing"),
                                                              ("sales", "human")]


def test_default_fallback_is_end(router):
    node = router_node(router)
    assert node.invoke({"messages": [("user", OFF_TOPIC)]}).goto == END
    assert node.decisions[-1].target == END and node.decisions[-1].route is None
