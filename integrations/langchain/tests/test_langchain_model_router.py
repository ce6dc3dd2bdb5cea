"""ModelRouterRunnable with langchain-core's fake chat models: choice, fallthrough, streaming."""

from __future__ import annotations

import doctest

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from stratarouter_core import ConfigError, ModelRouter, ModelSpec
from stratarouter_core.testing import HashingEncoder

from stratarouter_langchain import ModelRouterRunnable, model_router

HARD = [f"prove theorem {i} about primes" for i in range(40)]
EASY = [f"say hello to friend {i}" for i in range(40)]


@pytest.fixture(scope="module")
def mr() -> ModelRouter:
    router = ModelRouter(
        [ModelSpec("gpt-4o", 2.5, 10.0), ModelSpec("gpt-4o-mini", 0.15, 0.6)],
        encoder=HashingEncoder(dimension=64),
    )
    scores = [{"gpt-4o": 1.0, "gpt-4o-mini": 0.0}] * 40 + [{"gpt-4o": 1.0, "gpt-4o-mini": 1.0}] * 40
    router.fit(HARD + EASY, scores)
    return router


def _llm(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=text)] * 10))


def _chain(mr, **rule) -> ModelRouterRunnable:
    return ModelRouterRunnable(
        {"gpt-4o": _llm("big model answer"), "gpt-4o-mini": _llm("small model answer")}, mr, **rule
    )


def test_invoke_runs_the_chosen_model(mr) -> None:
    chain = _chain(mr, min_quality=0.8)
    assert chain.invoke("say hello to friend 99").content == "small model answer"
    assert chain.invoke("prove theorem 99 about primes").content == "big model answer"
    assert chain.invoke([HumanMessage("say hello to friend 7")]).content == "small model answer"
    assert [c.model for c in chain.choices] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]


def test_stream_passes_the_models_chunks_through(mr) -> None:
    chunks = list(_chain(mr, min_quality=0.8).stream("prove theorem 5 about primes"))
    assert len(chunks) > 1  # streamed token by token, not one final message
    assert "".join(c.content for c in chunks) == "big model answer"


class AsyncCountingEncoder(HashingEncoder):
    """Counts `aencode` calls: the async paths must encode through it."""

    aencoded = 0

    async def aencode(self, texts):  # type: ignore[no-untyped-def]
        type(self).aencoded += 1
        return await super().aencode(texts)


async def test_async_paths(mr, monkeypatch) -> None:
    chain = _chain(mr, min_quality=0.8)
    monkeypatch.setattr(mr, "encoder", AsyncCountingEncoder(dimension=64))
    assert (await chain.ainvoke("say hello to friend 3")).content == "small model answer"
    chunks = [c async for c in chain.astream("prove theorem 3 about primes")]
    assert len(chunks) > 1 and "".join(c.content for c in chunks) == "big model answer"
    # the encoder's own async path (an API encoder's client), not a thread around encode
    assert AsyncCountingEncoder.aencoded == 2


def test_child_run_carries_the_choice(mr, recorder) -> None:
    _chain(mr, min_quality=0.8).invoke("say hello to friend 1", {"callbacks": [recorder]})
    assert recorder.llm_starts, "the chat model ran as a child of our run"
    child = recorder.llm_starts[-1]
    assert "model:gpt-4o-mini" in child["tags"]
    assert child["metadata"]["stratarouter_model"] == "gpt-4o-mini"
    assert child["metadata"]["stratarouter_p_success"] >= 0.8
    assert child["metadata"]["stratarouter_rule"] == "min_quality"
    assert 0.0 < child["metadata"]["stratarouter_nearest_graded_similarity"] <= 1.0


def test_a_model_without_runnable_falls_through_to_the_next_alternative(mr) -> None:
    chain = ModelRouterRunnable({"gpt-4o": _llm("big model answer")}, mr, min_quality=0.8)
    assert chain.invoke("say hello to friend 2").content == "big model answer"
    assert chain.choices[-1].model == "gpt-4o-mini"  # what the router picked


def test_bad_configuration(mr) -> None:
    with pytest.raises(ConfigError, match="claude"):
        ModelRouterRunnable({"claude": _llm("x")}, mr)
    with pytest.raises(ConfigError):
        ModelRouterRunnable({}, mr)


def test_docstring_example_runs() -> None:
    result = doctest.testmod(model_router, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
