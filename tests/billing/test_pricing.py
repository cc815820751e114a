"""The cost function: exact integers, rounded once and up, checked against Fraction arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from math import ceil

from aiapi_billing.pricing import Price, cost_nano, hold_nano, rate_tokens
from aiapi_shared.catalogue import default_catalogue
from aiapi_shared.events import Usage
from aiapi_shared.money import parse_usd
from hypothesis import given
from hypothesis import strategies as st

CAT = default_catalogue()
MULT = CAT.cache_multipliers_bps
SONNET = Price(1, "claude-sonnet-4-6", datetime(2026, 1, 1, tzinfo=UTC), 3 * 10**9, 15 * 10**9)


def reference_cost(usage: Usage, price: Price, discount_bps: int) -> int:
    """The same price computed in exact rationals, in USD, the way a person would write it."""
    per_token_in = Fraction(price.input_nano_per_mtok, 10**9) / 1_000_000
    per_token_out = Fraction(price.output_nano_per_mtok, 10**9) / 1_000_000
    usd = (
        usage.input_tokens * per_token_in
        + usage.cache_read_input_tokens * per_token_in * Fraction(1, 10)
        + usage.cache_creation_5m_input_tokens * per_token_in * Fraction(5, 4)
        + usage.cache_creation_1h_input_tokens * per_token_in * 2
        + usage.output_tokens * per_token_out
    ) * (1 - Fraction(discount_bps, 10_000))
    return ceil(usd * 10**9)


tokens = st.integers(min_value=0, max_value=5_000_000)


@given(
    i=tokens,
    o=tokens,
    cr=tokens,
    c5=tokens,
    c1=tokens,
    price_in=st.integers(min_value=0, max_value=100 * 10**9),
    price_out=st.integers(min_value=0, max_value=500 * 10**9),
    discount=st.integers(min_value=0, max_value=10_000),
)
def test_cost_equals_an_exact_rational_computation_rounded_up_once(
    i: int, o: int, cr: int, c5: int, c1: int, price_in: int, price_out: int, discount: int
) -> None:
    usage = Usage(
        input_tokens=i,
        output_tokens=o,
        cache_read_input_tokens=cr,
        cache_creation_5m_input_tokens=c5,
        cache_creation_1h_input_tokens=c1,
    )
    price = Price(1, "m", SONNET.effective_from, price_in, price_out)
    cost = cost_nano(usage, price, discount_bps=discount, multipliers=MULT)
    assert cost == reference_cost(usage, price, discount)
    assert isinstance(cost, int)


def test_contract_prices_per_million_tokens_by_plan() -> None:
    million_in = Usage(input_tokens=1_000_000)
    million_out = Usage(output_tokens=1_000_000)
    basic = CAT.plan("basic").discount_bps
    pro = CAT.plan("pro").discount_bps
    assert cost_nano(million_in, SONNET, discount_bps=basic, multipliers=MULT) == parse_usd("0.90")
    assert cost_nano(million_out, SONNET, discount_bps=basic, multipliers=MULT) == parse_usd("4.50")
    assert cost_nano(million_in, SONNET, discount_bps=pro, multipliers=MULT) == parse_usd("0.60")
    assert cost_nano(million_out, SONNET, discount_bps=pro, multipliers=MULT) == parse_usd("3.00")


def test_cache_meters_are_multiples_of_the_input_price() -> None:
    def cost(**meters: int) -> int:
        return cost_nano(Usage(**meters), SONNET, discount_bps=0, multipliers=MULT)

    assert cost(cache_read_input_tokens=1_000_000) == parse_usd("0.30")
    assert cost(cache_creation_5m_input_tokens=1_000_000) == parse_usd("3.75")
    assert cost(cache_creation_1h_input_tokens=1_000_000) == parse_usd("6.00")


def test_one_token_rounds_up_to_a_whole_nano_usd_and_zero_costs_zero() -> None:
    # At 3 nano-USD per million tokens one token is worth 0.000003 nano-USD: it costs 1.
    tiny = Price(2, "tiny", SONNET.effective_from, 3, 3)
    assert cost_nano(Usage(input_tokens=1), tiny, discount_bps=7000, multipliers=MULT) == 1
    # Rounded once over the whole request, not per meter: two meters of 0.3 nano-USD cost 1, not 2.
    haiku = Price(3, "claude-haiku-4-5", SONNET.effective_from, 300_000, 300_000)
    two = Usage(input_tokens=1, output_tokens=1)
    assert cost_nano(two, haiku, discount_bps=0, multipliers=MULT) == 1
    assert cost_nano(Usage(), haiku, discount_bps=7000, multipliers=MULT) == 0


def test_thinking_tokens_are_not_billed_twice() -> None:
    plain = cost_nano(Usage(output_tokens=800), SONNET, discount_bps=0, multipliers=MULT)
    thinking = cost_nano(
        Usage(output_tokens=800, thinking_tokens=300), SONNET, discount_bps=0, multipliers=MULT
    )
    assert plain == thinking


def test_hold_covers_input_estimate_and_max_tokens() -> None:
    hold = hold_nano(2000, 1000, SONNET, discount_bps=7000, multipliers=MULT)
    assert hold == parse_usd("0.0018") + parse_usd("0.0045")


def test_rate_tokens_count_everything_but_cache_reads() -> None:
    usage = Usage(
        input_tokens=10,
        output_tokens=20,
        cache_read_input_tokens=1000,
        cache_creation_5m_input_tokens=3,
        cache_creation_1h_input_tokens=4,
    )
    assert rate_tokens(usage) == 37


def test_hold_is_taken_at_the_requested_premium() -> None:
    plain = hold_nano(2000, 1000, SONNET, discount_bps=7000, multipliers=MULT)
    premium = hold_nano(
        2000,
        1000,
        SONNET,
        discount_bps=7000,
        multipliers=MULT,
        input_premium_bps=22_000,
        output_premium_bps=16_500,
    )
    assert premium == parse_usd("0.0018") * 22 // 10 + parse_usd("0.0045") * 165 // 100
    assert premium > plain
