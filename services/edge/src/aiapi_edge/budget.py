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

Beyond tokens, the projection counts what else the stream has made the upstream bill so far: the
server tools it used (each ``server_tool_use`` block the stream opens is one request of its tool's
meter, or the upstream's reported count when larger) at their unit price, and the tokens at the
premium the request is billed at (long context, region, tier, speed: the larger of what the hold
was taken at and what the reported usage shows). The hold already holds the tools' worst case
(``max_uses``), so they grow it only beyond that, e.g. a tool without ``max_uses`` used more than
ten times. Billing extends a hold by output tokens at the plain price, so an extension asks for
as many of those as cover the next chunk at the premium plus what the projection is already over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from aiapi_shared.catalogue import CacheMultipliers, PricePoint

from aiapi_edge.metering import meters_from_anthropic

_BPS = 10_000
_PER_MTOK = 1_000_000
DELTA_OVERHEAD_BYTES = 80
BYTES_PER_TOKEN = 3
MIN_CHUNK_TOKENS = 1024
# The input and output factors (bps) of the meters a request is billed at, from its meters so far.
Premium = Callable[[Mapping[str, int | str]], tuple[int, int]]


def no_premium(meters: Mapping[str, int | str]) -> tuple[int, int]:
    return _BPS, _BPS


def _tokens(meters: Mapping[str, int | str], name: str) -> int:
    value = meters.get(name, 0)
    return value if isinstance(value, int) else 0


def input_of(meters: Mapping[str, int | str]) -> int:
    """The input the long-context threshold is measured on: cache reads and writes included."""
    return sum(
        _tokens(meters, name)
        for name in (
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_5m_input_tokens",
            "cache_creation_1h_input_tokens",
        )
    )


def cost_of(
    meters: Mapping[str, int | str],
    price: PricePoint,
    discount_bps: int,
    multipliers: CacheMultipliers,
    premium: tuple[int, int] = (_BPS, _BPS),
) -> int:
    """What ``meters``' tokens cost in nano-USD at ``price`` times the ``premium`` factors (input,
    output; bps), less the plan's discount, rounded up once: the rule billing prices by."""
    fixed, per_output = list_parts(meters, price, multipliers, premium)
    return discounted_cost(fixed + _tokens(meters, "output_tokens") * per_output, discount_bps)


def list_parts(
    meters: Mapping[str, int | str],
    price: PricePoint,
    multipliers: CacheMultipliers,
    premium: tuple[int, int],
) -> tuple[int, int]:
    """The list price of ``meters`` (in bps² of nano-USD per Mtok) as its part that does not
    depend on the output tokens and the part each output token adds: a stream prices its
    growing output estimate with one multiplication (:meth:`HoldBudget.projected`)."""
    p_in, p_out, m = price.input_usd_per_mtok, price.output_usd_per_mtok, multipliers
    input_weighted_bps = (
        _tokens(meters, "input_tokens") * _BPS
        + _tokens(meters, "cache_read_input_tokens") * m.cache_read
        + _tokens(meters, "cache_creation_5m_input_tokens") * m.cache_write_5m
        + _tokens(meters, "cache_creation_1h_input_tokens") * m.cache_write_1h
    )
    return input_weighted_bps * p_in * premium[0], _BPS * p_out * premium[1]


def discounted_cost(list_price_bps2: int, discount_bps: int) -> int:
    """A list price from :func:`list_parts` less the discount, in nano-USD, rounded up once."""
    numerator = list_price_bps2 * (_BPS - discount_bps)
    return -(-numerator // (_BPS * _BPS * _BPS * _PER_MTOK))


def worst_case(
    price: PricePoint,
    discount_bps: int,
    multipliers: CacheMultipliers,
    *,
    input_tokens: int,
    max_tokens: int,
    input_premium_bps: int = _BPS,
    output_premium_bps: int = _BPS,
) -> int:
    """The hold billing would take for a request: its estimated input and all of ``max_tokens``,
    at the premium the request asks for (billing's ``pricing.hold_nano``)."""
    meters = {"input_tokens": input_tokens, "output_tokens": max_tokens}
    premium = (input_premium_bps, output_premium_bps)
    return cost_of(meters, price, discount_bps, multipliers, premium)


class HoldBudget:
    __slots__ = (
        "_delta_bytes",
        "_discount_bps",
        "_last",
        "_max_tokens",
        "_meters",
        "_multipliers",
        "_output",
        "_premium",
        "_price",
        "_quiet",
        "_requested",
        "_tool_prices",
        "_tools_seen",
        "_tools_total",
        "chunk_tokens",
        "held",
    )

    def __init__(
        self,
        *,
        held: int,
        price: PricePoint,
        discount_bps: int,
        multipliers: CacheMultipliers,
        max_tokens: int,
        premium: tuple[int, int] = (_BPS, _BPS),
        reported_premium: Premium = no_premium,
        tool_prices: Mapping[str, int] | None = None,
    ) -> None:
        self.held = held
        self._price = price
        self._discount_bps = discount_bps
        self._multipliers = multipliers
        self._requested = premium  # what the hold was taken at
        self._premium = reported_premium
        # List price of one request of each server-tool meter (``web_search_requests``, ...).
        self._tool_prices = dict(tool_prices or {})
        self._tools_seen: dict[str, int] = {}
        self._tools_total = 0  # the sum of _tools_seen
        self._delta_bytes = 0
        # The last projection: (usage object, delta bytes, server tools seen) -> its cost. A
        # stream asks once per chunk; the usage changes twice per stream, the bytes per chunk.
        self._last: tuple[object, int, int, int] | None = None
        # For that usage object and count of tools seen: the reported output, the list price's
        # fixed part and per output token (:func:`list_parts`, at the premium the meters show)
        # and the tools' cost; none of them changes with the output estimate.
        self._meters: tuple[object, int, int, int, int, int] | None = None
        # For a usage object, held amount and count of tools seen: the delta bytes up to which
        # the stream is surely neither running low nor spent (:meth:`surely_within`).
        self._quiet: tuple[object, int, int, float] | None = None
        self._max_tokens = max_tokens
        self._output = 0  # the output tokens of the last projection
        # What one extension asks for: a quarter of max_tokens, at least 1,024 output tokens.
        self.chunk_tokens = max(MIN_CHUNK_TOKENS, max_tokens // 4)

    def delta(self, data_length: int) -> None:
        """One ``content_block_delta`` event of ``data_length`` bytes went by."""
        self._delta_bytes += max(0, data_length - DELTA_OVERHEAD_BYTES)

    def server_tool(self, meter: str) -> None:
        """The stream opened a ``server_tool_use`` block of the tool metered by ``meter``."""
        self._tools_seen[meter] = self._tools_seen.get(meter, 0) + 1
        self._tools_total += 1

    @property
    def tools_seen(self) -> Mapping[str, int]:
        return self._tools_seen

    def output_tokens(self, reported: int) -> int:
        estimated = -(-self._delta_bytes // BYTES_PER_TOKEN)
        return max(reported, estimated)

    def projected(self, usage: dict[str, Any]) -> int:
        """The cost so far in nano-USD (rounded up, as billing rounds) of the upstream's
        reported ``usage`` with the estimated output tokens and the server tools seen."""
        tools = self._tools_total
        last = self._last
        if (
            last is not None
            and last[0] is usage
            and last[1] == self._delta_bytes
            and last[2] == tools
        ):
            return last[3]
        cached = self._parts(usage, tools)
        self._output = self.output_tokens(cached[2])
        price = discounted_cost(cached[3] + self._output * cached[4], self._discount_bps)
        projected = price + cached[5]
        self._last = (usage, self._delta_bytes, tools, projected)
        return projected

    def _parts(self, usage: dict[str, Any], tools: int) -> tuple[object, int, int, int, int, int]:
        """(usage, tools seen, reported output, list price's fixed part, its part per output
        token, the tools' cost) for this usage object and count of tools seen."""
        cached = self._meters
        if cached is None or cached[0] is not usage or cached[1] != tools:
            meters = meters_from_anthropic(usage)
            reported = meters["output_tokens"]
            # The premium reads the input and the options only: the output estimate leaves it.
            fixed, per_output = list_parts(
                meters, self._price, self._multipliers, self.premium(meters)
            )
            cached = (usage, tools, reported if isinstance(reported, int) else 0, fixed,
                      per_output, self.tools_cost(meters))  # fmt: skip
            self._meters = cached
        return cached

    def surely_within(self, usage: dict[str, Any]) -> bool:
        """True when, with this usage, neither :meth:`running_low` nor :meth:`spent` can be
        true of :meth:`projected`, decided from the delta bytes alone.

        A stream asks after every chunk, and the projection changes with every chunk (the
        output estimate grows); pricing it each time was a quarter of the edge's Python per
        streamed event. So the largest output estimate that keeps even the upper bound
        ``projected + chunk_cost(half a chunk)`` below the hold is solved for once per usage
        object, held amount and count of tools (:func:`discounted_cost` rounds up a linear
        function of the output tokens: the bound is monotone), and a chunk only compares its
        byte count with it. False means "ask :meth:`projected`", not "running low"."""
        quiet = self._quiet
        if (
            quiet is None
            or quiet[0] is not usage
            or quiet[1] != self.held
            or quiet[2] != self._tools_total
        ):
            quiet = self._quiet = (usage, self.held, self._tools_total, self._quiet_bytes(usage))
        return self._delta_bytes <= quiet[3]

    def _quiet_bytes(self, usage: dict[str, Any]) -> float:
        """The most delta bytes at which ``projected + chunk_cost(half a chunk) < held`` holds
        for every output estimate they allow (-1: none; ``inf``: output is free)."""
        _, _, reported, fixed, per_output, tools_cost = self._parts(usage, self._tools_total)
        # ceil(y / scale) <= room  <=>  y <= room * scale, y the discounted list price below.
        room = self.held - tools_cost - self._chunk_at_premium(self.chunk_tokens // 2) - 1
        if room < 0:
            return -1
        keep = _BPS - self._discount_bps
        if keep <= 0:  # a discount of 100% or more: not a case worth a shortcut
            return -1
        budget = room * _BPS * _BPS * _BPS * _PER_MTOK - fixed * keep
        if budget < 0:
            return -1
        per_token = per_output * keep
        if per_token <= 0:
            return math.inf
        most_output = budget // per_token
        # output_tokens() is max(reported, ceil(bytes / BYTES_PER_TOKEN)).
        return most_output * BYTES_PER_TOKEN if reported <= most_output else -1

    def premium(self, meters: Mapping[str, int | str]) -> tuple[int, int]:
        shown = self._premium(meters)
        return max(shown[0], self._requested[0]), max(shown[1], self._requested[1])

    def cost(self, meters: Mapping[str, int | str]) -> int:
        premium = self.premium(meters)
        return cost_of(meters, self._price, self._discount_bps, self._multipliers, premium)

    def tools_cost(self, meters: Mapping[str, int | str]) -> int:
        """The server tools used so far (seen in the stream, or reported), after the discount."""
        list_nano = sum(
            max(self._tools_seen.get(meter, 0), _tokens(meters, meter)) * unit
            for meter, unit in self._tool_prices.items()
        )
        return -(-list_nano * (_BPS - self._discount_bps) // _BPS)

    def chunk_cost(self, tokens: int) -> int:
        """What billing grows a hold by for ``tokens`` output tokens (the plain price)."""
        return -(
            -tokens
            * self._price.output_usd_per_mtok
            * (_BPS - self._discount_bps)
            // (_BPS * _PER_MTOK)
        )

    def _chunk_at_premium(self, tokens: int) -> int:
        return -(-self.chunk_cost(tokens) * self._requested[1] // _BPS)

    def extension_tokens(self, projected: int) -> int:
        """The plain-price output tokens an extension asks for: enough for the next chunk at the
        request's premium and for what the projection is already over the hold."""
        need = max(0, projected - self.held) + self._chunk_at_premium(self.chunk_tokens)
        per_mtok = self._price.output_usd_per_mtok * (_BPS - self._discount_bps)
        if per_mtok <= 0:
            return self.chunk_tokens  # output costs nothing: any extension covers it
        return max(self.chunk_tokens, -(-need * _BPS * _PER_MTOK // per_mtok))

    def running_low(self, projected: int) -> bool:
        """Less than half a chunk of output left in the hold: time to ask for the next one.

        Never more than the output the request may still produce: ``max_tokens`` bounds it, and
        the hold already covers all of it, so a short answer (``max_tokens`` below half a chunk)
        asks only once its reported input or its tools outgrow the hold, instead of asking on
        its first chunk (an extension, a round trip to billing and a write, per stream)."""
        ahead = self.chunk_tokens // 2
        if self._max_tokens > 0:
            ahead = min(ahead, max(0, self._max_tokens - self._output))
        return projected + self._chunk_at_premium(ahead) > self.held

    def spent(self, projected: int) -> bool:
        return projected >= self.held
