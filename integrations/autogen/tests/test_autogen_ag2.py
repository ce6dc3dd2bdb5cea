from __future__ import annotations

import pytest
from autogen import ConversableAgent, GroupChat, GroupChatManager
from stratarouter_core import ConfigError
from stratarouter_core.testing import AdapterContract

from stratarouter_autogen import Ag2SpeakerSelector, ag2_speaker_selection

NAMES = ("billing", "tech_support", "sales")


def agent(name):
    a = ConversableAgent(name, llm_config=False, human_input_mode="NEVER")
    a.register_reply([ConversableAgent, None],
                     lambda recipient, messages, sender, config: (True, f"{recipient.name} here"))
    return a


def chat(select, text, *, extra=(), max_round=4):
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    agents = [user, *(agent(n) for n in (*NAMES, *extra))]
    gc = GroupChat(agents=agents, messages=[], max_round=max_round,
                   speaker_selection_method=select)
    user.initiate_chat(GroupChatManager(groupchat=gc, llm_config=False), message=text,
                       max_turns=1, silent=True)
    return [m["name"] for m in gc.messages], gc


def test_routed_agent_replies_then_the_chat_ends(router):
    select = ag2_speaker_selection(router, fallback=None, sources=["user"])
    speakers, _ = chat(select, "the app crashes with error 500 when I upload")
    assert speakers == ["user", "tech_support"]
    [decision] = select.decisions
    assert (decision.route, decision.target) == ("tech_support", "tech_support")
    assert decision.latency_us > 0


def test_only_listed_sources_are_routed(router):
    select = ag2_speaker_selection(router, fallback="round_robin", sources=["user"])
    speakers, _ = chat(select, "refund my last payment", max_round=3)
    # user -> billing (routed); billing's turn is not routed: round robin picks the next agent
    assert speakers == ["user", "billing", "tech_support"]
    assert len(select.decisions) == 1


def test_abstain_goes_to_the_fallback(router):
    to_human = ag2_speaker_selection(router, fallback="human", sources=["user"])
    speakers, gc = chat(to_human, "recommend a good lasagna recipe", extra=["human"], max_round=2)
    assert speakers == ["user", "human"]
    assert to_human.decisions[-1].route is None

    auto = ag2_speaker_selection(router)  # default "auto": the manager's LLM decides
    gc.messages.append({"content": "what is the capital of mongolia", "name": "user",
                        "role": "user"})
    assert auto(gc.agent_by_name("user"), gc) == "auto"


async def test_selection_is_sync_under_async_chat(router):
    select = ag2_speaker_selection(router, fallback=None)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    gc = GroupChat(agents=[user, *(agent(n) for n in NAMES)], messages=[], max_round=4,
                   speaker_selection_method=select)
    await user.a_initiate_chat(GroupChatManager(groupchat=gc, llm_config=False),
                               message="book a demo and get a quote for an enterprise license",
                               max_turns=1, silent=True)
    assert [m["name"] for m in gc.messages] == ["user", "sales"]


def test_multimodal_and_empty_content(router):
    select = ag2_speaker_selection(router, fallback=None)
    _, gc = chat(ag2_speaker_selection(router, fallback=None), "refund my last payment")
    gc.messages.append({"name": "user", "role": "user", "content": [
        {"type": "text", "text": "refund my last payment"}, {"type": "image_url"}]})
    assert select(gc.agent_by_name("user"), gc).name == "billing"
    gc.messages.append({"name": "user", "role": "user", "content": None})
    assert select(gc.agent_by_name("user"), gc) is None


def test_bad_wiring_is_a_clear_error(router):
    with pytest.raises(ConfigError, match=r"route\(s\) \['sales'\] name no agent"):
        ag2_speaker_selection(router, agents=["user", "billing", "tech_support"])
    with pytest.raises(ConfigError, match="neither a speaker selection method"):
        ag2_speaker_selection(router, agents=["user", *NAMES], fallback="nobody")
    select = ag2_speaker_selection(router, fallback=None)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    gc = GroupChat(agents=[user, agent("billing")], messages=[], max_round=2,
                   speaker_selection_method=select)
    with pytest.raises(ConfigError, match="name no agent"):
        user.initiate_chat(GroupChatManager(groupchat=gc, llm_config=False), message="refund",
                           max_turns=1, silent=True)


def test_adapter_contract(router):
    select = Ag2SpeakerSelector(router, fallback=None)
    _, gc = chat(ag2_speaker_selection(router, fallback=None), "refund my last payment")
    user = gc.agent_by_name("user")

    def route(query):
        gc.messages.append({"content": query, "name": "user", "role": "user"})
        chosen = select(user, gc)
        return chosen.name if chosen is not None else None

    AdapterContract.check(route, router)
