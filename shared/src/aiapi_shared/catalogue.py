"""The model catalogue and plans as data (``catalogue.json``), loaded into frozen models.

This is what a fresh installation sells. Billing seeds its price table from it; an operator adds
models, aliases and prices at run time through billing, which publishes the live catalogue to the
edge. Prices are USD per million tokens with effective dates; a request is priced at the prices
in force when it started.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aiapi_shared.money import Money


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelTraits(_Frozen):
    adaptive_thinking: bool = False
    effort: bool = False
    rejects_sampling_params: bool = False


class PricePoint(_Frozen):
    effective_from: datetime
    input_usd_per_mtok: Money
    output_usd_per_mtok: Money


class ModelEntry(_Frozen):
    id: str
    display_name: str
    created_at: datetime
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    traits: ModelTraits = ModelTraits()
    prices: tuple[PricePoint, ...]

    def price_at(self, moment: datetime) -> PricePoint | None:
        """The price in force at ``moment``: the latest one whose start is not after it."""
        in_force = [p for p in self.prices if p.effective_from <= moment]
        return max(in_force, key=lambda p: p.effective_from) if in_force else None


PlanId = Literal["basic", "pro"]


class Plan(_Frozen):
    id: PlanId
    display_name: str
    price_usd: Money
    requests_per_minute: int
    tokens_per_minute: int
    discount_bps: int = Field(ge=0, le=10_000, description="10000 = 100% off")


class CacheMultipliers(_Frozen):
    """Multipliers of the input price, in basis points (10000 = 1x)."""

    cache_read: int
    cache_write_5m: int
    cache_write_1h: int


class Catalogue(_Frozen):
    models: tuple[ModelEntry, ...]
    aliases: dict[str, str]
    plans: tuple[Plan, ...]
    cache_multipliers_bps: CacheMultipliers

    def model(self, model_id: str) -> ModelEntry | None:
        """The sold model a requested id is served as (following one alias), or None."""
        target = self.aliases.get(model_id, model_id)
        return next((m for m in self.models if m.id == target), None)

    def plan(self, plan_id: str) -> Plan:
        for plan in self.plans:
            if plan.id == plan_id:
                return plan
        raise KeyError(plan_id)


@cache
def default_catalogue() -> Catalogue:
    """The catalogue shipped with the package (parsed once)."""
    raw = resources.files("aiapi_shared").joinpath("catalogue.json").read_text("utf-8")
    return Catalogue.model_validate_json(raw)
