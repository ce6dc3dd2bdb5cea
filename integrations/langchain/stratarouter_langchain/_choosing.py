"""The Runnable plumbing shared by the runnables that pick a target, then run it."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.runnables import Runnable, RunnableConfig

from ._text import RouterInput, to_text

__all__ = ["ChoosingRunnable"]


class ChoosingRunnable(Runnable[RouterInput, Any]):
    """invoke / ainvoke / stream / astream for a runnable that picks a target per input.

    Subclasses set `input_key` and implement `_run`, `_arun`, `_stream` and `_astream`: pick
    the target for the input, then hand the input to it under a child run.
    """

    input_key: str

    def _text(self, value: RouterInput) -> str:
        return to_text(value, self.input_key, type(self).__name__)

    def invoke(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """Pick a target for `input` and return its output."""
        return self._call_with_config(self._run, input, config, **kwargs)

    async def ainvoke(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """Async `invoke`: the target's `ainvoke` is awaited."""
        return await self._acall_with_config(self._arun, input, config, **kwargs)

    def stream(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        """Pick a target for `input`, then yield its chunks as it produces them."""
        yield from self._transform_stream_with_config(iter([input]), self._stream, config, **kwargs)

    async def astream(
        self, input: RouterInput, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        """Async `stream`: yields the chosen target's `astream` chunks."""
        async for chunk in self._atransform_stream_with_config(
            _aiter_one(input), self._astream, config, **kwargs
        ):
            yield chunk

    @abstractmethod
    def _run(
        self,
        input: RouterInput,
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> Any: ...

    @abstractmethod
    async def _arun(
        self,
        input: RouterInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> Any: ...

    @abstractmethod
    def _stream(
        self,
        inputs: Iterator[RouterInput],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> Iterator[Any]: ...

    @abstractmethod
    def _astream(
        self,
        inputs: AsyncIterator[RouterInput],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> AsyncIterator[Any]: ...


async def _aiter_one(value: RouterInput) -> AsyncIterator[RouterInput]:
    yield value
