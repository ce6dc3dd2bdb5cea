from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RouterRunnable, RunnableLambda
from stratarouter_core import InvalidQueryError, RouteResult
from stratarouter_core.testing import AdapterContract

from stratarouter_langchain import StrataRouterRunnable

QUERY = "refund my last payment"


def test_accepts_every_input_shape(router):
    runnable = StrataRouterRunnable(router)
    want = router.route(QUERY)
    prompt = ChatPromptTemplate.from_messages([("system", "be nice"), ("human", "{q}")])
    inputs = [
        QUERY,
        {"input": QUERY},
        HumanMessage(QUERY),
        [SystemMessage("sys"), HumanMessage(QUERY), AIMessage("sure, which payment?")],
        prompt.invoke({"q": QUERY}),
    ]
    for value in inputs:
        got = runnable.invoke(value)
        assert isinstance(got, RouteResult)
        assert (got.route_id, got.confidence) == (want.route_id, want.confidence)


def test_input_key(router):
    assert StrataRouterRunnable(router, input_key="question").invoke(
        {"question": QUERY}).route_id == "billing"
    with pytest.raises(KeyError, match="'input'"):
        StrataRouterRunnable(router).invoke({"question": QUERY})


@pytest.mark.parametrize(("value", "type_name"), [(42, "int"), (None, "NoneType"), (b"x", "bytes")])
def test_other_inputs_raise_type_error_naming_the_type(router, value, type_name):
    with pytest.raises(TypeError, match=type_name):
        StrataRouterRunnable(router).invoke(value)


def test_message_list_without_human_message(router):
    with pytest.raises(InvalidQueryError, match="HumanMessage"):
        StrataRouterRunnable(router).invoke([AIMessage("hello")])


def test_callbacks_see_the_run_and_its_decision(router, recorder):
    result = StrataRouterRunnable(router, name="my_router").invoke(
        QUERY, {"callbacks": [recorder], "tags": ["t1"]})
    assert recorder.names() == ["my_router"]
    assert "t1" in recorder.starts[0]["tags"]
    assert recorder.ends == [result]


async def test_ainvoke_matches_invoke(router, recorder):
    runnable = StrataRouterRunnable(router)
    got = await runnable.ainvoke({"input": QUERY}, {"callbacks": [recorder]})
    assert got.route_id == router.route(QUERY).route_id
    assert recorder.names() == ["stratarouter"]


def test_batch_routes_once_and_traces_each_input(router, recorder, monkeypatch):
    calls = []
    original = router.route_batch
    monkeypatch.setattr(router, "route_batch", lambda qs: calls.append(qs) or original(qs))
    queries = AdapterContract.queries()
    runnable = StrataRouterRunnable(router)
    results = runnable.batch(queries, {"callbacks": [recorder]})
    assert calls == [queries]
    assert [r.route_id for r in results] == [router.route(q).route_id for q in queries]
    assert recorder.names() == ["stratarouter"] * len(queries)
    assert [(d.text, d.target) for d in runnable.decisions] == [
        (q, r.route_id) for q, r in zip(queries, results)
    ]


def test_batch_reports_errors_per_input(router):
    runnable = StrataRouterRunnable(router)
    results = runnable.batch([QUERY, 42, "", QUERY], return_exceptions=True)
    assert isinstance(results[0], RouteResult) and isinstance(results[3], RouteResult)
    assert isinstance(results[1], TypeError)
    assert isinstance(results[2], InvalidQueryError)
    with pytest.raises(TypeError, match="int"):
        runnable.batch([QUERY, 42])


async def test_abatch(router, recorder):
    queries = AdapterContract.queries()
    results = await StrataRouterRunnable(router).abatch(queries, {"callbacks": [recorder]})
    assert [r.route_id for r in results] == [router.route(q).route_id for q in queries]
    assert len(recorder.starts) == len(queries)
    errors = await StrataRouterRunnable(router).abatch([QUERY, 3.5], return_exceptions=True)
    assert isinstance(errors[1], TypeError)


def test_composes_with_router_runnable(router):
    chain = {
        "key": StrataRouterRunnable(router) | RunnableLambda(lambda r: r.route_id or "human"),
        "input": lambda x: x,
    } | RouterRunnable({name: RunnableLambda(lambda x, n=name: n)
                        for name in (*router.route_names, "human")})
    assert chain.invoke(QUERY) == "billing"
    assert chain.invoke("recommend a good lasagna recipe") == "human"


def test_contract(router):
    runnable = StrataRouterRunnable(router)
    AdapterContract.check(lambda q: runnable.invoke(q).route_id, router)
    AdapterContract.check(lambda q: runnable.invoke({"input": HumanMessage(q)}).route_id, router)


async def test_contract_async(router):
    runnable = StrataRouterRunnable(router)
    expected = AdapterContract.expected(router)
    results = await runnable.abatch(list(expected))
    assert [r.route_id for r in results] == list(expected.values())
