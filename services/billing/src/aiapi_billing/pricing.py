"""Token costs for holds and extensions, in integer nano-USD, rounded once and up. Pure: no I/O.

A settled request is priced by ``aiapi_shared.pricing.request_cost`` (tokens and every meter
beyond them); this module's ``cost_nano`` is its token part, which holds are estimated with.

Prices are nano-USD per million tokens. Cache reads and writes are priced as multiples of the
input price (basis points); thinking tokens are already inside ``output_tokens``. The plan's
discount applies to the whole. Every factor stays an integer until the one division at the end,
so the only rounding is a single ceiling to the ledger unit.
"""

from __future__ import annotations

from aiapi_shared.catalogue import CacheMultipliers
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.pricing import BPS, TOKENS_PER_PRICE_UNIT, Price
from aiapi_shared.pricing import ceil_div as _ceil_div

__all__ = ["Price", "cost_nano", "extension_nano", "hold_nano", "rate_tokens"]

_DENOMINATOR = TOKENS_PER_PRICE_UNIT * BPS * BPS


def cost_nano(
    usage: Usage, price: Price, *, discount_bps: int, multipliers: CacheMultipliers
) -> int:
    """What ``usage`` costs at ``price`` with the plan's discount, rounded up to one nano-USD."""
    input_weighted_bps = (
        usage.input_tokens * BPS
        + usage.cache_read_input_tokens * multipliers.cache_read
        + usage.cache_creation_5m_input_tokens * multipliers.cache_write_5m
        + usage.cache_creation_1h_input_tokens * multipliers.cache_write_1h
    )
    list_price = (
        input_weighted_bps * price.input_nano_per_mtok
        + usage.output_tokens * BPS * price.output_nano_per_mtok
    )
    return _ceil_div(list_price * (BPS - discount_bps), _DENOMINATOR)


def hold_nano(
    estimated_input_tokens: int,
    max_tokens: int,
    price: Price,
    *,
    discount_bps: int,
    multipliers: CacheMultipliers,
    input_premium_bps: int = BPS,
    output_premium_bps: int = BPS,
) -> int:
    """The worst case a request may cost: its estimated input plus every token it may generate,
    each times the premium (long context, region, tier, speed) the request asks for."""
    del multipliers  # plain input and output only: no cache multiple applies to a hold
    list_price = (
        estimated_input_tokens * price.input_nano_per_mtok * input_premium_bps
        + max_tokens * price.output_nano_per_mtok * output_premium_bps
    )
    return _ceil_div(list_price * (BPS - discount_bps), _DENOMINATOR)


def extension_nano(
    additional_output_tokens: int, price: Price, *, discount_bps: int, multipliers: CacheMultipliers
) -> int:
    """What a hold grows by when a long stream asks for more output tokens."""
    more = Usage(output_tokens=additional_output_tokens)
    return cost_nano(more, price, discount_bps=discount_bps, multipliers=multipliers)


def rate_tokens(usage: Usage) -> int:
    """The tokens a request spends of its plan's tokens/min: input other than cache reads, output."""
    return (
        usage.input_tokens
        + usage.cache_creation_5m_input_tokens
        + usage.cache_creation_1h_input_tokens
        + usage.output_tokens
    )
