from __future__ import annotations

import logging
import warnings

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langgraph.graph import END, START, MessagesState, StateGraph
from lg_helpers import ROUTES, add_agents, ran
from stratarouter_core import ConfigError, InvalidQueryError
from stratarouter_core.testing import AdapterContract

from stratarouter_langgraph import RouteEdge, route_edge

BILLING_Q = "refund my last payment"
OFF_TOPIC = "recommend a good lasagna recipe"


def build(router, fallback="human", **kwargs):
    graph = add_agents(StateGraph(MessagesState))
    route_edge(router, fallback=fallback, **kwargs).attach(graph, START)
    return graph.compile()


def test_runs_the_routed_node(router):
    app = build(router)
    assert ran(app, BILLING_Q) == [["billing"]]
    assert ran(app, "the app crashes when I open it") == [["tech_support"]]
    final = app.invoke({"messages": [("user", BILLING_Q)]})
    assert final["messages"][-1].content == "billing here"


def test_abstain_goes_to_fallback_node_or_end(router):
    assert ran(build(router), OFF_TOPIC) == [["human"]]
    assert ran(build(router, fallback=END), OFF_TOPIC) == []


def test_targets_and_path_map_are_complete_and_drawn(router):
    edge = route_edge(router, targets={"billing": "b", "tech_support": "t"}, fallback="human")
    assert edge.targets == {"billing": "b", "tech_support": "t", "sales": "sales"}
    assert edge.path_map == {"b": "b", "t": "t", "sales": "sales", "human": "human"}
    app = build(router)
    targets = {e.target for e in app.get_graph().edges if e.source == START}
    assert targets == {*ROUTES, "human"}


def test_unknown_routes_in_targets(router):
    with pytest.raises(ConfigError, match="biling"):
        route_edge(router, targets={"biling": "billing"})


def test_unknown_nodes_fail_at_build_time(router):
    graph = add_agents(StateGraph(MessagesState), names=("billing", "sales"))
    with pytest.raises(ConfigError, match=r"\['human', 'tech_support'\] are not nodes"):
        route_edge(router, fallback="human").attach(graph, START)
    with pytest.raises(ConfigError, match="source 'nope'"):
        route_edge(router, fallback=END,
                   targets={r: "billing" for r in ROUTES}).attach(graph, "nope")


def test_text_from_key_and_callable(router):
    class State(MessagesState):
        question: str

    for text_from in ("question", lambda state: state["question"]):
        graph = add_agents(StateGraph(State))
        route_edge(router, text_from=text_from, fallback="human").attach(graph, START)
        app = graph.compile()
        updates = app.stream({"question": BILLING_Q, "messages": []}, stream_mode="updates")
        assert [list(u) for u in updates] == [["billing"]]


def test_decision_on_custom_stream_and_callbacks(router):
    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.names, self.events = [], []

        def on_chain_start(self, serialized, inputs, **kwargs):
            self.names.append(kwargs.get("name"))

        def on_custom_event(self, name, data, **kwargs):
            self.events.append((name, data))

    recorder = Recorder()
    app = build(router)
    parts = list(app.stream({"messages": [("user", BILLING_Q)]}, {"callbacks": [recorder]},
                            stream_mode=["custom", "updates"]))
    assert parts[0][0] == "custom"
    decision = parts[0][1]["stratarouter_decision"]
    assert decision["route"] == "billing" and decision["goto"] == ["billing"]
    assert decision["confidence"] == pytest.approx(router.route(BILLING_Q).confidence)
    assert decision["latency_us"] > 0
    assert "stratarouter" in recorder.names
    assert [name for name, _ in recorder.events] == ["stratarouter_decision"]


async def test_async_graph(router):
    app = build(router)
    updates = [list(u) async for u in app.astream({"messages": [("user", BILLING_Q)]},
                                                  stream_mode="updates")]
    assert updates == [["billing"]]
    final = await app.ainvoke({"messages": [("user", OFF_TOPIC)]})
    assert final["messages"][-1].content == "human here"


def test_between_nodes(router):
    graph = add_agents(StateGraph(MessagesState))
    graph.add_node("intake", lambda state: {})
    graph.add_edge(START, "intake")
    route_edge(router, fallback="human", text_from=lambda s: s["messages"][0].content).attach(
        graph, "intake")
    assert ran(graph.compile(), BILLING_Q) == [["intake"], ["billing"]]


def test_contract(router):
    app = build(router, fallback=END)

    def route_fn(query):
        nodes = [n for step in ran(app, query) for n in step]
        return nodes[0] if nodes else None

    AdapterContract.check(route_fn, router)


def test_bad_state_is_a_clear_error(router):
    edge = route_edge(router, fallback=END)
    with pytest.raises(KeyError, match="'messages'"):
        edge.invoke({"question": BILLING_Q})
    with pytest.raises(InvalidQueryError, match="empty"):
        edge.invoke({"messages": []})
    with pytest.raises(TypeError, match="int"):
        edge.invoke({"messages": [42]})
    assert edge.invoke({"messages": [{"role": "user", "content": BILLING_Q}]}) == "billing"
    assert edge.invoke({"messages": BILLING_Q}) == "billing"
    assert edge.invoke({"messages": [("user", OFF_TOPIC)]}) == END


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("wiring", ["attach", "plain", "path_map"])
@pytest.mark.parametrize("fallback", [END, "human"])
def test_abstain_writes_no_unknown_channel(router, wiring, fallback):
    """Abstaining must not make LangGraph log "wrote to unknown channel ...", however wired."""
    graph = add_agents(StateGraph(MessagesState))
    edge = route_edge(router, fallback=fallback, targets={"billing": "human"})
    if wiring == "attach":
        edge.attach(graph, START)
    elif wiring == "plain":  # like any path function: no path map at all
        graph.add_conditional_edges(START, edge)
    else:
        graph.add_conditional_edges(START, edge, edge.path_map)
    app = graph.compile()
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            abstained = ran(app, OFF_TOPIC)
            mapped = ran(app, BILLING_Q)
            routed = ran(app, "the app crashes when I open it")
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    assert not [m for m in records.messages if "unknown channel" in m], records.messages
    assert abstained == ([] if fallback == END else [["human"]])
    assert mapped == [["human"]] and routed == [["tech_support"]]
    assert [d.target for d in edge.decisions] == [fallback, "human", "tech_support"]
    assert edge.decisions[0].route is None and edge.decisions[1].route == "billing"


def test_route_edge_is_callable_like_a_path_function(router):
    edge = route_edge(router, fallback="human")
    assert isinstance(edge, RouteEdge) and callable(edge)
    assert edge({"messages": [("user", BILLING_Q)]}) == "billing"
    assert edge({"messages": [("user", OFF_TOPIC)]}, {"tags": ["x"]}) == "human"
    assert [d.target for d in edge.decisions] == ["billing", "human"]
    assert edge.decisions[-1].text == OFF_TOPIC
