"""One OpenAI policy: `OpenAIEncoder` (core) and `OpenAIClient` + `Executor` (runtime) agree.

Both run against one local fake server speaking the OpenAI wire format; for each fault they must
name the failure alike (same kind, same retryability, same Retry-After) and make the same
number of attempts under the same `RetryPolicy`.
"""

from __future__ import annotations

import pytest
from stratarouter_core.encoders.openai_policy import (
    RETRYABLE_KINDS,
    APIFailureError,
    FailureKind,
    RetryPolicy,
)

import stratarouter_runtime
from stratarouter_runtime import errors
from stratarouter_runtime.executor import Executor, Target
from stratarouter_runtime.providers import CompletionRequest
from stratarouter_runtime.testing import FakeProviderServer, Fault

pytest.importorskip("openai", reason="the OpenAI client needs the [openai] extra (make test installs it)")

from stratarouter_core.encoders import OpenAIEncoder

from stratarouter_runtime.providers import OpenAIClient

MAX_RETRIES = 2
TIMEOUT_S = 0.3
POLICY = RetryPolicy(max_retries=MAX_RETRIES, base_delay_ms=1, max_delay_ms=50)

FAULTS = {
    "429": lambda api: Fault.rate_limit(retry_after=0.02, api=api),
    "500": lambda api: Fault.server_error(500, api=api),
    "503": lambda api: Fault.server_error(503, api=api),
    "timeout": lambda api: Fault.delay(2.0, api=api),
    "400": lambda api: Fault.bad_request(api=api),
}
EXPECTED_KIND = {
    "429": FailureKind.RATE_LIMIT,
    "500": FailureKind.SERVER,
    "503": FailureKind.SERVER,
    "timeout": FailureKind.TIMEOUT,
    "400": FailureKind.REQUEST,
}


@pytest.fixture(scope="module")
def server():
    with FakeProviderServer(embedding_dimensions=8) as fake:
        yield fake


async def _encoder_failure(server: FakeProviderServer, fault: str) -> tuple[APIFailureError, int]:
    server.reset()
    server.add_faults(*(FAULTS[fault]("embeddings") for _ in range(MAX_RETRIES + 1)))
    encoder = OpenAIEncoder("fake-embedding", dimension=8, api_key="k",
                            base_url=server.openai_base_url, timeout=TIMEOUT_S,
                            retry_policy=POLICY)
    try:
        with pytest.raises(APIFailureError) as info:
            await encoder.aencode(["hello"])
    finally:
        await encoder.aclose()
    return info.value, server.count("embeddings")


async def _runtime_failure(
    server: FakeProviderServer, fault: str
) -> tuple[errors.ProviderError, int, int]:
    """(the last provider error, attempts the executor reports, requests the server saw)."""
    server.reset()
    server.add_faults(*(FAULTS[fault]("openai") for _ in range(MAX_RETRIES + 1)))

    async def no_wait(seconds: float) -> None:
        return None

    async with OpenAIClient(api_key="k", base_url=server.openai_base_url) as client:
        executor = Executor({"openai": client}, retry=POLICY, timeout_s=TIMEOUT_S, sleep=no_wait)
        with pytest.raises(errors.ProviderError) as info:
            await executor.execute(Target("openai", "gpt-4o-mini"),
                                   CompletionRequest.from_text("gpt-4o-mini", "hi"))
    error = info.value
    if isinstance(error, errors.RetryExhaustedError):
        assert isinstance(error.__cause__, errors.ProviderError)
        return error.__cause__, error.attempts, server.count("openai")
    return error, 1, server.count("openai")


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_encoder_and_runtime_agree(server, fault):
    encoder_error, encoder_requests = await _encoder_failure(server, fault)
    runtime_error, runtime_attempts, runtime_requests = await _runtime_failure(server, fault)

    kind = EXPECTED_KIND[fault]
    assert encoder_error.kind is kind and type(runtime_error).kind is kind
    assert encoder_error.retryable is runtime_error.retryable is (kind in RETRYABLE_KINDS)
    assert encoder_error.status == runtime_error.status
    assert encoder_error.retry_after == runtime_error.retry_after
    attempts = MAX_RETRIES + 1 if kind in RETRYABLE_KINDS else 1
    assert encoder_error.attempts == runtime_attempts == attempts
    assert encoder_requests == runtime_requests == attempts


def test_the_runtime_uses_the_cores_retry_policy():
    assert stratarouter_runtime.RetryPolicy is RetryPolicy


def test_every_provider_error_class_declares_the_kind_it_stands_for():
    for cls in (errors.RateLimitError, errors.ProviderServerError, errors.ProviderTimeoutError,
                errors.ProviderConnectionError):
        assert cls.kind in RETRYABLE_KINDS and cls.default_retryable
    for cls in (errors.ProviderRequestError, errors.MalformedResponseError):
        assert cls.kind not in RETRYABLE_KINDS and not cls.default_retryable
