"""The catalogue this billing replica prices and limits with: billing's tables as last read.

Plans, meter prices and accounts' own terms change at run time (``catalogue_store.py``). The
publisher reads the tables whenever their version moves (every ``catalogue_poll_s``, at once
after a change made here) and hands what it read to :meth:`LiveCatalogue.use`, so admission and
leases see a change within that interval. Settlement must not price with a copy one poll old:
it calls :meth:`fresh` in its own transaction, which compares the version and re-reads when it
moved. Every version is effective-dated, so a copy that is current prices any request (past or
future) as the tables do.
"""

from __future__ import annotations

from aiapi_shared.catalogue import Catalogue

from aiapi_billing import catalogue_store
from aiapi_billing.repository import Conn
from aiapi_billing.repository import catalogue as catalogue_tables


class LiveCatalogue:
    def __init__(self, shipped: Catalogue) -> None:
        self.shipped = shipped
        self.current = shipped  # until the first read (the service reads before it serves)
        self.version = -1

    def use(self, version: int, catalogue: Catalogue) -> None:
        """Keep ``catalogue`` unless a newer version is held already."""
        if version >= self.version:
            self.version, self.current = version, catalogue

    async def fresh(self, conn: Conn, version: int | None = None) -> Catalogue:
        """The catalogue as the caller's transaction reads the tables: re-read when their
        ``version`` (read here unless the caller read it already) is not the one held."""
        if version is None:
            version = await catalogue_tables.version(conn)
        if version != self.version:
            self.use(*await catalogue_store.load(conn, self.shipped))
        return self.current
