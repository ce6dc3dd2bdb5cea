"""Price per call from a table of per-million-token prices, with dated model names resolved."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from stratarouter_core.errors import ConfigError

from .base import Usage

__all__ = ["DEFAULT_PRICES", "CostEstimate", "ModelPrice", "PriceTable"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per one million tokens, for input (prompt) and output (completion) tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        if min(self.input_per_mtok, self.output_per_mtok) < 0:
            raise ConfigError(f"prices must be >= 0, got {self}")

    def cost(self, usage: Usage) -> float:
        """USD for `usage` at this price."""
        return (
            usage.prompt_tokens * self.input_per_mtok
            + usage.completion_tokens * self.output_per_mtok
        ) / 1_000_000


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """What a call cost; `known` is False (and `usd` 0.0) when the model has no price."""

    usd: float
    known: bool
    priced_as: str | None = None


# Standard-tier list prices in USD per 1M tokens (input, output), short-context rates, no batch or
# prompt-caching discounts. Taken from the providers' public pricing pages on 2025-06-15
# (claude-haiku-4-5 and claude-sonnet-4-5 on 2025-10-20). Prices change: override what you use.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    name: ModelPrice(inp, out)
    for name, (inp, out) in {
        # OpenAI
        "gpt-4o": (2.50, 10.00),
        "gpt-4o-mini": (0.15, 0.60),
        "gpt-4.1": (2.00, 8.00),
        "gpt-4.1-mini": (0.40, 1.60),
        "gpt-4.1-nano": (0.10, 0.40),
        "gpt-4-turbo": (10.00, 30.00),
        "gpt-3.5-turbo": (0.50, 1.50),
        "o1": (15.00, 60.00),
        "o1-mini": (1.10, 4.40),
        "o3": (2.00, 8.00),
        "o3-mini": (1.10, 4.40),
        "o4-mini": (1.10, 4.40),
        "text-embedding-3-small": (0.02, 0.0),
        "text-embedding-3-large": (0.13, 0.0),
        # Anthropic
        "claude-3-haiku": (0.25, 1.25),
        "claude-3-opus": (15.00, 75.00),
        "claude-3-5-haiku": (0.80, 4.00),
        "claude-3-5-sonnet": (3.00, 15.00),
        "claude-3-7-sonnet": (3.00, 15.00),
        "claude-sonnet-4": (3.00, 15.00),
        "claude-sonnet-4-5": (3.00, 15.00),
        "claude-opus-4": (15.00, 75.00),
        "claude-opus-4-1": (15.00, 75.00),
        "claude-haiku-4-5": (1.00, 5.00),
        # Google (Gemini API, prompts up to 128k tokens; 200k for 2.5 Pro)
        "gemini-1.5-flash": (0.075, 0.30),
        "gemini-1.5-pro": (1.25, 5.00),
        "gemini-2.0-flash": (0.10, 0.40),
        "gemini-2.0-flash-lite": (0.075, 0.30),
        "gemini-2.5-flash": (0.30, 2.50),
        "gemini-2.5-pro": (1.25, 10.00),
    }.items()
}

# What may follow a priced name in a snapshot name: dates (2024-08-06, 20240620), revisions (001),
# `latest`, `preview`, `exp`, and Bedrock/Vertex version tags (v1:0, after "-" or "@").
_VERSION_TOKEN = re.compile(r"^(\d+|latest|preview|exp|v\d+(:\d+)?)$")


def _is_version_suffix(suffix: str) -> bool:
    if not suffix:
        return True
    if suffix[0] not in "-@":
        return False
    return all(_VERSION_TOKEN.match(token) for token in re.split(r"[-@]", suffix[1:]))


class PriceTable(Mapping[str, ModelPrice]):
    """Per-model prices and the cost of a call.

    `PriceTable()` holds `DEFAULT_PRICES`; `PriceTable({...})` holds exactly the given prices;
    `.with_prices({...})` returns a copy with prices added or replaced. Lookups accept dated or
    tagged snapshot names (`gpt-4o-2024-08-06`, `claude-3-5-haiku-latest`,
    `gemini-1.5-pro-002`) and a provider prefix (`openai/gpt-4o`, `models/gemini-2.0-flash`),
    and `aliases` map your own names (deployments, local tags) to priced ones. A model with no
    price costs 0.0 with `known=False`; it is never an error.

    Example:
        >>> table = PriceTable().with_prices({"my-model": (1.0, 2.0)})
        >>> table.cost("gpt-4o-mini-2024-07-18", Usage.of(1_000_000, 0)).usd
        0.15
        >>> table.cost("my-model", Usage.of(500_000, 500_000)).usd
        1.5
        >>> table.cost("mystery", Usage.of(10, 10)).known
        False
    """

    def __init__(
        self,
        prices: Mapping[str, ModelPrice | tuple[float, float]] | None = None,
        *,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """Hold `prices` (default: DEFAULT_PRICES) and `aliases` (name -> priced name)."""
        source = DEFAULT_PRICES if prices is None else prices
        self._prices = {name: _as_price(name, price) for name, price in source.items()}
        self._aliases = dict(aliases or {})

    def with_prices(
        self,
        prices: Mapping[str, ModelPrice | tuple[float, float]],
        *,
        aliases: Mapping[str, str] | None = None,
    ) -> PriceTable:
        """A copy of this table with `prices` (and `aliases`) added or replaced."""
        return PriceTable({**self._prices, **prices}, aliases={**self._aliases, **(aliases or {})})

    def resolve(self, model: str) -> str | None:
        """The priced name `model` resolves to, or None when it has no price."""
        for name in (model, model.rsplit("/", 1)[-1]):
            name = self._aliases.get(name, name)
            if name in self._prices:
                return name
            matches = [
                priced
                for priced in self._prices
                if name.startswith(priced) and _is_version_suffix(name[len(priced) :])
            ]
            if matches:
                return max(matches, key=len)
        return None

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of `model` (resolved as `resolve` does), or None."""
        name = self.resolve(model)
        return None if name is None else self._prices[name]

    def cost(self, model: str, usage: Usage) -> CostEstimate:
        """What `usage` of `model` costs; unknown models cost 0.0 with `known=False`."""
        name = self.resolve(model)
        if name is None:
            return CostEstimate(0.0, known=False)
        return CostEstimate(self._prices[name].cost(usage), known=True, priced_as=name)

    def __getitem__(self, model: str) -> ModelPrice:
        price = self.lookup(model)
        if price is None:
            raise KeyError(model)
        return price

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models, {len(self._aliases)} aliases)"


def _as_price(name: str, price: ModelPrice | tuple[float, float]) -> ModelPrice:
    if isinstance(price, ModelPrice):
        return price
    try:
        input_price, output_price = price
        return ModelPrice(float(input_price), float(output_price))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"price of {name!r} must be ModelPrice or (input, output) USD per 1M tokens"
        ) from exc
