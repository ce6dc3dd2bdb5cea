from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableGenerator, RunnableLambda
from stratarouter_core import (
    ConfigError,
    NoRouteError,
    Route,
    Router,
    RouterConfig,
    StrataRouterError,
)
from stratarouter_core.testing import AdapterContract, HashingEncoder

from stratarouter_langchain import NoBranchError, SemanticRouteDispatch

BILLING_Q = "refund my last payment"
OFF_TOPIC = "recommend a good lasagna recipe"
ANSWER = "Your refund of the duplicate charge is on its way today"


def models(router):
    return {name: FakeListChatModel(responses=[f"{name} answer"]) for name in router.route_names}


def test_runs_the_routed_branch(router):
    dispatch = SemanticRouteDispatch(router, models(router),
                                     fallback=FakeListChatModel(responses=["human answer"]))
    assert dispatch.invoke(BILLING_Q).content == "billing answer"
    assert dispatch.invoke("the app crashes when I open it").content == "tech_support answer"
    assert dispatch.invoke(OFF_TOPIC).content == "human answer"


def test_abstain_without_fallback_is_a_clear_error(router):
    dispatch = SemanticRouteDispatch(router, models(router))
    with pytest.raises(NoRouteError, match=r"abstained.*no fallback") as info:
        dispatch.invoke(OFF_TOPIC)
    assert isinstance(info.value, StrataRouterError) and NoBranchError is NoRouteError
    assert dispatch.decisions[-1].route is None and dispatch.decisions[-1].target is None


def test_decisions_are_logged(router):
    dispatch = SemanticRouteDispatch(router, models(router),
                                     fallback=FakeListChatModel(responses=["human answer"]),
                                     max_decisions=2)
    for query in (BILLING_Q, "the app crashes when I open it", OFF_TOPIC):
        dispatch.invoke(query)
    assert [(d.text, d.route, d.target) for d in dispatch.decisions] == [
        ("the app crashes when I open it", "tech_support", "tech_support"),
        (OFF_TOPIC, None, "fallback"),
    ]
    assert dispatch.decisions[-1].latency_us > 0


def test_unknown_branch_name_is_rejected(router):
    with pytest.raises(ConfigError, match="biling"):
        SemanticRouteDispatch(router, {"biling": FakeListChatModel(responses=["x"])},
                              fallback=FakeListChatModel(responses=["x"]))


def test_route_without_branch_needs_a_default(router):
    with pytest.raises(ConfigError, match=r"\['tech_support', 'sales'\].*fallback"):
        SemanticRouteDispatch(router, {"billing": FakeListChatModel(responses=["x"])})
    partial = SemanticRouteDispatch(router, {"billing": RunnableLambda(lambda x: "billing")},
                                    fallback=RunnableLambda(lambda x: "default"))
    assert partial.invoke("what does the premium plan cost") == "default"


def test_router_fallback_route_may_have_a_branch():
    router = Router(encoder=HashingEncoder(),
                    config=RouterConfig(threshold=0.2, fallback_route="human"))
    router.add_routes([Route(name=n, examples=list(ex))
                       for n, ex in AdapterContract.routes.items()])
    router.build_index()
    branches = {n: RunnableLambda(lambda x, n=n: n) for n in (*router.route_names, "human")}
    dispatch = SemanticRouteDispatch(router, branches)
    assert dispatch.invoke(OFF_TOPIC) == "human"
    with pytest.raises(ConfigError, match="human"):
        SemanticRouteDispatch(router, {n: branches[n] for n in router.route_names})


def test_child_config_carries_route_and_confidence(router):
    seen = {}

    def branch(x, config):
        seen.update(tags=config["tags"], metadata=config["metadata"])
        return "ok"

    dispatch = SemanticRouteDispatch(router,
                                     {n: RunnableLambda(branch) for n in router.route_names})
    dispatch.invoke(BILLING_Q, {"tags": ["outer"], "metadata": {"user": "u1"}})
    result = router.route(BILLING_Q)
    assert "route:billing" in seen["tags"] and "outer" in seen["tags"]
    assert seen["metadata"]["stratarouter_route"] == "billing"
    assert seen["metadata"]["stratarouter_confidence"] == pytest.approx(result.confidence)
    assert seen["metadata"]["user"] == "u1"


def test_callbacks_see_dispatch_decision_and_branch(router, recorder):
    dispatch = SemanticRouteDispatch(router, models(router), name="support")
    dispatch.invoke(BILLING_Q, {"callbacks": [recorder]})
    assert recorder.names()[0] == "support"
    [(name, data)] = recorder.events
    assert name == "stratarouter_decision" and data["route"] == "billing"
    assert data["latency_us"] > 0
    [llm] = recorder.llm_starts
    assert "route:billing" in llm["tags"]
    assert llm["metadata"]["stratarouter_route"] == "billing"


def test_stream_yields_the_branch_tokens(router, recorder):
    streaming = GenericFakeChatModel(messages=iter([AIMessage(ANSWER)]))
    dispatch = SemanticRouteDispatch(router, {"billing": streaming},
                                     fallback=FakeListChatModel(responses=["no"]))
    chunks = list(dispatch.stream(BILLING_Q, {"callbacks": [recorder]}))
    assert len(chunks) > 5
    assert "".join(c.content for c in chunks) == ANSWER
    assert recorder.names()[0] == "stratarouter_dispatch"
    assert recorder.llm_starts[0]["metadata"]["stratarouter_route"] == "billing"


async def test_astream_yields_the_branch_tokens(router, recorder):
    streaming = GenericFakeChatModel(messages=iter([AIMessage(ANSWER)]))
    chain = ChatPromptTemplate.from_template("{input}") | streaming  # dict in, tokens out
    dispatch = SemanticRouteDispatch(router, {"billing": chain},
                                     fallback=FakeListChatModel(responses=["no"]))
    chunks = [c async for c in dispatch.astream({"input": BILLING_Q}, {"callbacks": [recorder]})]
    assert len(chunks) > 5
    assert "".join(c.content for c in chunks) == ANSWER
    assert [e[0] for e in recorder.events] == ["stratarouter_decision"]


async def test_astream_default_on_abstain(router):
    default = GenericFakeChatModel(messages=iter([AIMessage("a human will call you back")]))
    dispatch = SemanticRouteDispatch(router, models(router), fallback=default)
    chunks = [c async for c in dispatch.astream(OFF_TOPIC)]
    assert "".join(c.content for c in chunks) == "a human will call you back"


async def test_ainvoke_and_abatch(router, recorder):
    dispatch = SemanticRouteDispatch(router, models(router),
                                     fallback=FakeListChatModel(responses=["human answer"]))
    answer = await dispatch.ainvoke(BILLING_Q, {"callbacks": [recorder]})
    assert answer.content == "billing answer"
    assert recorder.events[0][1]["route"] == "billing"
    outs = await dispatch.abatch([BILLING_Q, OFF_TOPIC])
    assert [o.content for o in outs] == ["billing answer", "human answer"]


def test_contract(router):
    dispatch = SemanticRouteDispatch(
        router, {n: RunnableLambda(lambda x, n=n: n) for n in router.route_names},
        fallback=RunnableLambda(lambda x: None))
    AdapterContract.check(dispatch.invoke, router)
    expected = AdapterContract.expected(router)
    assert dispatch.batch(list(expected)) == list(expected.values())


def test_stream_is_incremental(router):
    produced = []

    def tokens(inputs):
        for _ in inputs:
            pass
        for i in range(3):
            produced.append(i)
            yield str(i)

    dispatch = SemanticRouteDispatch(
        router, {n: RunnableGenerator(tokens) for n in router.route_names},
        fallback=RunnableLambda(lambda x: "no"))
    stream = dispatch.stream(BILLING_Q)
    assert next(stream) == "0"
    assert produced == [0]  # the branch has not run ahead of the consumer
    assert list(stream) == ["1", "2"]
