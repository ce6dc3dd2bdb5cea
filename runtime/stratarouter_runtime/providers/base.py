"""The provider contract: a completion request in, a response (or a stream of text) out."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from stratarouter_core.errors import ConfigError

from ..errors import ProviderTimeoutError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "ChatMessage",
    "CompletionRequest",
    "CompletionResponse",
    "ProviderClient",
    "Role",
    "TextStream",
    "Usage",
    "check_timeout",
    "iterate_with_timeout",
]

Role = Literal["system", "user", "assistant"]
_ROLES = frozenset({"system", "user", "assistant"})
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation.

    Example:
        >>> ChatMessage("user", "hello").role
        'user'
    """

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ConfigError(f"message role must be one of {sorted(_ROLES)}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise ConfigError(
                f"message content must be a string, got {type(self.content).__name__}"
            )


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What to ask a model; provider-neutral.

    Args:
        model: Model name as the provider knows it.
        messages: The conversation, oldest first; at least one message.
        system_prompt: Instructions sent the way the provider expects them.
        temperature: Sampling temperature; None leaves the provider default.
        max_tokens: Upper bound on generated tokens; None leaves the provider default.
        params: Extra provider parameters (`top_p`, `stop`...), sent as they are.

    Example:
        >>> request = CompletionRequest.from_text("gpt-4o-mini", "hi", system_prompt="Be brief.")
        >>> request.messages[-1].content, request.system_prompt
        ('hi', 'Be brief.')
    """

    model: str
    messages: Sequence[ChatMessage]
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a non-blank string, got {self.model!r}")
        messages = tuple(self.messages)
        if not messages or not all(isinstance(m, ChatMessage) for m in messages):
            raise ConfigError("messages must be a non-empty sequence of ChatMessage")
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be in [0, 2], got {self.temperature}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        object.__setattr__(self, "messages", messages)
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @classmethod
    def from_text(
        cls,
        model: str,
        text: str,
        *,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> CompletionRequest:
        """Build a one-turn request whose only message is the user's `text`."""
        return cls(
            model=model,
            messages=(ChatMessage("user", text),),
            system_prompt=system_prompt,
            temperature=temperature,
            max_tokens=max_tokens,
            params=params or {},
        )

    def system_text(self) -> str | None:
        """The system prompt joined with any `system` messages, or None when there is none."""
        parts = [self.system_prompt] if self.system_prompt else []
        parts += [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens consumed by one call.

    Example:
        >>> Usage.of(12, None)
        Usage(prompt_tokens=12, completion_tokens=0, total_tokens=12)
    """

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int | None, completion_tokens: int | None) -> Usage:
        """Build from counts that may be missing (counted as 0); the total is their sum."""
        prompt, completion = prompt_tokens or 0, completion_tokens or 0
        return cls(prompt, completion, prompt + completion)

    def to_dict(self) -> dict[str, int]:
        """The counts as JSON (records, API responses)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class CompletionResponse:
    """A complete answer from a provider.

    Args:
        text: The generated text.
        provider: Name of the client that produced it.
        model: Model that answered, as the provider reported it.
        usage: Token counts; None when the provider did not report them (an OpenAI-compatible
            server that sends no usage in its streams, say), never a guess.
        finish_reason: Why generation stopped, in OpenAI's words whatever the provider:
            `"stop"`, `"length"`, `"tool_calls"`, `"content_filter"`; other values pass through
            lower-cased; None when the provider did not say.
        cost_usd: Price of the call from the client's price table (0.0 when unknown).
        cost_known: False when the model was not in the price table or the usage is unknown.
    """

    text: str
    provider: str
    model: str
    usage: Usage | None
    finish_reason: str | None
    cost_usd: float
    cost_known: bool = True


def check_timeout(timeout: float) -> float:
    """Return `timeout` if it is a positive number of seconds, else raise ConfigError."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


async def _next(iterator: AsyncIterator[str]) -> str:
    return await iterator.__anext__()


async def iterate_with_timeout(
    chunks: AsyncIterator[str], timeout: float, *, provider: str
) -> AsyncGenerator[str, None]:
    """Yield from `chunks`, failing with ProviderTimeoutError when one chunk takes > `timeout` s.

    The bound applies to each wait, the first one included (it covers connecting), so a long
    answer that keeps flowing is never cut, while a stalled one is.
    """
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(_next(chunks), timeout)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError as exc:
                raise ProviderTimeoutError(
                    f"{provider}: no stream data within {timeout:g}s", provider=provider
                ) from exc
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class TextStream(Generic[_R]):
    """Text deltas as they arrive, then (`result`) what the whole stream produced.

    It reads an async generator that yields the text deltas and, last, one result object.
    `result` is set only when that generator finishes without error: a stream that fails or is
    closed early keeps it None, so a partial answer never passes for a complete one. Provider
    clients that know a stream's usage return a `TextStream[CompletionResponse]`.

    Example:
        >>> async def answer():
        ...     yield "Hel"
        ...     yield "lo"
        ...     yield len("Hello")
        >>> async def main():
        ...     stream = TextStream(answer())
        ...     return [chunk async for chunk in stream], stream.result
        >>> asyncio.run(main())
        (['Hel', 'lo'], 5)
    """

    def __init__(self, items: AsyncGenerator[str | _R, None]) -> None:
        """Wrap `items` (nothing runs before the first `__anext__`)."""
        self.result: _R | None = None
        self._items = items

    def __aiter__(self) -> TextStream[_R]:
        return self

    async def __anext__(self) -> str:
        item = await self._items.__anext__()
        while not isinstance(item, str):
            self.result = item
            item = await self._items.__anext__()
        return item

    async def aclose(self) -> None:
        """Stop early; `result` stays None unless the stream had already completed."""
        await self._items.aclose()

    async def __aenter__(self) -> TextStream[_R]:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class ProviderClient(ABC):
    """A model provider behind one interface. Implementations raise only `ProviderError`s.

    Subclasses set `name` and implement `complete` and `stream`; `aclose` releases connections.
    Clients are used as async context managers or closed explicitly.

    Example:
        >>> class Canned(ProviderClient):
        ...     name = "canned"
        ...     async def complete(self, request, *, timeout):
        ...         usage = Usage.of(1, 1)
        ...         return CompletionResponse("ok", self.name, request.model, usage, "stop", 0.0)
        ...     async def stream(self, request, *, timeout):
        ...         yield "ok"
        >>> asyncio.run(Canned().complete(CompletionRequest.from_text("m", "hi"), timeout=1)).text
        'ok'
    """

    name: str

    @abstractmethod
    async def complete(self, request: CompletionRequest, *, timeout: float) -> CompletionResponse:
        """Return the whole answer, or raise a ProviderError; never takes longer than `timeout`."""

    @abstractmethod
    def stream(self, request: CompletionRequest, *, timeout: float) -> AsyncIterator[str]:
        """Yield text deltas as they arrive (an async generator, or a `TextStream`).

        A stream that fails midway raises a ProviderError after the chunks already yielded:
        callers must never treat a partial stream as a result. `timeout` bounds the wait for
        each chunk. Close an abandoned stream (`contextlib.aclosing`) to free its connection.
        A client that learns the usage and finish reason of its streams returns a
        `TextStream[CompletionResponse]`, whose `result` holds them once the stream completed;
        for a plain iterator of text the executor records the usage as unknown.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release network resources; the default has none."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
