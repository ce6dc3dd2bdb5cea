"""`model: "auto"` on a route whose target is a model pool: the server's ModelRouter
(`ServerConfig.model_router_dir`) picks the model, seen by the fake upstream provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from server_helpers import live_server
from stratarouter_core import ModelRouter, ModelSpec, Route, Router, RouterConfig
from stratarouter_core.errors import PersistenceError
from stratarouter_core.testing import HashingEncoder

from stratarouter_runtime import RetryConfig, RuntimeConfig
from stratarouter_runtime.server import ServerConfig, create_app
from stratarouter_runtime.testing import FakeProviderServer

HARD = [f"prove theorem {i} about primes" for i in range(40)]
EASY = [f"say hello to friend {i}" for i in range(40)]
POOL = {"provider": "local", "models": ["big-model", "small-model"], "min_quality": 0.8}


def _router() -> Router:
    router = Router(encoder=HashingEncoder(64), config=RouterConfig(threshold=0.0))
    router.add_routes(
        [
            Route(name="assistant", examples=["prove a theorem", "say hello"], metadata=POOL),
            Route(name="weather", examples=["will it rain today", "is it sunny"]),
        ]
    )
    router.build_index()
    return router


@pytest.fixture(scope="module")
def model_router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mr = ModelRouter(
        [ModelSpec("big-model", 2.5, 10.0), ModelSpec("small-model", 0.15, 0.6)],
        encoder=HashingEncoder(64),
    )
    scores = [{"big-model": 1.0, "small-model": 0.0}] * 40  # only the big model proves theorems
    scores += [{"big-model": 1.0, "small-model": 1.0}] * 40  # both say hello
    mr.fit(HARD + EASY, scores)
    path = tmp_path_factory.mktemp("model-router")
    mr.save(path)
    return path


@pytest.fixture(scope="module")
def client(fake_provider: FakeProviderServer, model_router_dir: Path) -> Iterator[openai.OpenAI]:
    config = ServerConfig(
        provider_url=fake_provider.openai_base_url, model_router_dir=str(model_router_dir)
    )
    runtime = RuntimeConfig(retries=RetryConfig(max_retries=0, delay_ms=1))
    app = create_app(_router(), config=config, runtime_config=runtime)
    with live_server(app) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize(
    ("query", "model"),
    [("prove theorem 7 about primes", "big-model"), ("say hello to friend 3", "small-model")],
)
def test_auto_runs_on_the_model_the_model_router_picks(
    client: openai.OpenAI, fake_provider: FakeProviderServer, query: str, model: str
) -> None:
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": query}]
    )
    assert reply.choices[0].message.content == f"echo: {query}"
    assert fake_provider.requests[-1].body["model"] == model


@pytest.mark.parametrize(
    ("query", "model"),
    [("prove theorem 8 about primes", "big-model"), ("say hello to friend 4", "small-model")],
)
def test_a_conversation_runs_on_the_model_picked_for_its_last_user_message(
    client: openai.OpenAI, fake_provider: FakeProviderServer, query: str, model: str
) -> None:
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": query},
    ]
    reply = client.chat.completions.create(model="auto", messages=conversation)
    assert reply.choices[0].message.content == f"echo: {query}"
    sent = fake_provider.requests[-1].body
    assert sent["model"] == model and len(sent["messages"]) == 4  # the whole conversation


def test_the_pool_models_are_listed_and_callable_by_their_bare_names(
    client: openai.OpenAI, fake_provider: FakeProviderServer
) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"auto", "local:big-model", "local:small-model"} <= ids
    reply = client.chat.completions.create(
        model="small-model", messages=[{"role": "user", "content": "prove theorem 9"}]
    )
    assert reply.choices[0].message.content == "echo: prove theorem 9"
    assert fake_provider.requests[-1].body["model"] == "small-model"  # as asked, on 'local'


def test_a_bad_model_router_dir_is_a_typed_error(tmp_path: Path) -> None:
    config = ServerConfig(model_router_dir=str(tmp_path / "missing"))
    with pytest.raises(PersistenceError):
        create_app(_router(), config=config)


def test_a_model_router_fitted_with_another_encoder_is_refused(model_router_dir: Path) -> None:
    router = Router(encoder=HashingEncoder(32), config=RouterConfig(threshold=0.0))
    router.add_routes([Route(name="assistant", examples=["prove a theorem"], metadata=POOL)])
    router.build_index()
    with pytest.raises(PersistenceError, match="encoder mismatch"):
        create_app(router, config=ServerConfig(model_router_dir=str(model_router_dir)))
