"""Publishes the live catalogue to KV ``aiapi_catalogue`` whenever its version moves.

The version is bumped by triggers on the catalogue, price, plan and terms tables, so a change made by this
service, by ``python -m aiapi_billing price`` in another process or by hand in SQL is published
alike: at once when :mod:`aiapi_billing.catalogue_listener` hears it, else within one polling
interval. Writes are revision-conditional: a replica that read an older
version never overwrites a newer snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from aiapi_shared.bus import Bus
from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events.records_v1 import CATALOGUE_BUCKET, CATALOGUE_KEY, CatalogueSnapshot
from aiapi_shared.kv_versioned import put_if_newer
from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aiapi_billing import catalogue_store
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.repository import catalogue as catalogue_tables

log = logging.getLogger("aiapi.billing.catalogue")

# The version poll while a listener hears the changes: only for a notification that got lost.
HEARD_POLL_S = 10.0


def _version_of(payload: bytes) -> int:
    return int(orjson.loads(payload).get("version", -1))


class CataloguePublisher:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        bus: Bus,
        live: LiveCatalogue,
        interval_s: float = 1.0,
        *,
        heard: Callable[[], bool] = lambda: False,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._live = live
        self._shipped = live.shipped
        self._interval_s = interval_s
        # Whether a listener hears every change now (catalogue_listener): then the version is
        # polled only as a safety net, every HEARD_POLL_S, instead of every interval_s.
        self._heard = heard
        self._published = -1
        self._wake = asyncio.Event()

    def changed(self) -> None:
        """Publish now rather than at the next poll (after this process changed the catalogue)."""
        self._wake.set()

    async def current(self) -> tuple[int, Catalogue]:
        """The catalogue as the tables hold it now; this replica prices and limits with it from
        here on (an operator's change applies here before the answer leaves)."""
        async with self._pool.connection() as conn:
            version, catalogue = await catalogue_store.load(conn, self._shipped)
        self._live.use(version, catalogue)
        return version, catalogue

    async def publish_if_changed(self) -> bool:
        async with self._pool.connection() as conn:
            if await catalogue_tables.version(conn) == self._published:
                return False
            version, catalogue = await catalogue_store.load(conn, self._shipped)
        self._live.use(version, catalogue)  # this replica prices with it from now on
        snapshot = CatalogueSnapshot(
            version=version, published_at=datetime.now(UTC), catalogue=catalogue
        )
        kv = await self._bus.ensure_kv(CATALOGUE_BUCKET)
        await put_if_newer(
            kv,
            CATALOGUE_KEY,
            snapshot.model_dump_json().encode(),
            version=version,
            version_of=_version_of,
        )
        self._published = version
        log.info("catalogue published", extra={"version": version, "models": len(catalogue.models)})
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()  # before reading: a change made meanwhile wakes the next round
            try:
                await self.publish_if_changed()
            except (OperationalError, PoolTimeout, OSError) as exc:
                log.warning("catalogue not published (%s); retrying", type(exc).__name__)
            except Exception:  # a NATS hiccup must not end the loop
                log.exception("catalogue publication failed; retrying")
            poll_s = HEARD_POLL_S if self._heard() else self._interval_s
            waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:  # a stop must not wait for the poll
                await asyncio.wait(waits, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
