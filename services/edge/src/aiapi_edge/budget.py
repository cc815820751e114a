"""How much of its hold a stream has used, and when to ask for more (pure).

Billing holds the worst case of a request before it goes upstream (the input estimate and the
whole ``max_tokens`` at the plan's price). Cache writes cost more than plain input (1.25x, 2x),
so a long stream can still outgrow its hold; DESIGN.md lets it extend the hold in chunks, and a
refused extension ends the stream at the held budget.

The projection prices the usage reported so far with the output tokens estimated from the
bytes of the content deltas, because the upstream reports output tokens only in its final
``message_delta``: ``(len(data) - 80) / 3`` tokens per ``content_block_delta`` event (80 bytes
is the smallest JSON around a delta's text; 3 bytes a token over-estimates English, about 4
bytes a token, and matches CJK text, 3 UTF-8 bytes a character). A reported count replaces the
estimate when larger. Over-estimating is the safe side: an extension is asked for a little early.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiapi_shared.catalogue import CacheMultipliers, PricePoint

from aiapi_edge.metering import meters_from_anthropic

_BPS = 10_000
_PER_MTOK = 1_000_000
DELTA_OVERHEAD_BYTES = 80
BYTES_PER_TOKEN = 3
MIN_CHUNK_TOKENS = 1024


def _tokens(meters: Mapping[str, int | str], name: str) -> int:
    value = meters.get(name, 0)
    return value if isinstance(value, int) else 0


def cost_of(
    meters: Mapping[str, int | str],
    price: PricePoint,
    discount_bps: int,
    multipliers: CacheMultipliers,
) -> int:
    """What ``meters`` cost in nano-USD at ``price`` less the plan's discount, rounded up once:
    the rule billing prices by (its ``pricing.cost_nano``)."""
    p_in, p_out, m = price.input_usd_per_mtok, price.output_usd_per_mtok, multipliers
    list_price_bps = (
        _tokens(meters, "input_tokens") * p_in * _BPS
        + _tokens(meters, "cache_read_input_tokens") * p_in * m.cache_read
        + _tokens(meters, "cache_creation_5m_input_tokens") * p_in * m.cache_write_5m
        + _tokens(meters, "cache_creation_1h_input_tokens") * p_in * m.cache_write_1h
        + _tokens(meters, "output_tokens") * p_out * _BPS
    )
    numerator = list_price_bps * (_BPS - discount_bps)
    return -(-numerator // (_BPS * _BPS * _PER_MTOK))


def worst_case(
    price: PricePoint,
    discount_bps: int,
    multipliers: CacheMultipliers,
    *,
    input_tokens: int,
    max_tokens: int,
) -> int:
    """The hold billing would take for a request: its estimated input and all of ``max_tokens``
    (billing's ``pricing.hold_nano``)."""
    meters = {"input_tokens": input_tokens, "output_tokens": max_tokens}
    return cost_of(meters, price, discount_bps, multipliers)


class HoldBudget:
    __slots__ = ("_delta_bytes", "_discount_bps", "_multipliers", "_price", "chunk_tokens", "held")

    def __init__(
        self,
        *,
        held: int,
        price: PricePoint,
        discount_bps: int,
        multipliers: CacheMultipliers,
        max_tokens: int,
    ) -> None:
        self.held = held
        self._price = price
        self._discount_bps = discount_bps
        self._multipliers = multipliers
        self._delta_bytes = 0
        # What one extension asks for: a quarter of max_tokens, at least 1,024 output tokens.
        self.chunk_tokens = max(MIN_CHUNK_TOKENS, max_tokens // 4)

    def delta(self, data_length: int) -> None:
        """One ``content_block_delta`` event of ``data_length`` bytes went by."""
        self._delta_bytes += max(0, data_length - DELTA_OVERHEAD_BYTES)

    def output_tokens(self, reported: int) -> int:
        estimated = -(-self._delta_bytes // BYTES_PER_TOKEN)
        return max(reported, estimated)

    def projected(self, usage: dict[str, Any]) -> int:
        """The cost so far in nano-USD (rounded up, as billing rounds) of the upstream's
        reported ``usage`` with the estimated output tokens."""
        meters = meters_from_anthropic(usage)
        reported = meters["output_tokens"]
        meters["output_tokens"] = self.output_tokens(reported if isinstance(reported, int) else 0)
        return self.cost(meters)

    def cost(self, meters: Mapping[str, int | str]) -> int:
        return cost_of(meters, self._price, self._discount_bps, self._multipliers)

    def chunk_cost(self, tokens: int) -> int:
        return -(
            -tokens
            * self._price.output_usd_per_mtok
            * (_BPS - self._discount_bps)
            // (_BPS * _PER_MTOK)
        )

    def running_low(self, projected: int) -> bool:
        """Less than half a chunk of output left in the hold: time to ask for the next one."""
        return projected + self.chunk_cost(self.chunk_tokens // 2) > self.held

    def spent(self, projected: int) -> bool:
        return projected >= self.held
