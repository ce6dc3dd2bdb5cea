"""`AdapterContract` must catch an adapter that routes wrongly, not only one that disagrees."""

from __future__ import annotations

import pytest

from stratarouter_core import Route, Router, RouterConfig
from stratarouter_core.testing import AdapterContract, HashingEncoder


def router_with(routes: dict[str, tuple[str, ...]], threshold: float = 0.2) -> Router:
    router = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=threshold))
    router.add_routes([Route(name=name, examples=list(ex)) for name, ex in routes.items()])
    router.build_index()
    return router


def test_a_faithful_adapter_of_the_contract_router_passes() -> None:
    router = AdapterContract.build_router()
    AdapterContract.check(lambda q: router.route(q).route_id, router)
    assert AdapterContract.labels()["zxqv plorb wemby"] is None


def test_fails_for_an_adapter_wired_to_a_router_with_swapped_routes() -> None:
    """The hole it closes: adapter == router held, but the router routed everything wrong."""
    names = AdapterContract.route_names()
    shifted = dict(zip(names[1:] + names[:1], AdapterContract.routes.values()))  # billing->...
    wrong = router_with(shifted)
    with pytest.raises(AssertionError, match=r"routed to 'tech_support', expected 'billing'"):
        AdapterContract.check(lambda q: wrong.route(q).route_id, wrong)


def test_fails_for_an_adapter_wired_to_another_router_than_the_contracts() -> None:
    contract = AdapterContract.build_router()
    other = router_with({"billing": AdapterContract.routes["sales"],
                         "tech_support": AdapterContract.routes["billing"],
                         "sales": AdapterContract.routes["tech_support"]})
    with pytest.raises(AssertionError, match="adapter=.* router=") as info:
        AdapterContract.check(lambda q: other.route(q).route_id, contract)
    assert "expected" in str(info.value)


def test_fails_when_out_of_scope_queries_are_routed_confidently() -> None:
    catch_all = {**AdapterContract.routes,
                 "sales": (*AdapterContract.routes["sales"], "what is the capital of mongolia",
                           "recommend a good lasagna recipe", "zxqv plorb wemby")}
    wrong = router_with(catch_all)
    with pytest.raises(AssertionError, match=r"out of scope but the router is confident"):
        AdapterContract.check(lambda q: wrong.route(q).route_id, wrong)


def test_fails_for_an_adapter_ignoring_the_router() -> None:
    router = AdapterContract.build_router()
    with pytest.raises(AssertionError, match=r"adapter='billing' router='sales'"):
        AdapterContract.check(lambda q: "billing", router)
    with pytest.raises(AssertionError, match=r"adapter=None router='billing'"):
        AdapterContract.check(lambda q: None, router)


def test_fallback_route_decisions_go_through_the_adapter() -> None:
    router = AdapterContract.build_router(fallback_route="human")
    AdapterContract.check(lambda q: router.route(q).route_id, router)
    assert router.route("zxqv plorb wemby").route_id == "human"
