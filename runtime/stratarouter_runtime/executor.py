"""Run a completion against a target safely: timeout, retries, circuit breaker, fallback chain."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stratarouter_core.errors import ConfigError

from .errors import (
    CircuitOpenError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    RetryExhaustedError,
)
from .providers.base import (
    CompletionRequest,
    CompletionResponse,
    ProviderClient,
    TextStream,
    check_timeout,
    iterate_with_timeout,
)
from .resilience import BreakerRegistry, CircuitBreaker, RetryPolicy

__all__ = ["Attempt", "AttemptHook", "ExecutionOutcome", "Executor", "Target"]


@dataclass(frozen=True, eq=True)
class Target:
    """Where a request goes: a provider client name and a model, plus per-target settings.

    Args:
        provider: Key of the client in the executor's `providers` mapping.
        model: Model name for that provider.
        system_prompt: Used when the request has no system prompt of its own.
        params: Provider parameters; the request's own `params` win on conflicts.

    Example:
        >>> Target("openai", "gpt-4o-mini").key
        'openai:gpt-4o-mini'
        >>> Target.from_metadata({"provider": "local", "model": "llama3.2"}).key
        'local:llama3.2'
    """

    provider: str
    model: str
    system_prompt: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("provider", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"Target.{name} must be a non-blank string, got {value!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:  # equal targets share these fields, so this agrees with __eq__
        return hash((self.provider, self.model, self.system_prompt))

    @property
    def key(self) -> str:
        """`"provider:model"`: the name of the target in breakers, fallbacks and metrics."""
        return f"{self.provider}:{self.model}"

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Target:
        """Build from route metadata: `provider` and `model`, optional `system_prompt`, `params`."""
        missing = [key for key in ("provider", "model") if not metadata.get(key)]
        if missing:
            raise ConfigError(f"route metadata lacks {' and '.join(missing)}: {dict(metadata)}")
        params = metadata.get("params") or {}
        if not isinstance(params, Mapping):
            raise ConfigError(f"route metadata 'params' must be a mapping, got {params!r}")
        return cls(
            provider=str(metadata["provider"]),
            model=str(metadata["model"]),
            system_prompt=metadata.get("system_prompt"),
            params=params,
        )

    def bind(self, request: CompletionRequest) -> CompletionRequest:
        """`request` aimed at this target: its model, its system prompt if none, merged params."""
        return dataclasses.replace(
            request,
            model=self.model,
            system_prompt=request.system_prompt or self.system_prompt,
            params={**self.params, **request.params},
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one target, successful or not.

    Args:
        target_key: `"provider:model"` of the target tried.
        number: 1 for the first try at this target, 2 for its first retry, and so on.
        started_at: Wall-clock start (Unix seconds).
        duration_ms: How long it took; 0 when a breaker refused it.
        outcome: `"ok"`, or the class name of the error (`"RateLimitError"`...).
        error: The error message, None on success.
        status: HTTP status of the failure, if any.

    Example:
        >>> Attempt("openai:gpt-4o", 2, 1_700_000_000.0, 812.5, "ok").ok
        True
    """

    target_key: str
    number: int
    started_at: float
    duration_ms: float
    outcome: str
    error: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        """Whether this attempt produced the response."""
        return self.outcome == "ok"


AttemptHook = Callable[[Attempt], None]


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    """A successful execution: the response, the target that produced it, and every attempt.

    See the `Executor` example.
    """

    response: CompletionResponse
    attempts: tuple[Attempt, ...]
    target: Target

    @property
    def used_fallback(self) -> bool:
        """Whether the response came from a fallback target rather than the requested one."""
        return bool(self.attempts) and self.attempts[0].target_key != self.target.key


class _Trial:
    """Bookkeeping for one attempt: timing, breaker verdict, Attempt record, hooks."""

    def __init__(self, run: _Run, target: Target, number: int, breaker: CircuitBreaker | None):
        self.run, self.target, self.number, self.breaker = run, target, number, breaker
        self.started_at = time.time()
        self._t0 = time.perf_counter()

    def succeeded(self) -> None:
        if self.breaker is not None:
            self.breaker.record_success()
        self.run.record(self._attempt("ok"))

    def failed(self, error: ProviderError) -> None:
        if self.breaker is not None:
            if error.retryable or isinstance(error, MalformedResponseError):
                self.breaker.record_failure()
            elif error.status is not None:  # it answered, refusing the request: it is up
                self.breaker.record_success()
            else:
                self.breaker.release()
        self.run.record(self._attempt(type(error).__name__, str(error), error.status))

    def abandoned(self) -> None:
        if self.breaker is not None:
            self.breaker.release()

    def _attempt(
        self, outcome: str, error: str | None = None, status: int | None = None
    ) -> Attempt:
        duration_ms = (time.perf_counter() - self._t0) * 1000
        return Attempt(
            self.target.key, self.number, self.started_at, duration_ms, outcome, error, status
        )


class _Run:
    """The attempts of one `execute` / `stream` call."""

    def __init__(self, hooks: Sequence[AttemptHook | None]):
        self.attempts: list[Attempt] = []
        self.streaming = False  # a chunk was yielded: no more retries nor fallbacks
        self._hooks = [hook for hook in hooks if hook is not None]

    def record(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        for hook in self._hooks:
            hook(attempt)


class Executor:
    """Executes completion requests against named provider clients, resiliently.

    Each attempt is bounded by `timeout_s`. Retryable failures (timeouts, dropped connections,
    429, 5xx) are retried per `retry`; a request the provider rejects (4xx) fails at once. With
    `breakers`, each (provider, model) has a circuit breaker: a target whose breaker is open is
    not called. Then, and when retries run out (`fallback_on_exhausted`), the targets listed in
    `fallbacks[target.key]` are tried in order (their own fallbacks are not followed).

    Every attempt, including one refused by an open breaker, is recorded in the outcome and
    passed to `on_attempt` (executor-wide, e.g. metrics) and to the call's own `on_attempt`
    (e.g. the execution record of that request, which also sees the attempts of a failure).

    Args:
        providers: Clients by the name targets use (`{"openai": OpenAIClient(...)}`).
        retry: Retry policy.
        timeout_s: Per-attempt timeout in seconds.
        breakers: Breaker registry; None disables circuit breaking.
        fallbacks: `{"provider:model": [Target, ...]}` tried in order when that target fails.
        on_attempt: Called with every Attempt of every call.
        sleep: Coroutine used to wait between retries (inject a fake in tests).
        fallback_on_exhausted: Also fall back when retries are exhausted, not only when open.

    Hooks run inline and must not raise.

    Example:
        >>> import asyncio
        >>> from stratarouter_runtime.errors import ProviderServerError
        >>> from stratarouter_runtime.providers import CompletionResponse, Usage
        >>> class Flaky(ProviderClient):  # fails once with a 503, then answers
        ...     name, calls = "flaky", 0
        ...     async def complete(self, request, *, timeout):
        ...         self.calls += 1
        ...         if self.calls == 1:
        ...             raise ProviderServerError("503", provider=self.name, status=503)
        ...         return CompletionResponse("hi!", self.name, request.model, Usage.of(1, 1),
        ...                                   "stop", 0.0)
        ...     async def stream(self, request, *, timeout):
        ...         yield "hi!"
        >>> executor = Executor({"flaky": Flaky()}, retry=RetryPolicy(base_delay_ms=1),
        ...                     timeout_s=5, breakers=BreakerRegistry())
        >>> outcome = asyncio.run(
        ...     executor.execute(Target("flaky", "m"), CompletionRequest.from_text("m", "hey")))
        >>> outcome.response.text, [a.outcome for a in outcome.attempts]
        ('hi!', ['ProviderServerError', 'ok'])
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderClient],
        *,
        retry: RetryPolicy,
        timeout_s: float,
        breakers: BreakerRegistry | None = None,
        fallbacks: Mapping[str, Sequence[Target]] | None = None,
        on_attempt: AttemptHook | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        fallback_on_exhausted: bool = True,
    ) -> None:
        """Validate the wiring: every fallback target must name a known provider."""
        self.providers: Mapping[str, ProviderClient] = MappingProxyType(dict(providers))
        self.retry = retry
        self.timeout_s = check_timeout(timeout_s)
        self.breakers = breakers
        self.fallbacks: Mapping[str, tuple[Target, ...]] = MappingProxyType(
            {key: tuple(targets) for key, targets in (fallbacks or {}).items()}
        )
        self.on_attempt = on_attempt
        self.fallback_on_exhausted = fallback_on_exhausted
        self._sleep = sleep
        for targets in self.fallbacks.values():
            for target in targets:
                self._client(target)

    def chain(self, target: Target) -> tuple[Target, ...]:
        """`target` followed by its fallbacks, in the order they are tried."""
        return (target, *self.fallbacks.get(target.key, ()))

    async def execute(
        self,
        target: Target,
        request: CompletionRequest,
        *,
        on_attempt: AttemptHook | None = None,
    ) -> ExecutionOutcome:
        """Get a complete response from `target` or its fallbacks.

        Raises:
            ConfigError: `target.provider` names no client.
            ProviderError: the last failure: `CircuitOpenError`, `RetryExhaustedError` (its
                `__cause__` is the last error), or a final error such as `ProviderRequestError`.
        """
        self._client(target)
        run = _Run((self.on_attempt, on_attempt))
        chain = self.chain(target)
        for index, candidate in enumerate(chain):
            try:
                response = await self._execute_target(candidate, request, run)
            except ProviderError as exc:
                if index == len(chain) - 1 or not self._falls_back(exc):
                    raise
                continue
            return ExecutionOutcome(response, tuple(run.attempts), candidate)
        raise AssertionError("unreachable: a chain has at least one target")

    def stream(
        self,
        target: Target,
        request: CompletionRequest,
        *,
        on_attempt: AttemptHook | None = None,
    ) -> TextStream[ExecutionOutcome]:
        """Stream text deltas from `target` or its fallbacks.

        Retries and fallbacks happen only before the first chunk; a failure after it raises
        (the partial text must not be used as an answer). `timeout_s` bounds each chunk's wait.
        Once the stream has completed, its `result` is the outcome: the whole response, with
        the usage, finish reason and cost the client reported (usage None from a client that
        reports none), every attempt and the target that answered.

        Raises:
            ConfigError: `target.provider` names no client (raised here, before streaming).
        """
        self._client(target)
        return TextStream(self._stream_chain(target, request, _Run((self.on_attempt, on_attempt))))

    async def _stream_chain(
        self, target: Target, request: CompletionRequest, run: _Run
    ) -> AsyncGenerator[str | ExecutionOutcome, None]:
        chain = self.chain(target)
        for index, candidate in enumerate(chain):
            try:
                async with aclosing(self._stream_target(candidate, request, run)) as items:
                    async for item in items:
                        if isinstance(item, str):
                            yield item
                        else:
                            yield ExecutionOutcome(item, tuple(run.attempts), candidate)
            except ProviderError as exc:
                if run.streaming or index == len(chain) - 1 or not self._falls_back(exc):
                    raise
                continue
            return

    # -- one target ----------------------------------------------------------------------------

    async def _execute_target(
        self, target: Target, request: CompletionRequest, run: _Run
    ) -> CompletionResponse:
        client, bound = self._client(target), target.bind(request)
        number = 0
        while True:
            number += 1
            trial = self._begin(target, number, run)
            try:
                response = await self._bounded(
                    client.complete(bound, timeout=self.timeout_s), target.provider
                )
            except ProviderError as exc:
                trial.failed(exc)
                await self._after_failure(exc, target, number)
                continue
            except BaseException:
                trial.abandoned()
                raise
            trial.succeeded()
            return response

    async def _stream_target(
        self, target: Target, request: CompletionRequest, run: _Run
    ) -> AsyncGenerator[str | CompletionResponse, None]:
        """Yield the text deltas of one target (retried before the first), then its response."""
        client, bound = self._client(target), target.bind(request)
        number = 0
        while True:
            number += 1
            trial = self._begin(target, number, run)
            stream = client.stream(bound, timeout=self.timeout_s)
            chunks = iterate_with_timeout(stream, self.timeout_s, provider=target.provider)
            parts: list[str] = []
            try:
                async for chunk in chunks:
                    run.streaming = True
                    parts.append(chunk)
                    yield chunk
            except ProviderError as exc:
                trial.failed(exc)
                if run.streaming:
                    raise
                await self._after_failure(exc, target, number)
                continue
            except BaseException:
                trial.abandoned()
                raise
            finally:
                await chunks.aclose()
            trial.succeeded()
            yield _streamed_response(client, bound, stream, parts)
            return

    def _begin(self, target: Target, number: int, run: _Run) -> _Trial:
        """Start an attempt, or record the refusal and raise CircuitOpenError."""
        breaker = (
            None if self.breakers is None else self.breakers.get(target.provider, target.model)
        )
        if breaker is not None and not breaker.allow():
            wait = breaker.retry_after()
            error = CircuitOpenError(
                f"{target.key}: circuit breaker is {breaker.state}; next probe in {wait:.1f}s",
                provider=target.provider,
                retry_after=wait,
            )
            run.record(
                Attempt(target.key, number, time.time(), 0.0, type(error).__name__, str(error))
            )
            raise error
        return _Trial(run, target, number, breaker)

    async def _after_failure(self, error: ProviderError, target: Target, failures: int) -> None:
        """Wait before the next attempt; raise the error if final, RetryExhaustedError if out."""
        if not error.retryable:
            raise error
        if not self.retry.should_retry(error, failures):
            raise RetryExhaustedError(
                f"{target.key}: gave up after {failures} attempts; last: {error}",
                provider=target.provider,
                attempts=failures,
                status=error.status,
            ) from error
        await self._sleep(self.retry.delay_s(failures, error))

    async def _bounded(
        self, call: Awaitable[CompletionResponse], provider: str
    ) -> CompletionResponse:
        """A hard bound on the call, for clients that would not enforce their timeout."""
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except asyncio.TimeoutError as exc:
            raise ProviderTimeoutError(
                f"{provider}: no answer within {self.timeout_s:g}s", provider=provider
            ) from exc

    def _falls_back(self, error: ProviderError) -> bool:
        if isinstance(error, CircuitOpenError):
            return True
        return self.fallback_on_exhausted and isinstance(error, RetryExhaustedError)

    def _client(self, target: Target) -> ProviderClient:
        try:
            return self.providers[target.provider]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ConfigError(
                f"target {target.key!r} names provider {target.provider!r}, which is not "
                f"configured (known: {known})"
            ) from None


def _streamed_response(
    client: ProviderClient, request: CompletionRequest, stream: object, parts: list[str]
) -> CompletionResponse:
    """The response a completed stream reported, or its text with usage unknown."""
    if isinstance(stream, TextStream) and isinstance(stream.result, CompletionResponse):
        return stream.result
    # A plain iterator of text (a custom client) says nothing about tokens: unknown, not zero.
    return CompletionResponse(
        text="".join(parts),
        provider=client.name,
        model=request.model,
        usage=None,
        finish_reason=None,
        cost_usd=0.0,
        cost_known=False,
    )
