"""Which USD rate prices a deposit. Pure: quotes and times in, a rate or None out.

CONTRACT.md: USDT counts as 1 USD; ETH and BTC at the rate of the moment the deposit was first
seen, from the price sources (the median of at least two fresh ones), or from a manual rate when
none was fresh. A manual rate (`POST /admin/v1/rates`) prices the deposits waiting for a rate,
and deposits first seen while it is the newest manual rate and under 10 minutes old. With no
rate a deposit waits; a rate is never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiapi_payments.model import Asset
from aiapi_payments.policy import USDT_RATE

DEFAULT_MAX_AGE = timedelta(minutes=2)
MANUAL_RATE_LIFETIME = timedelta(minutes=10)
MIN_SOURCES = 2


@dataclass(frozen=True)
class Quote:
    source: str
    asset: Asset
    rate_nano_usd: int  # per whole coin
    observed_at: datetime


@dataclass(frozen=True)
class ManualRate:
    asset: Asset
    rate_nano_usd: int
    set_at: datetime


@dataclass(frozen=True)
class RateChoice:
    rate_nano_usd: int
    source: str  # "par", "median(a,b,...)" or "manual", kept with the deposit for audit


def median_rate(
    quotes: Iterable[Quote],
    asset: Asset,
    at: datetime,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    min_sources: int = MIN_SOURCES,
) -> RateChoice | None:
    """Median of each source's newest quote that is fresh at `at`; None if fewer than enough.

    A quote observed after `at` is not evidence of the rate at `at` and is ignored. With an even
    number of sources the median is the mean of the middle two, rounded down.
    """
    newest: dict[str, Quote] = {}
    for quote in quotes:
        if quote.asset is not asset or not at - max_age <= quote.observed_at <= at:
            continue
        if quote.rate_nano_usd <= 0:
            continue
        kept = newest.get(quote.source)
        if kept is None or quote.observed_at > kept.observed_at:
            newest[quote.source] = quote
    if len(newest) < min_sources:
        return None
    rates = sorted(quote.rate_nano_usd for quote in newest.values())
    middle = len(rates) // 2
    median = rates[middle] if len(rates) % 2 else (rates[middle - 1] + rates[middle]) // 2
    return RateChoice(median, f"median({','.join(sorted(newest))})")


def newest_manual_rate(
    manual_rates: Iterable[ManualRate], asset: Asset, at: datetime
) -> ManualRate | None:
    candidates = [m for m in manual_rates if m.asset is asset and m.set_at <= at]
    return max(candidates, key=lambda m: m.set_at, default=None)


def rate_at_first_sight(
    asset: Asset,
    first_seen_at: datetime,
    quotes: Iterable[Quote],
    manual_rates: Iterable[ManualRate],
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> RateChoice | None:
    """The rate of a deposit first seen at `first_seen_at`, or None: it waits for a rate."""
    if asset.pegged:
        return RateChoice(USDT_RATE, "par")
    from_sources = median_rate(quotes, asset, first_seen_at, max_age=max_age)
    if from_sources is not None:
        return from_sources
    manual = newest_manual_rate(manual_rates, asset, first_seen_at)
    if manual is not None and first_seen_at - manual.set_at < MANUAL_RATE_LIFETIME:
        return RateChoice(manual.rate_nano_usd, "manual")
    return None


def rate_for_waiting(manual: ManualRate) -> RateChoice:
    """A newly set manual rate prices every deposit of its asset still waiting for a rate."""
    return RateChoice(manual.rate_nano_usd, "manual")
