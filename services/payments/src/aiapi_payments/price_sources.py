"""Fetch BTC/ETH quotes from the configured tickers over HTTP (I/O).

Which tickers and how to read their answers is `tickers.py`'s (pure); the choice of rate is
`pricing.py`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import httpx

from aiapi_payments.model import Asset
from aiapi_payments.pricing import Quote
from aiapi_payments.tickers import PriceSource, extract_rate

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PriceFetcher:
    """Asks every source at once; a failing source is logged and left out, never guessed."""

    def __init__(
        self,
        sources: Sequence[PriceSource],
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._sources = list(sources)
        self._client = client
        self._clock = clock

    async def fetch(self, asset: Asset) -> list[Quote]:
        results = await asyncio.gather(*(self._fetch_one(s, asset) for s in self._sources))
        return [quote for quote in results if quote is not None]

    async def _fetch_one(self, source: PriceSource, asset: Asset) -> Quote | None:
        try:
            response = await self._client.get(source.url(asset))
            response.raise_for_status()
            document = json.loads(response.text, parse_float=Decimal)
            rate = extract_rate(document, source.json_path)
        except (httpx.HTTPError, ValueError) as error:
            # PriceSourceError and json's decode error are ValueErrors.
            # Not the error's text: httpx puts the URL in it, and a custom source's URL may
            # carry an API key.
            status = error.response.status_code if isinstance(error, httpx.HTTPStatusError) else ""
            log.warning(
                "price source %s failed for %s: %s %s",
                source.name,
                asset,
                type(error).__name__,
                status,
            )
            return None
        return Quote(source.name, asset, rate, self._clock())
