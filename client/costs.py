"""What a model call costs: token usage and the price list, so budgets can be kept in dollars.

Prices are US dollars per million tokens from Anthropic's public price list (a 5-minute cache
write costs 1.25x input, a cache read 0.1x). A model not listed here needs `[pricing]` in the
run manifest; the scripted researcher is priced as the manifest's model, so its dollar figures
say what the same token counts would cost with Claude.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    """Dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float | None = Field(default=None, ge=0, description="Default 1.25 x input.")
    cache_read: float | None = Field(default=None, ge=0, description="Default 0.1 x input.")


def _listed(input_price: float, output_price: float) -> Price:
    return Price(input=input_price, output=output_price)


PRICES: dict[str, Price] = {
    "claude-opus-4-5": _listed(5, 25),
    "claude-opus-4-6": _listed(5, 25),
    "claude-opus-5": _listed(5, 25),
    "claude-sonnet-4-5": _listed(3, 15),
    "claude-sonnet-4-6": _listed(3, 15),
    "claude-haiku-4-5": _listed(1, 5),
}

CONTEXT_WINDOWS: dict[str, int] = {
    "claude-opus-4-5": 200_000,
    "claude-opus-4-6": 1_000_000,
    "claude-opus-5": 1_000_000,
    "claude-sonnet-4-5": 200_000,
    "claude-sonnet-4-6": 1_000_000,
    "claude-haiku-4-5": 200_000,
}
DEFAULT_CONTEXT_WINDOW = 200_000


def _base_model(model: str) -> str:
    """'claude-haiku-4-5-20251001' -> 'claude-haiku-4-5' (dated snapshots share their alias's price)."""
    head, _, tail = model.rpartition("-")
    return head if tail.isdigit() and len(tail) == 8 else model


def known_price(model: str) -> Price | None:
    return PRICES.get(_base_model(model))


def context_window(model: str) -> int:
    return CONTEXT_WINDOWS.get(_base_model(model), DEFAULT_CONTEXT_WINDOW)


@dataclass
class Usage:
    """Token counts of one or more model calls, as the Messages API reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """From the SDK's usage object or a recorded dict (missing or null counts are 0)."""
        get = usage.get if isinstance(usage, dict) else lambda name, default=None: getattr(usage, name, default)
        return cls(**{field.name: int(get(field.name, 0) or 0) for field in fields(cls)})

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{field.name: getattr(self, field.name) + getattr(other, field.name) for field in fields(self)})

    @property
    def total(self) -> int:
        """Every token billed: what the token budgets count."""
        return self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def context_tokens(self) -> int:
        """How long the prompt of this call was: what decides when to compact."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def cost(usage: Usage, price: Price) -> float:
    """Dollars for `usage` at `price`."""
    cache_write = price.cache_write if price.cache_write is not None else 1.25 * price.input
    cache_read = price.cache_read if price.cache_read is not None else 0.1 * price.input
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * cache_write
        + usage.cache_read_input_tokens * cache_read
    ) / 1_000_000
