"""Hears the catalogue change (PostgreSQL ``LISTEN``): the triggers that bump the catalogue's
version also ``NOTIFY aiapi_billing_catalogue`` on commit (migration 0035), whoever made the
change (this replica, another, the CLI, psql).

Why: a change must reach admission and the edges within a second, and polling the version for
that costs every replica four transactions a second at rest. With a listening connection the
publisher is woken by the change itself and polls only as a safety net; while the connection is
down (PostgreSQL restarting) :attr:`CatalogueListener.listening` is false and the publisher polls
at its short interval again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from aiapi_shared.lifecycle import unless_stopped

from aiapi_billing.repository import catalogue

log = logging.getLogger("aiapi.billing.catalogue")

RECONNECT_S = 1.0


class CatalogueListener:
    def __init__(self, dsn: str, on_change: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self.listening = False

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop`` (reconnecting after a loss); every notification and every
        (re)connection calls ``on_change`` (a change may have come while nobody listened)."""
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (psycopg.Error, OSError) as exc:
                if self.listening:
                    log.warning("catalogue listener lost (%s); polling", type(exc).__name__)
            finally:
                self.listening = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=RECONNECT_S)

    async def _listen(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
            await catalogue.listen_for_changes(conn)
            self.listening = True
            self._on_change()
            # Not ``conn.notifies()``: psycopg wakes every 0.1 s while it waits (its interval
            # for noticing an interrupt), ten wake-ups a second at rest. The socket is watched
            # instead, and what it brings read when it is readable: libpq queues the
            # notifications; a closed connection fails ``consume_input`` (psycopg.Error).
            readable = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(conn.fileno(), readable.set)
            try:
                while not stop.is_set():
                    if await unless_stopped(readable.wait(), stop) is None:
                        return
                    readable.clear()
                    conn.pgconn.consume_input()
                    heard = False
                    while conn.pgconn.notifies() is not None:
                        heard = True
                    if heard:
                        self._on_change()
            finally:
                loop.remove_reader(conn.fileno())
