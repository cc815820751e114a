"""An in-memory copy of the price table, for admission (its holds are estimates).

Settlement reads the table itself (``repository/prices.py``) in its own transaction.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from aiapi_billing.pricing import Price
from aiapi_billing.repository import Conn, prices


class PriceBook:
    """An in-memory copy of the price table for admission (holds are estimates; settlement reads
    the table itself). Refreshed at most every ``max_age_s`` so an operator's change shows soon."""

    def __init__(self, max_age_s: float = 2.0) -> None:
        self._by_model: dict[str, list[Price]] = {}
        self._loaded_at = float("-inf")
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()

    def load(self, table: list[Price]) -> None:
        by_model: dict[str, list[Price]] = {}
        for price in table:
            by_model.setdefault(price.model, []).append(price)
        self._by_model = by_model
        self._loaded_at = time.monotonic()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._loaded_at > self._max_age_s

    async def refresh(self, conn: Conn) -> None:
        async with self._lock:
            if self.stale:
                self.load(await prices.all_prices(conn))

    def price_at(self, model: str, moment: datetime) -> Price | None:
        in_force = [p for p in self._by_model.get(model, []) if p.effective_from <= moment]
        return max(in_force, key=lambda p: p.effective_from) if in_force else None
