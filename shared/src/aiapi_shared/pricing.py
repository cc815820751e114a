"""The cost of a request, in integer nano-USD, rounded once and up. Pure: no I/O.

Billing settles with it and the edge quotes it in the ``aiapi-cost-usd`` header, so both agree
to the nano-USD. Prices are nano-USD per million tokens. Cache reads and writes are multiples of
the input price (basis points); thinking tokens are already inside ``output_tokens``.

Beyond tokens (docs/billing.md, "Meters beyond tokens"): each server-tool request costs its
meter's unit price; the service tier, the inference region and the speed the upstream reports,
and the long-context premium (input over the catalogue's threshold), multiply the token cost by
their meters' basis points (long context: only on a model whose window exceeds the threshold). The plan's discount applies to the whole. Every factor stays an
integer until the one division at the end, so the only rounding is a single ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from aiapi_shared.catalogue import CacheMultipliers, Catalogue, MeterPoint
from aiapi_shared.events.usage_v1 import Usage

BPS = 10_000
TOKENS_PER_PRICE_UNIT = 1_000_000
UNIT_METERS = ("web_search_requests", "web_fetch_requests")
OPTION_METERS = ("service_tier", "inference_geo", "speed")  # + ":" + the reported value
LONG_CONTEXT = "long_context"
# Token cost = weighted tokens (bps) x price x long context (bps) x one factor per option (bps).
_TOKEN_DENOMINATOR: int = TOKENS_PER_PRICE_UNIT * BPS * BPS * BPS ** len(OPTION_METERS)


@dataclass(frozen=True)
class Price:
    """One row of the price table: a model's prices from ``effective_from`` (until the next)."""

    price_id: int
    model: str
    effective_from: datetime
    input_nano_per_mtok: int
    output_nano_per_mtok: int


class UnpricedMeter(LookupError):
    """Usage reports a meter the catalogue has no price for at the request's start."""


@dataclass(frozen=True)
class Cost:
    """A request's price after the plan's discount, and the upstream's list price before it."""

    cost: int
    list_cost: int


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def discounted(list_nano: int, discount_bps: int) -> int:
    """A list price after the plan's discount, rounded up once."""
    return ceil_div(list_nano * (BPS - discount_bps), BPS)


def input_total(usage: Usage) -> int:
    """The input the long-context threshold is measured on: cache reads and writes included."""
    return (
        usage.input_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_5m_input_tokens
        + usage.cache_creation_1h_input_tokens
    )


def _options(usage: Usage) -> tuple[str, str, str]:
    return (usage.service_tier, usage.inference_geo, usage.speed)


def _meter(catalogue: Catalogue, meter: str, moment: datetime) -> MeterPoint:
    point = catalogue.meter_at(meter, moment)
    if point is None:
        raise UnpricedMeter(meter)
    return point


def long_context_applies(usage: Usage, catalogue: Catalogue, context_window: int) -> bool:
    """Input over the threshold, on a model whose context window goes beyond it (1M)."""
    return over_long_context(input_total(usage), catalogue, context_window)


def over_long_context(input_tokens: int, catalogue: Catalogue, context_window: int) -> bool:
    threshold = catalogue.long_context
    return (
        threshold is not None
        and context_window > threshold.threshold_tokens
        and input_tokens > threshold.threshold_tokens
    )


def _factors(
    points: list[MeterPoint | None],
) -> tuple[int, int]:
    """The input and output factors of the multiplier meters, one per slot (each over BPS; an
    empty slot is 1x), so each product is over BPS ** (1 + len(OPTION_METERS))."""
    input_factor = output_factor = 1
    for point in points:
        input_factor *= BPS if point is None else point.input_bps
        output_factor *= BPS if point is None else point.output_bps
    return input_factor, output_factor


def _multipliers(
    usage: Usage, catalogue: Catalogue, moment: datetime, context_window: int
) -> tuple[int, int]:
    """The input and output factors (each over BPS ** (1 + len(OPTION_METERS)))."""
    points: list[MeterPoint | None] = [
        _meter(catalogue, LONG_CONTEXT, moment)
        if long_context_applies(usage, catalogue, context_window)
        else None
    ]
    for option, value in zip(OPTION_METERS, _options(usage), strict=True):
        # Not reported: the standard price.
        points.append(_meter(catalogue, f"{option}:{value}", moment) if value else None)
    return _factors(points)


def premium_bps(
    catalogue: Catalogue,
    moment: datetime,
    *,
    context_window: int,
    input_tokens: int,
    options: Mapping[str, str],
) -> tuple[int, int]:
    """The input and output factors (over BPS, rounded up) that the long-context premium and the
    option meters (``options``: ``service_tier``/``inference_geo``/``speed`` -> value) put on a
    request's token cost, for a hold: a meter without a price counts 1x here (the operator
    allowed it unpriced; the request was refused otherwise), and no factor is below 1x (a hold
    never shrinks)."""
    long_context = over_long_context(input_tokens, catalogue, context_window)
    points = [catalogue.meter_at(LONG_CONTEXT, moment) if long_context else None]
    for option in OPTION_METERS:
        value = options.get(option, "")
        points.append(catalogue.meter_at(f"{option}:{value}", moment) if value else None)
    input_factor, output_factor = _factors(points)
    scale = BPS ** len(OPTION_METERS)
    return max(BPS, ceil_div(input_factor, scale)), max(BPS, ceil_div(output_factor, scale))


def list_cost_units(
    usage: Usage, price: Price, catalogue: Catalogue, moment: datetime, context_window: int
) -> int:
    """The list price before any discount, in nano-USD / ``_TOKEN_DENOMINATOR`` (exact)."""
    multipliers: CacheMultipliers = catalogue.cache_multipliers_bps
    input_weighted_bps = (
        usage.input_tokens * BPS
        + usage.cache_read_input_tokens * multipliers.cache_read
        + usage.cache_creation_5m_input_tokens * multipliers.cache_write_5m
        + usage.cache_creation_1h_input_tokens * multipliers.cache_write_1h
    )
    input_factor, output_factor = _multipliers(usage, catalogue, moment, context_window)
    tokens: int = (
        input_weighted_bps * price.input_nano_per_mtok * input_factor
        + usage.output_tokens * BPS * price.output_nano_per_mtok * output_factor
    )
    counts = (usage.web_search_requests, usage.web_fetch_requests)
    tools: int = sum(
        count * int(_meter(catalogue, meter, moment).usd_per_unit)
        for meter, count in zip(UNIT_METERS, counts, strict=True)
        if count
    )
    return tokens + tools * _TOKEN_DENOMINATOR


def request_cost(
    usage: Usage,
    price: Price,
    *,
    catalogue: Catalogue,
    discount_bps: int,
    moment: datetime,
    context_window: int,
) -> Cost:
    """What ``usage`` costs at ``price`` and the meters in force at ``moment``, with the plan's
    discount, rounded up once to one nano-USD; raises UnpricedMeter for a meter without a price.
    ``context_window`` is the model's: the long-context premium applies only beyond a threshold
    the model can exceed."""
    units = list_cost_units(usage, price, catalogue, moment, context_window)
    return Cost(
        cost=ceil_div(units * (BPS - discount_bps), _TOKEN_DENOMINATOR * BPS),
        list_cost=ceil_div(units, _TOKEN_DENOMINATOR),
    )
