from __future__ import annotations

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import TextMessage, ToolCallRequestEvent
from autogen_agentchat.teams import SelectorGroupChat
from autogen_core import FunctionCall
from autogen_ext.models.replay import ReplayChatCompletionClient
from stratarouter_core import ConfigError, Route, Router, RouterConfig
from stratarouter_core.testing import AdapterContract, HashingEncoder

from stratarouter_autogen import SpeakerSelector

NAMES = ("billing", "tech_support", "sales")


def participants(names=NAMES):
    return [
        AssistantAgent(name, model_client=ReplayChatCompletionClient([f"{name} here"] * 3),
                       description=f"handles {name} questions")
        for name in names
    ]


def team(selector_model, n_messages=2, names=NAMES, **kwargs):
    return SelectorGroupChat(
        participants(names), model_client=selector_model,
        termination_condition=MaxMessageTermination(n_messages), **kwargs,
    )


def user(text):
    return TextMessage(content=text, source="user")


@pytest.mark.parametrize("variant", ["sync", "async"])
async def test_routed_agent_speaks_without_the_selector_model(router, variant):
    selector = SpeakerSelector(router, NAMES)
    model = ReplayChatCompletionClient(["sales"])
    func = selector if variant == "sync" else selector.async_selector

    result = await team(model, selector_func=func).run(task="refund my last payment")

    assert [m.source for m in result.messages] == ["user", "billing"]
    assert model.create_calls == []
    [decision] = selector.decisions
    assert (decision.route, decision.target) == ("billing", "billing")
    assert decision.confidence > router.config.threshold and decision.latency_us > 0


async def test_abstain_hands_the_turn_to_the_model_selector(router):
    selector = SpeakerSelector(router, NAMES)
    model = ReplayChatCompletionClient(["sales"])

    result = await team(model, selector_func=selector).run(task="recommend a good lasagna recipe")

    assert [m.source for m in result.messages] == ["user", "sales"]
    assert len(model.create_calls) == 1
    assert selector.decisions[-1].route is None and selector.decisions[-1].target is None


async def test_only_user_turns_are_routed_by_default(router):
    selector = SpeakerSelector(router, NAMES)
    model = ReplayChatCompletionClient(["tech_support"])

    result = await team(model, 3, selector_func=selector).run(task="refund my last payment")

    assert [m.source for m in result.messages] == ["user", "billing", "tech_support"]
    assert len(selector.decisions) == 1 and len(model.create_calls) == 1


def test_events_and_empty_messages_are_skipped(router):
    selector = SpeakerSelector(router, NAMES, sources=None)
    event = ToolCallRequestEvent(content=[FunctionCall(id="1", name="f", arguments="{}")],
                                 source="billing")
    assert selector([user("refund my last payment"), event]) == "billing"
    assert selector([user("refund my last payment"), user("   ")]) is None
    assert selector([]) is None
    assert len(selector.decisions) == 1


async def test_candidate_func_shortlists_the_routers_top_k(router):
    shortlist = SpeakerSelector(router, NAMES, top_k=1)
    model = ReplayChatCompletionClient(["sales"])
    result = await team(model, candidate_func=shortlist.candidate_func).run(
        task="the app crashes with error 500 when I upload")
    assert [m.source for m in result.messages] == ["user", "tech_support"]
    assert model.create_calls == []  # one candidate: no model call

    top2 = SpeakerSelector(router, NAMES, top_k=2)
    thread = [user("the app crashes with error 500 when I upload")]
    names = await top2.async_candidate_func(thread)
    assert names[0] == "tech_support" and len(names) == 2
    assert top2.candidate_func([]) == list(NAMES)  # nothing to route: everyone


def test_bad_wiring_is_a_clear_error(router):
    with pytest.raises(ConfigError, match=r"route\(s\) \['sales'\] name no agent"):
        SpeakerSelector(router, ["billing", "tech_support"])
    with pytest.raises(ConfigError, match="unknown route"):
        SpeakerSelector(router, NAMES, targets={"legal": "billing"})
    with pytest.raises(ConfigError, match="fallback 'human' is not a participant"):
        SpeakerSelector(router, NAMES, fallback="human")
    with pytest.raises(ConfigError, match="unique"):
        SpeakerSelector(router, [*NAMES, "sales"])
    with pytest.raises(ConfigError, match="top_k"):
        SpeakerSelector(router, NAMES, top_k=0)

    spaced = Router(encoder=HashingEncoder(), config=RouterConfig(threshold=0.2))
    spaced.add_routes([Route(name="tech support", examples=["the app crashes"])])
    spaced.build_index()
    with pytest.raises(ConfigError, match="identifiers"):
        SpeakerSelector(spaced, ["tech support"])


def test_accepts_agents_and_a_fallback_route_naming_one(router):
    fallback_router = AdapterContract.build_router(fallback_route="human")
    selector = SpeakerSelector(fallback_router, [*participants(), "human"])
    assert selector([user("what is the capital of mongolia")]) == "human"


def test_adapter_contract(router):
    selector = SpeakerSelector(router, participants())
    AdapterContract.check(lambda q: selector([user(q)]), router)


TEAM_WITH_SUMMARISER = (*NAMES, "summariser")


@pytest.mark.parametrize("shortlist", [False, True])
async def test_agent_without_a_route_is_left_to_the_model(router, shortlist):
    """A summariser has no route: it is accepted, and the model selector can still pick it."""
    selector = SpeakerSelector(router, TEAM_WITH_SUMMARISER, top_k=1)
    assert selector.unrouted == ("summariser",)
    model = ReplayChatCompletionClient(["summariser"])
    extra = {"candidate_func": selector.candidate_func} if shortlist else {}

    result = await team(model, 3, names=TEAM_WITH_SUMMARISER, selector_func=selector,
                        **extra).run(task="refund my last payment")

    assert [m.source for m in result.messages] == ["user", "billing", "summariser"]
    assert len(model.create_calls) == 1  # the routed turn needed no model; the follow-up did
    assert [(d.route, d.target) for d in selector.decisions] == [("billing", "billing")]
    offered = selector.candidate_func([user("refund my last payment")])
    assert offered == ["billing", "summariser"]


async def test_fallback_participant_takes_abstained_turns(router):
    selector = SpeakerSelector(router, TEAM_WITH_SUMMARISER, fallback="summariser")
    model = ReplayChatCompletionClient(["sales"])
    result = await team(model, names=TEAM_WITH_SUMMARISER, selector_func=selector).run(
        task="recommend a good lasagna recipe")
    assert [m.source for m in result.messages] == ["user", "summariser"]
    assert model.create_calls == []
    assert selector.decisions[-1].route is None
    assert selector.decisions[-1].target == "summariser"


def test_targets_map_routes_to_agent_names(router):
    selector = SpeakerSelector(router, ["billing_agent", "tech_support", "sales"],
                               targets={"billing": "billing_agent"})
    assert selector([user("refund my last payment")]) == "billing_agent"
    assert selector.candidate_func([user("refund my last payment")])[0] == "billing_agent"
