"""What an execution produces: its result, the stream of a streamed one, its persisted payload."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..executor import Attempt, ExecutionOutcome
from ..providers.base import TextStream, Usage

__all__ = ["NO_USAGE", "ExecutionResult", "ExecutionStream", "provider_payload"]

NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What one execution produced.

    Attributes:
        response: The answer text.
        provider: The provider key that answered (``"handler"`` for a handler route).
        model: The model that answered, as the provider reported it (the route for a handler).
        cached: True when the semantic cache served the answer (no provider call).
        latency_ms: Time spent in the bridge, the provider call included.
        cost_usd: What this execution cost (0.0 for cache hits and shared calls, and when the
            cost is not known).
        usage: Tokens this execution consumed (zero for cache hits and shared calls); None
            when the provider did not report them, as some OpenAI-compatible servers do not
            in streams.
        execution_id: Id of the durable execution record.
        route_id: The decision's route.
        attempts: Every provider attempt made for this execution (empty when none was needed).
        finish_reason: Why generation stopped (``"stop"``, ``"length"``...).
        deduplicated: True when another concurrent request's provider call served this one.
        output: The mapping a handler returned, if it returned one.
        cost_known: False when `cost_usd` is not the real cost: the model has no price, or
            the usage is unknown.
    """

    response: str
    provider: str
    model: str
    cached: bool
    latency_ms: float
    cost_usd: float
    usage: Usage | None
    execution_id: str
    route_id: str | None
    attempts: tuple[Attempt, ...] = ()
    finish_reason: str | None = None
    deduplicated: bool = False
    output: Mapping[str, Any] | None = None
    cost_known: bool = True

    @classmethod
    def from_payload(
        cls,
        payload: Mapping[str, Any],
        *,
        execution_id: str,
        route_id: str | None,
        latency_ms: float,
        cached: bool = False,
        deduplicated: bool = False,
        attempts: tuple[Attempt, ...] = (),
    ) -> ExecutionResult:
        """Rebuild a result from the persisted (or cached) payload."""
        spent = not (cached or deduplicated)
        usage = payload.get("usage") if spent else NO_USAGE
        output = payload.get("output")
        return cls(
            response=str(payload["response"]),
            provider=str(payload.get("provider", "")),
            model=str(payload.get("model", "")),
            cached=cached,
            latency_ms=latency_ms,
            cost_usd=float(payload.get("cost_usd") or 0.0) if spent else 0.0,
            usage=(
                None
                if usage is None
                else Usage.of(usage.get("prompt_tokens"), usage.get("completion_tokens"))
            ),
            execution_id=execution_id,
            route_id=route_id,
            attempts=attempts,
            finish_reason=payload.get("finish_reason"),
            deduplicated=deduplicated,
            output=None if output is None else MappingProxyType(dict(output)),
            cost_known=bool(payload.get("cost_known", True)) if spent else True,
        )


class ExecutionStream(TextStream[ExecutionResult]):
    """The chunks of a streamed execution (async iterator); `result` is set once it completes.

    A stream that fails or is closed early is recorded as failed and is never cached.
    """

    def __init__(
        self, produce: Callable[[ExecutionStream], AsyncGenerator[str | ExecutionResult, None]]
    ) -> None:
        """Created by `CoreRuntimeBridge.stream`; `produce` fills in `execution_id`."""
        self.execution_id: str | None = None
        super().__init__(produce(self))

    async def collect(self) -> ExecutionResult:
        """Consume the remaining chunks and return the result."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result


def provider_payload(outcome: ExecutionOutcome) -> dict[str, Any]:
    """The persisted (and cached) form of a provider outcome."""
    response, usage = outcome.response, outcome.response.usage
    return {
        "response": response.text,
        "provider": outcome.target.provider,
        "model": response.model or outcome.target.model,
        "usage": None if usage is None else usage.to_dict(),
        "cost_usd": response.cost_usd,
        "cost_known": response.cost_known,
        "finish_reason": response.finish_reason,
        "target_key": outcome.target.key,
    }
