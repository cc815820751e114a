"""Deposit states, finality, and USD values in integer nano-USD."""

from __future__ import annotations

import pytest
from aiapi_payments.model import Asset, DepositState
from aiapi_payments.policy import (
    BtcConfirmationPolicy,
    EthFinality,
    PolicyError,
    confirmations,
    format_units,
    mark_credited,
    next_state,
    parse_usd,
    usd_value,
)

D = DepositState
MIN = parse_usd("1.00")


def test_usd_strings_parse_exactly() -> None:
    assert parse_usd("1.00") == 1_000_000_000
    assert parse_usd("3000") == 3_000_000_000_000
    assert parse_usd("0.000000001") == 1
    for bad in ("1e3", "-1", "1.0000000001", "", "1,00"):
        with pytest.raises(PolicyError):
            parse_usd(bad)


def test_usd_value_rounds_down_in_integers() -> None:
    assert usd_value(25_500_000, Asset.USDT.decimals, parse_usd("1")) == parse_usd("25.5")
    # 0.01 ETH at 3000.00 USD
    assert usd_value(10**16, Asset.ETH.decimals, parse_usd("3000")) == parse_usd("30")
    # one wei at 3000 USD/ETH is 3e-15 USD: rounds down to zero nano-USD
    assert usd_value(1, Asset.ETH.decimals, parse_usd("3000")) == 0
    # 1 sat at 65,432.10 USD/BTC = 0.000654321 USD exactly
    assert usd_value(1, Asset.BTC.decimals, parse_usd("65432.10")) == 654_321
    # 333 wei-ish rounding: 1/3 of a nano rounds down
    assert usd_value(1, Asset.USDT.decimals, 1) == 0


def test_amounts_format_as_plain_decimal_strings() -> None:
    assert format_units(25_500_000, 6) == "25.5"
    assert format_units(10**16, 18) == "0.01"
    assert format_units(100_000_000, 8) == "1"
    assert format_units(1, 18) == "0.000000000000000001"


def test_confirmations_count_the_including_block_as_one() -> None:
    assert confirmations(None, 100) == 0
    assert confirmations(100, 100) == 1
    assert confirmations(95, 100) == 6


def test_eth_finality_by_tag_or_depth() -> None:
    tag = EthFinality.parse("finalized")
    assert tag.is_final(90, head=100, finalized=90)
    assert not tag.is_final(91, head=100, finalized=90)
    assert not tag.is_final(None, head=100, finalized=90)
    depth = EthFinality.parse("12")
    assert depth.is_final(89, head=100, finalized=None)
    assert not depth.is_final(90, head=100, finalized=None)
    with pytest.raises(PolicyError):
        EthFinality.parse("soon")


def test_btc_confirmations_grow_with_value() -> None:
    policy = BtcConfirmationPolicy.parse(2, "1000:3, 10000:6")
    assert policy.required(parse_usd("999.99")) == 2
    assert policy.required(parse_usd("1000")) == 3
    assert policy.required(parse_usd("50000")) == 6
    assert policy.required(None) == 6  # unpriced: the strictest
    assert policy.is_final(99, head=100, usd_nano=parse_usd("5")) is True
    assert policy.is_final(99, head=100, usd_nano=parse_usd("5000")) is False
    assert BtcConfirmationPolicy.parse(2, "").required(parse_usd("1000000")) == 2


def _next(previous: D | None, **facts: object) -> D:
    base: dict[str, object] = {
        "on_chain": True,
        "in_block": True,
        "final": False,
        "usd_nano": parse_usd("10"),
        "minimum_nano": MIN,
    }
    base.update(facts)
    return next_state(previous, **base)  # type: ignore[arg-type]


def test_happy_path_detected_confirmed_credited() -> None:
    assert _next(None, in_block=False) is D.DETECTED
    assert _next(D.DETECTED) is D.DETECTED
    assert _next(D.DETECTED, final=True) is D.CONFIRMED
    assert mark_credited(D.CONFIRMED) is D.CREDITED
    assert _next(D.CREDITED, final=True) is D.CREDITED


def test_a_final_deposit_without_a_rate_waits() -> None:
    assert _next(D.DETECTED, final=True, usd_nano=None) is D.DETECTED


def test_below_minimum_is_recorded_not_confirmed() -> None:
    assert _next(None, usd_nano=parse_usd("0.99")) is D.BELOW_MINIMUM
    assert _next(D.BELOW_MINIMUM, final=True, usd_nano=parse_usd("0.99")) is D.BELOW_MINIMUM


def test_gone_before_confirmation_orphans_and_reinclusion_revives() -> None:
    assert _next(D.DETECTED, on_chain=False, in_block=False) is D.ORPHANED
    assert _next(D.BELOW_MINIMUM, on_chain=False, in_block=False) is D.ORPHANED
    assert _next(D.ORPHANED) is D.DETECTED
    assert _next(D.ORPHANED, final=True) is D.CONFIRMED


def test_gone_after_confirmation_is_reversed_for_good() -> None:
    assert _next(D.CONFIRMED, on_chain=False, in_block=False) is D.REVERSED
    assert _next(D.CREDITED, on_chain=True, in_block=False) is D.REVERSED
    assert _next(D.REVERSED, final=True) is D.REVERSED


def test_only_a_confirmed_deposit_credits() -> None:
    for state in (D.DETECTED, D.ORPHANED, D.BELOW_MINIMUM, D.REVERSED, D.CREDITED):
        with pytest.raises(PolicyError):
            mark_credited(state)
