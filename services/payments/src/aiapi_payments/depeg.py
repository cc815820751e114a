"""The depeg guard: a USD stablecoin credits at 1 USD only while its market price is in the
operator's band. Pure but for its log lines (the alert).

Off unless `AIAPI_DEPEG_BAND` is set. When on, each watch cycle asks the guard which pegged
tokens are paused: a token whose median fresh quote (any number of sources, at least one) lies
outside the band, or that has no fresh quote at all (an unverified peg is not assumed). A
paused token's deposits are not final for crediting: they stay `detected` and credit, at the
peg, in the first cycle after the price is back in the band.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from aiapi_payments.model import Asset
from aiapi_payments.policy import DepegBand, format_units
from aiapi_payments.pricing import Quote, median_rate

log = logging.getLogger("aiapi.payments.depeg")


class DepegGuard:
    def __init__(self, band: DepegBand, assets: Iterable[Asset], max_age: timedelta) -> None:
        self._band = band
        self._assets = [asset for asset in assets if asset.pegged]
        self._max_age = max_age
        self.paused: frozenset[Asset] = frozenset()

    def update(self, quotes: Iterable[Quote], now: datetime) -> frozenset[Asset]:
        """The pegged assets paused now; logs an ALERT when one pauses, a notice when it
        resumes (once per change, not every cycle)."""
        quotes = list(quotes)
        paused: set[Asset] = set()
        for asset in self._assets:
            choice = median_rate(quotes, asset, now, max_age=self._max_age, min_sources=1)
            if choice is not None and self._band.contains(choice.rate_nano_usd):
                if asset in self.paused:
                    log.warning(
                        "%s is back in the depeg band at %s USD; crediting resumes",
                        asset,
                        format_units(choice.rate_nano_usd, 9),
                    )
                continue
            paused.add(asset)
            if asset not in self.paused:
                price = (
                    "no fresh price"
                    if choice is None
                    else (f"{format_units(choice.rate_nano_usd, 9)} USD ({choice.source})")
                )
                log.error(
                    "ALERT: %s depeg guard: %s, outside %s-%s USD; crediting of %s paused",
                    asset,
                    price,
                    format_units(self._band.low_nano, 9),
                    format_units(self._band.high_nano, 9),
                    asset,
                )
        self.paused = frozenset(paused)
        return self.paused
