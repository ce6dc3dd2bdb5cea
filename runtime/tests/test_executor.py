"""The executor: retries, breakers and fallbacks, with the real SDK clients and the fake server."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from stratarouter_core.errors import ConfigError

from stratarouter_runtime.errors import (
    CircuitOpenError,
    MalformedResponseError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RetryExhaustedError,
)
from stratarouter_runtime.executor import Attempt, Executor, Target
from stratarouter_runtime.providers import (
    DEFAULT_PRICES,
    CompletionRequest,
    CompletionResponse,
    ProviderClient,
    Usage,
)
from stratarouter_runtime.resilience import BreakerRegistry, RetryPolicy
from stratarouter_runtime.testing import FakeProviderServer, Fault

MODELS = {
    "openai": "gpt-4o-mini",
    "local": "llama3.2",
    "anthropic": "claude-haiku-4-5",
    "google": "gemini-2.0-flash",
}
WIRE = {"openai": "openai", "local": "openai", "anthropic": "anthropic", "google": "gemini"}


def _client(name, server):
    """A real SDK client of provider `name`, pointed at the fake server."""
    from stratarouter_runtime import providers as p

    sdk = {"local": "openai", "google": "google.genai"}.get(name, name)
    pytest.importorskip(sdk, reason=f"the {name} client needs its SDK extra (make test installs it)")
    if name == "openai":
        return p.OpenAIClient(api_key="k", base_url=server.openai_base_url)
    if name == "local":
        return p.LocalClient(server.openai_base_url)
    if name == "anthropic":
        return p.AnthropicClient(api_key="k", base_url=server.base_url)
    return p.GoogleClient(api_key="k", base_url=server.base_url)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Stands in for asyncio.sleep (records, never waits) and collects attempts."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.attempts: list[Attempt] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def on_attempt(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


@pytest.fixture
def server():
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture
async def clients(server):
    """`clients(*names)` builds those SDK clients (building is slow: only what a test uses)."""
    built = {}

    def build(*names):
        for name in names:
            if name not in built:
                built[name] = _client(name, server)
        return {name: built[name] for name in names}

    yield build
    for client in built.values():
        await client.aclose()


@pytest.fixture
def recorder():
    return Recorder()


def _executor(providers, recorder, *, max_retries=3, timeout_s=5.0, **kw):
    return Executor(
        providers,
        retry=RetryPolicy(max_retries=max_retries, base_delay_ms=1, max_delay_ms=5000),
        timeout_s=timeout_s,
        on_attempt=recorder.on_attempt,
        sleep=recorder.sleep,
        **kw,
    )


def _request(text="hi"):
    return CompletionRequest.from_text("placeholder", text)


@pytest.fixture(params=sorted(MODELS))
def name(request):
    return request.param


# -- retries with every SDK --------------------------------------------------------------------


async def test_server_error_is_retried_then_succeeds(clients, server, recorder, name):
    server.add_faults(Fault.server_error(500))
    outcome = await _executor(clients(name), recorder).execute(
        Target(name, MODELS[name]), _request()
    )

    assert outcome.response.text == "echo: hi"
    assert server.count(WIRE[name]) == 2
    assert [a.outcome for a in outcome.attempts] == ["ProviderServerError", "ok"]
    assert [a.number for a in outcome.attempts] == [1, 2]
    assert outcome.attempts[0].status == 500 and outcome.attempts[1].ok
    assert recorder.attempts == list(outcome.attempts)
    assert len(recorder.sleeps) == 1
    assert not outcome.used_fallback


async def test_rate_limit_waits_at_least_retry_after(clients, server, recorder, name):
    server.add_faults(Fault.rate_limit(retry_after=0.75))
    outcome = await _executor(clients(name), recorder).execute(
        Target(name, MODELS[name]), _request()
    )
    assert outcome.response.text == "echo: hi"
    assert recorder.sleeps == [pytest.approx(0.75)]  # jitter alone would be <= 1 ms
    assert [a.outcome for a in outcome.attempts] == ["RateLimitError", "ok"]


async def test_bad_request_is_never_retried(clients, server, recorder, name):
    server.add_faults(Fault.bad_request(), Fault.bad_request())
    with pytest.raises(ProviderRequestError):
        await _executor(clients(name), recorder).execute(Target(name, MODELS[name]), _request())
    assert server.count() == 1
    assert recorder.sleeps == []
    assert [a.outcome for a in recorder.attempts] == ["ProviderRequestError"]


async def test_malformed_response_is_not_retried(clients, server, recorder, name):
    server.add_faults(Fault.malformed())
    with pytest.raises(MalformedResponseError):
        await _executor(clients(name), recorder).execute(Target(name, MODELS[name]), _request())
    assert server.count() == 1


async def test_retries_stop_at_max_retries(clients, server, recorder, name):
    server.add_faults(*(Fault.server_error(503) for _ in range(6)))
    executor = _executor(clients(name), recorder, max_retries=2)
    with pytest.raises(RetryExhaustedError) as caught:
        await executor.execute(Target(name, MODELS[name]), _request())

    assert server.count() == 3  # max_retries + 1
    assert caught.value.attempts == 3
    assert isinstance(caught.value.__cause__, ProviderServerError)
    assert caught.value.status == 503 and not caught.value.retryable
    assert len(recorder.sleeps) == 2
    assert [a.outcome for a in recorder.attempts] == ["ProviderServerError"] * 3


async def test_timeout_is_retried(clients, server, recorder, name):
    server.add_faults(Fault.delay(5.0))
    executor = _executor(clients(name), recorder, timeout_s=0.5)
    outcome = await executor.execute(Target(name, MODELS[name]), _request())
    assert [a.outcome for a in outcome.attempts] == ["ProviderTimeoutError", "ok"]
    assert outcome.attempts[0].duration_ms < 3000  # generous: the bound is 500 ms
    assert server.count() == 2


async def test_target_settings_reach_the_provider(clients, server, recorder):
    target = Target(
        "anthropic", "claude-haiku-4-5", system_prompt="You are terse.", params={"top_k": 5}
    )
    request = CompletionRequest.from_text("ignored", "hi", params={"top_k": 9})
    outcome = await _executor(clients("anthropic"), recorder).execute(target, request)
    body = server.requests[0].body
    assert body["model"] == "claude-haiku-4-5" and body["system"] == "You are terse."
    assert body["top_k"] == 9  # the request's own params win
    assert outcome.target == target and outcome.response.model == "claude-haiku-4-5"


# -- circuit breaker and fallbacks -------------------------------------------------------------


async def test_breaker_opens_rejects_without_calling_and_recovers(clients, server, recorder):
    clock = Clock()
    breakers = BreakerRegistry(failure_threshold=2, window_s=60, reset_timeout_s=30, clock=clock)
    executor = _executor(clients("openai"), recorder, max_retries=0, breakers=breakers)
    target = Target("openai", "gpt-4o-mini")
    server.add_faults(Fault.server_error(), Fault.server_error())

    for _ in range(2):
        with pytest.raises(RetryExhaustedError):
            await executor.execute(target, _request())
    assert breakers.states() == {"openai:gpt-4o-mini": "open"}

    with pytest.raises(CircuitOpenError) as caught:
        await executor.execute(target, _request())
    assert server.count() == 2  # refused without a request
    assert caught.value.retry_after == pytest.approx(30.0)
    assert recorder.attempts[-1].outcome == "CircuitOpenError"
    assert recorder.attempts[-1].duration_ms == 0.0

    clock.now = 31.0
    assert breakers.get("openai", "gpt-4o-mini").state == "half_open"
    outcome = await executor.execute(target, _request())  # the probe
    assert outcome.response.text == "echo: hi" and server.count() == 3
    assert breakers.states() == {"openai:gpt-4o-mini": "closed"}


async def test_failed_probe_reopens_the_breaker(clients, server, recorder):
    clock = Clock()
    breakers = BreakerRegistry(failure_threshold=1, reset_timeout_s=10, clock=clock)
    executor = _executor(clients("google"), recorder, max_retries=3, breakers=breakers)
    target = Target("google", "gemini-2.0-flash")
    server.add_faults(Fault.server_error(), Fault.server_error())
    with pytest.raises(CircuitOpenError):  # first failure opens it; the retry is refused
        await executor.execute(target, _request())
    clock.now = 11.0
    with pytest.raises(CircuitOpenError):  # the probe fails, it reopens, the retry is refused
        await executor.execute(target, _request())
    assert server.count() == 2
    assert breakers.states() == {"google:gemini-2.0-flash": "open"}


async def test_fallback_chain_is_used_when_the_breaker_is_open(clients, server, recorder):
    breakers = BreakerRegistry(failure_threshold=1, reset_timeout_s=60, clock=Clock())
    primary = Target("openai", "gpt-4o")
    fallbacks = {
        primary.key: [Target("google", "gemini-2.0-flash"), Target("anthropic", "claude-haiku-4-5")]
    }
    executor = _executor(
        clients("openai", "google", "anthropic"),
        recorder,
        max_retries=0,
        breakers=breakers,
        fallbacks=fallbacks,
    )
    breakers.get("openai", "gpt-4o").record_failure()
    breakers.get("google", "gemini-2.0-flash").record_failure()

    outcome = await executor.execute(primary, _request())

    assert outcome.target == Target("anthropic", "claude-haiku-4-5")
    assert outcome.response.provider == "anthropic" and outcome.used_fallback
    assert [(a.target_key, a.outcome) for a in outcome.attempts] == [
        ("openai:gpt-4o", "CircuitOpenError"),
        ("google:gemini-2.0-flash", "CircuitOpenError"),
        ("anthropic:claude-haiku-4-5", "ok"),
    ]
    assert [r.api for r in server.requests] == ["anthropic"]
    assert executor.chain(primary)[1:] == tuple(fallbacks[primary.key])


async def test_fallback_after_exhausted_retries_is_configurable(clients, server, recorder):
    primary = Target("openai", "gpt-4o")
    fallbacks = {primary.key: [Target("anthropic", "claude-haiku-4-5")]}
    server.add_faults(*(Fault.server_error(api="openai") for _ in range(4)))

    executor = _executor(
        clients("openai", "anthropic"), recorder, max_retries=1, fallbacks=fallbacks
    )
    outcome = await executor.execute(primary, _request())
    assert outcome.response.provider == "anthropic"
    assert [a.outcome for a in outcome.attempts] == ["ProviderServerError"] * 2 + ["ok"]

    strict = _executor(
        clients("openai", "anthropic"),
        recorder,
        max_retries=1,
        fallbacks=fallbacks,
        fallback_on_exhausted=False,
    )
    with pytest.raises(RetryExhaustedError):
        await strict.execute(primary, _request())
    assert server.count("anthropic") == 1


async def test_no_fallback_on_a_rejected_request(clients, server, recorder):
    primary = Target("openai", "gpt-4o")
    executor = _executor(
        clients("openai", "anthropic"),
        recorder,
        fallbacks={primary.key: [Target("anthropic", "claude-haiku-4-5")]},
    )
    server.add_faults(Fault.bad_request())
    with pytest.raises(ProviderRequestError):
        await executor.execute(primary, _request())
    assert server.count("anthropic") == 0


async def test_last_error_of_the_chain_is_raised(clients, server, recorder):
    breakers = BreakerRegistry(failure_threshold=1, clock=Clock())
    primary = Target("openai", "gpt-4o")
    executor = _executor(
        clients("openai", "local"),
        recorder,
        breakers=breakers,
        fallbacks={primary.key: [Target("local", "llama3.2")]},
    )
    breakers.get("openai", "gpt-4o").record_failure()
    breakers.get("local", "llama3.2").record_failure()
    calls: list[Attempt] = []
    with pytest.raises(CircuitOpenError, match=r"local:llama3\.2"):
        await executor.execute(primary, _request(), on_attempt=calls.append)
    assert [a.target_key for a in calls] == ["openai:gpt-4o", "local:llama3.2"]
    assert server.count() == 0


async def test_unknown_providers_are_config_errors(clients, recorder):
    executor = _executor(clients("openai"), recorder)
    with pytest.raises(ConfigError, match="'mistral'"):
        await executor.execute(Target("mistral", "large"), _request())
    with pytest.raises(ConfigError, match="'mistral'"):
        await _collect(executor.stream(Target("mistral", "large"), _request()))
    with pytest.raises(ConfigError, match="'cohere'"):
        _executor(clients("openai"), recorder, fallbacks={"openai:gpt-4o": [Target("cohere", "x")]})


# -- in-process providers: concurrency, cancellation, misbehaving clients ----------------------


class GatedProvider(ProviderClient):
    """Answers when the test opens its gate; counts calls."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0

    async def complete(self, request, *, timeout):
        self.calls += 1
        await self.gate.wait()
        return CompletionResponse("done", self.name, request.model, Usage.of(1, 1), "stop", 0.0)

    async def stream(self, request, *, timeout):
        yield "done"


async def test_half_open_lets_exactly_one_concurrent_probe_through(recorder):
    clock = Clock()
    breakers = BreakerRegistry(failure_threshold=1, reset_timeout_s=5, clock=clock)
    provider = GatedProvider()
    executor = _executor({"gated": provider}, recorder, breakers=breakers)
    target = Target("gated", "m")
    breakers.get("gated", "m").record_failure()
    clock.now = 6.0

    probe = asyncio.create_task(executor.execute(target, _request()))
    while provider.calls == 0:
        await asyncio.sleep(0)
    others = await asyncio.gather(
        *(executor.execute(target, _request()) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, CircuitOpenError) for result in others)
    provider.gate.set()
    assert (await probe).response.text == "done"
    assert provider.calls == 1
    assert breakers.states() == {"gated:m": "closed"}


async def test_cancelled_probe_frees_the_half_open_slot(recorder):
    clock = Clock()
    breakers = BreakerRegistry(failure_threshold=1, reset_timeout_s=5, clock=clock)
    provider = GatedProvider()
    executor = _executor({"gated": provider}, recorder, breakers=breakers)
    breakers.get("gated", "m").record_failure()
    clock.now = 6.0

    probe = asyncio.create_task(executor.execute(Target("gated", "m"), _request()))
    while provider.calls == 0:
        await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    provider.gate.set()
    outcome = await executor.execute(Target("gated", "m"), _request())
    assert outcome.response.text == "done"


class StubbornProvider(GatedProvider):
    """Ignores its timeout: the executor must bound it anyway."""

    async def complete(self, request, *, timeout):
        self.calls += 1
        await asyncio.sleep(30)
        raise AssertionError("not reached")


async def test_executor_bounds_clients_that_ignore_their_timeout(recorder):
    provider = StubbornProvider()
    executor = _executor({"slow": provider}, recorder, max_retries=1, timeout_s=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RetryExhaustedError) as caught:
        await executor.execute(Target("slow", "m"), _request())
    assert isinstance(caught.value.__cause__, ProviderTimeoutError)
    assert provider.calls == 2
    assert loop.time() - started < 5.0


# -- streaming ---------------------------------------------------------------------------------


async def _collect(stream):
    async with aclosing(stream) as chunks:
        return [chunk async for chunk in chunks]


async def test_stream_retries_before_the_first_chunk(clients, server, recorder, name):
    server.add_faults(Fault.server_error(502))
    executor = _executor(clients(name), recorder)
    stream = executor.stream(Target(name, MODELS[name]), _request("hello world"))
    chunks = await _collect(stream)
    assert "".join(chunks) == "echo: hello world" and len(chunks) > 1
    assert server.count() == 2
    assert [a.outcome for a in recorder.attempts] == ["ProviderServerError", "ok"]
    outcome = stream.result
    assert outcome.attempts == tuple(recorder.attempts)
    assert outcome.target == Target(name, MODELS[name]) and not outcome.used_fallback
    # The final usage comes from the attempt that answered: 2 prompt words, 3 answer words.
    assert outcome.response.text == "echo: hello world"
    assert outcome.response.usage == Usage.of(2, 3)
    assert outcome.response.finish_reason == "stop"
    if name != "local":
        price = DEFAULT_PRICES[MODELS[name]]
        expected = (2 * price.input_per_mtok + 3 * price.output_per_mtok) / 1e6
        assert outcome.response.cost_usd == pytest.approx(expected)


async def test_mid_stream_failure_is_an_error_and_is_not_retried(clients, server, recorder, name):
    server.add_faults(Fault.break_stream(after_chunks=1))
    executor = _executor(clients(name), recorder)
    chunks = []
    with pytest.raises(ProviderError) as caught:
        async with aclosing(executor.stream(Target(name, MODELS[name]), _request("a b c"))) as it:
            async for chunk in it:
                chunks.append(chunk)
    assert chunks == ["echo: "]
    assert it.result is None  # no outcome for a partial stream
    assert not isinstance(caught.value, RetryExhaustedError)
    assert server.count() == 1
    assert len(recorder.attempts) == 1 and not recorder.attempts[0].ok


async def test_stream_falls_back_when_the_breaker_is_open(clients, server, recorder):
    breakers = BreakerRegistry(failure_threshold=1, clock=Clock())
    primary = Target("openai", "gpt-4o")
    executor = _executor(
        clients("openai", "google"),
        recorder,
        breakers=breakers,
        fallbacks={primary.key: [Target("google", "gemini-2.0-flash")]},
    )
    breakers.get("openai", "gpt-4o").record_failure()
    stream = executor.stream(primary, _request("x y"))
    chunks = await _collect(stream)
    assert "".join(chunks) == "echo: x y"
    assert [r.api for r in server.requests] == ["gemini"]
    outcome = stream.result
    assert outcome.target.key == "google:gemini-2.0-flash" and outcome.used_fallback
    assert outcome.response.provider == "google" and outcome.response.usage == Usage.of(2, 3)


class PlainStreamProvider(GatedProvider):
    """Streams plain text, with no word on tokens."""

    name = "plain"

    async def stream(self, request, *, timeout):
        yield "one "
        yield "two"


async def test_stream_of_a_client_that_reports_no_usage_has_it_unknown(recorder):
    executor = _executor({"plain": PlainStreamProvider()}, recorder)
    stream = executor.stream(Target("plain", "m"), _request())
    assert await _collect(stream) == ["one ", "two"]
    response = stream.result.response
    assert (response.text, response.provider, response.model) == ("one two", "plain", "m")
    assert response.usage is None and response.finish_reason is None
    assert (response.cost_usd, response.cost_known) == (0.0, False)


async def test_stream_retries_stop_at_max_retries(clients, server, recorder):
    server.add_faults(*(Fault.server_error() for _ in range(5)))
    executor = _executor(clients("anthropic"), recorder, max_retries=1)
    with pytest.raises(RetryExhaustedError) as caught:
        await _collect(executor.stream(Target("anthropic", "claude-haiku-4-5"), _request()))
    assert caught.value.attempts == 2 and server.count() == 2


async def test_abandoned_stream_releases_the_probe(clients, server, recorder):
    clock = Clock()
    breakers = BreakerRegistry(failure_threshold=1, reset_timeout_s=5, clock=clock)
    executor = _executor(clients("local"), recorder, breakers=breakers)
    target = Target("local", "llama3.2")
    breakers.get("local", "llama3.2").record_failure()
    clock.now = 6.0
    async with aclosing(executor.stream(target, _request("one two three"))) as chunks:
        async for _ in chunks:
            break  # the consumer walks away after the first chunk
    assert breakers.get("local", "llama3.2").allow()


# -- Target ------------------------------------------------------------------------------------


def test_target_key_metadata_binding_and_hashing():
    target = Target.from_metadata(
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "system_prompt": "Be kind.",
            "params": {"a": 1},
        }
    )
    assert target.key == "openai:gpt-4o-mini"
    assert target == Target("openai", "gpt-4o-mini", "Be kind.", {"a": 1})
    assert len({target, Target("openai", "gpt-4o-mini", "Be kind.", {"a": 1})}) == 1

    bound = target.bind(CompletionRequest.from_text("other", "hi", params={"b": 2}))
    assert (bound.model, bound.system_prompt, dict(bound.params)) == (
        "gpt-4o-mini",
        "Be kind.",
        {"a": 1, "b": 2},
    )
    own = target.bind(CompletionRequest.from_text("other", "hi", system_prompt="Mine."))
    assert own.system_prompt == "Mine."

    with pytest.raises(ConfigError, match="provider"):
        Target.from_metadata({"model": "gpt-4o"})
    with pytest.raises(ConfigError):
        Target("openai", " ")
    with pytest.raises(ConfigError):
        Target.from_metadata({"provider": "openai", "model": "m", "params": ["x"]})
