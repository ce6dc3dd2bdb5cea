"""`ModelRouterRunnable`: pick the chat model for each input with a `ModelRouter`, then run it."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    BaseCallbackManager,
    CallbackManagerForChainRun,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config
from stratarouter_core import ConfigError, ModelChoice, ModelRouter

from ._choosing import ChoosingRunnable
from ._text import RouterInput

__all__ = ["ModelRouterRunnable"]


class ModelRouterRunnable(ChoosingRunnable):
    """Runs each input on the model a fitted `ModelRouter` picks for it.

    The rule (`min_quality`, `cost_weight`, `max_cost`) is the router's (see
    `ModelRouter.route`). When the router picks a model that has no runnable here, the next
    model in the choice's `alternatives` that has one runs instead. The chosen model runs as a
    child run tagged `model:<name>`, with metadata `stratarouter_model`,
    `stratarouter_p_success`, `stratarouter_expected_cost_usd`,
    `stratarouter_nearest_graded_similarity` and `stratarouter_rule` (the rule that decided,
    "min_graded_similarity" for a query unlike the graded data); `stream`/`astream` yield
    the model's own chunks. Recent choices are kept in `choices`.

    Args:
        models: Model name (as the router knows it) -> chat model or any runnable.
        model_router: A fitted `stratarouter_core.ModelRouter`.
        min_quality, cost_weight, max_cost: The decision rule; None for the router's default.
        input_key: Key holding the query when the input is a dict.
        name: Run name shown in traces.
        max_choices: How many recent choices `choices` keeps.

    Raises:
        ConfigError: `models` is empty, or a key of it is not one of the router's models.

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> from stratarouter_core.testing import HashingEncoder
        >>> from stratarouter_core import ModelSpec
        >>> mr = ModelRouter([ModelSpec("gpt-4o", 2.5, 10.0), ModelSpec("gpt-4o-mini", 0.15, 0.6)],
        ...                  encoder=HashingEncoder(dimension=64))
        >>> hard = [f"prove theorem {i} about primes" for i in range(40)]
        >>> easy = [f"say hello to friend {i}" for i in range(40)]
        >>> _ = mr.fit(hard + easy, [{"gpt-4o": 1.0, "gpt-4o-mini": 0.0}] * 40
        ...            + [{"gpt-4o": 1.0, "gpt-4o-mini": 1.0}] * 40)
        >>> chain = ModelRouterRunnable({"gpt-4o": FakeListChatModel(responses=["big"]),
        ...                              "gpt-4o-mini": FakeListChatModel(responses=["small"])},
        ...                             mr, min_quality=0.8)
        >>> chain.invoke("say hello to friend 99").content
        'small'
        >>> chain.choices[-1].model
        'gpt-4o-mini'
    """

    def __init__(
        self,
        models: Mapping[str, Runnable[Any, Any]],
        model_router: ModelRouter,
        *,
        min_quality: float | None = None,
        cost_weight: float | None = None,
        max_cost: float | None = None,
        input_key: str = "input",
        name: str = "stratarouter_model_router",
        max_choices: int = 1000,
    ) -> None:
        """Check the models against the router's and store them."""
        if not models:
            raise ConfigError(f"{type(self).__name__}: give at least one model runnable")
        unknown = [m for m in models if m not in model_router.model_names]
        if unknown:
            raise ConfigError(
                f"{type(self).__name__}: {unknown} are not models of the ModelRouter "
                f"({list(model_router.model_names)})"
            )
        self.models = dict(models)
        self.model_router = model_router
        self.rule: dict[str, float | None] = {
            "min_quality": min_quality,
            "cost_weight": cost_weight,
            "max_cost": max_cost,
        }
        self.input_key = input_key
        self.name = name
        self.choices: deque[ModelChoice] = deque(maxlen=max_choices)

    def _choose(self, text: str) -> ModelChoice:
        return self.model_router.route(text, **self.rule)

    async def _achoose(self, text: str) -> ModelChoice:
        # the encoder's own aencode: a worker thread for a local model, an API encoder's client
        return await self.model_router.aroute(text, **self.rule)

    def _pick(self, choice: ModelChoice) -> tuple[str, Runnable[Any, Any]]:
        """The chosen model's runnable, else the most preferred alternative that has one."""
        self.choices.append(choice)
        for name in (choice.model, *(a.model for a in choice.alternatives)):
            if name in self.models:
                return name, self.models[name]
        raise AssertionError("unreachable: __init__ checked models is a non-empty subset")

    @staticmethod
    def _child(
        name: str, choice: ModelChoice, config: RunnableConfig, callbacks: BaseCallbackManager
    ) -> RunnableConfig:
        child = patch_config(config, callbacks=callbacks)  # a fresh dict: safe to extend
        child["tags"] = [*child.get("tags", []), f"model:{name}"]
        child["metadata"] = {
            **child.get("metadata", {}),
            "stratarouter_model": name,
            "stratarouter_p_success": choice.p_success.get(name),
            "stratarouter_expected_cost_usd": choice.expected_costs_usd.get(name),
            "stratarouter_nearest_graded_similarity": choice.nearest_graded_similarity,
            "stratarouter_rule": choice.rule,
        }
        return child

    def _run(
        self,
        input: RouterInput,
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> Any:
        choice = self._choose(self._text(input))
        name, model = self._pick(choice)
        return model.invoke(
            input, self._child(name, choice, config, run_manager.get_child()), **kwargs
        )

    async def _arun(
        self,
        input: RouterInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> Any:
        choice = await self._achoose(self._text(input))
        name, model = self._pick(choice)
        child = self._child(name, choice, config, run_manager.get_child())
        return await model.ainvoke(input, child, **kwargs)

    def _stream(
        self,
        inputs: Iterator[RouterInput],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> Iterator[Any]:
        input = next(inputs)
        choice = self._choose(self._text(input))
        name, model = self._pick(choice)
        yield from model.stream(
            input, self._child(name, choice, config, run_manager.get_child()), **kwargs
        )

    async def _astream(
        self,
        inputs: AsyncIterator[RouterInput],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        input = await anext(inputs)
        choice = await self._achoose(self._text(input))
        name, model = self._pick(choice)
        child = self._child(name, choice, config, run_manager.get_child())
        async for chunk in model.astream(input, child, **kwargs):
            yield chunk

