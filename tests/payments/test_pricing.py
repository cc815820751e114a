"""Rates: median of fresh sources, manual rates per CONTRACT.md, USDT at par."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiapi_payments.model import Asset
from aiapi_payments.policy import parse_usd
from aiapi_payments.pricing import (
    ManualRate,
    Quote,
    median_rate,
    rate_at_first_sight,
    rate_for_waiting,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
USD = parse_usd


def q(source: str, usd: str, age_s: int = 0, asset: Asset = Asset.ETH) -> Quote:
    return Quote(source, asset, USD(usd), T0 - timedelta(seconds=age_s))


def test_median_of_three_and_of_two() -> None:
    three = [q("a", "3000"), q("b", "3010"), q("c", "2990")]
    assert median_rate(three, Asset.ETH, T0) is not None
    assert median_rate(three, Asset.ETH, T0).rate_nano_usd == USD("3000")  # type: ignore[union-attr]
    two = median_rate([q("a", "3000"), q("b", "3001")], Asset.ETH, T0)
    assert two is not None
    assert two.rate_nano_usd == USD("3000.5")
    assert two.source == "median(a,b)"


def test_fewer_than_two_fresh_sources_gives_no_rate() -> None:
    assert median_rate([q("a", "3000")], Asset.ETH, T0) is None
    stale = [q("a", "3000"), q("b", "3000", age_s=121)]
    assert median_rate(stale, Asset.ETH, T0) is None
    # two quotes from the same source are one source
    assert median_rate([q("a", "3000"), q("a", "3001", 5)], Asset.ETH, T0) is None
    # another asset's quotes do not count
    assert median_rate([q("a", "3000"), q("b", "1", asset=Asset.BTC)], Asset.ETH, T0) is None


def test_a_quote_from_after_the_moment_is_not_evidence() -> None:
    later = Quote("b", Asset.ETH, USD("1"), T0 + timedelta(seconds=1))
    assert median_rate([q("a", "3000"), later], Asset.ETH, T0) is None


def test_usdt_is_at_par_without_sources() -> None:
    choice = rate_at_first_sight(Asset.USDT, T0, [], [])
    assert choice is not None
    assert choice.rate_nano_usd == USD("1")


def test_sources_win_over_a_manual_rate_when_fresh() -> None:
    manual = [ManualRate(Asset.ETH, USD("2500"), T0 - timedelta(minutes=1))]
    choice = rate_at_first_sight(Asset.ETH, T0, [q("a", "3000"), q("b", "3000")], manual)
    assert choice is not None
    assert choice.rate_nano_usd == USD("3000")


def test_manual_rate_prices_first_sights_while_newest_and_young() -> None:
    older = ManualRate(Asset.ETH, USD("2400"), T0 - timedelta(minutes=5))
    newest = ManualRate(Asset.ETH, USD("2500"), T0 - timedelta(minutes=3))
    choice = rate_at_first_sight(Asset.ETH, T0, [], [older, newest])
    assert choice is not None
    assert (choice.rate_nano_usd, choice.source) == (USD("2500"), "manual")
    expired = ManualRate(Asset.ETH, USD("2500"), T0 - timedelta(minutes=10))
    assert rate_at_first_sight(Asset.ETH, T0, [], [expired]) is None
    # a manual rate set after the deposit was first seen does not price it at first sight...
    future = ManualRate(Asset.ETH, USD("2500"), T0 + timedelta(minutes=1))
    assert rate_at_first_sight(Asset.ETH, T0, [], [future]) is None
    # ...it prices it as a deposit waiting for a rate
    assert rate_for_waiting(future).rate_nano_usd == USD("2500")
