"""The payments schema in PostgreSQL (I/O): addresses, deposits, cursors, rates, the outbox.

Queries live here only. A watch cycle's outcome (the cursor's new blocks, the changed deposits
and the events they announce) is written in one transaction, so a crash leaves either all of
it or none: the cursor never moves past a transfer that was not recorded, and no state change
exists without its event in the outbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiapi_shared.events.base import Event
from aiapi_shared.events.payments_v1 import DepositConfirmed
from aiapi_shared.outbox import OutboxRow
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from aiapi_payments.config import DerivedAddress
from aiapi_payments.ethereum import BlockRef
from aiapi_payments.model import Asset, ChainNetwork, Deposit, DepositKey, DepositState, KeyChain
from aiapi_payments.pricing import ManualRate, Quote

_DEPOSIT_COLUMNS = sql.SQL(
    "network, asset, tx_hash, position, account_id, address, amount, state, first_seen_at,"
    " block_number, block_hash, confirmations, rate_nano_usd, rate_source, usd_nano, decimals"
)


async def ping(conn: AsyncConnection[Any]) -> None:
    """One trivial statement: the database answers on this connection (the health check)."""
    await conn.execute("SELECT 1")


# A deposit below the minimum never credits; it is followed only while a reorg could still
# matter, so that dust sent to an address does not cost a write in every cycle forever.
_BELOW_MINIMUM_WATCHED = 256


@dataclass(frozen=True)
class StoredAddress:
    account_id: str
    keychain: KeyChain  # the account key it derives from (one EVM address for every EVM network)
    index: int
    address: str
    script: str | None


@dataclass(frozen=True)
class ChainHead:
    head: int
    finalized: int | None  # the node's `finalized` block where the network has one


@dataclass(frozen=True)
class AccountDeposit:
    account_id: str
    deposit: Deposit


def _deposit(row: Sequence[Any]) -> AccountDeposit:
    key = DepositKey(ChainNetwork(row[0]), Asset(row[1]), row[2], int(row[3]))
    deposit = Deposit(
        key=key,
        address=row[5],
        amount=int(row[6]),
        state=DepositState(row[7]),
        first_seen_at=row[8],
        block_number=row[9],
        block_hash=row[10],
        confirmations=int(row[11]),
        rate_nano_usd=row[12],
        rate_source=row[13],
        usd_nano=row[14],
        decimals=row[15],
    )
    return AccountDeposit(str(row[4]), deposit)


def _is_watched(deposit: Deposit) -> bool:
    if deposit.state is DepositState.BELOW_MINIMUM:
        return deposit.confirmations < _BELOW_MINIMUM_WATCHED
    return deposit.state in (DepositState.DETECTED, DepositState.CONFIRMED)


class Repository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    # -- addresses ------------------------------------------------------------------------

    async def address(self, account_id: str, keychain: KeyChain) -> StoredAddress | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT derivation_index, address, script FROM addresses"
                " WHERE account_id = %s AND keychain = %s",
                (account_id, keychain.value),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredAddress(account_id, keychain, int(row[0]), row[1], row[2])

    async def assign_address(
        self, account_id: str, keychain: KeyChain, derive: Callable[[int], DerivedAddress]
    ) -> StoredAddress:
        """The account's address of `keychain`, derived at the next free index on first request.

        A per-key advisory lock serialises allocations across replicas; the unique keys make a
        double allocation impossible even without it.
        """
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('payments.addresses.' || %s))",
                (keychain.value,),
            )
            cur = await conn.execute(
                "SELECT derivation_index, address, script FROM addresses"
                " WHERE account_id = %s AND keychain = %s",
                (account_id, keychain.value),
            )
            row = await cur.fetchone()
            if row is not None:
                return StoredAddress(account_id, keychain, int(row[0]), row[1], row[2])
            # Index 0 is the operator's check address (AIAPI_*_ADDRESS_0), which their own
            # wallet shows first and may use: customers start at 1 so none shares it.
            cur = await conn.execute(
                "SELECT coalesce(max(derivation_index), 0) + 1 FROM addresses WHERE keychain = %s",
                (keychain.value,),
            )
            found = await cur.fetchone()
            assert found is not None
            index = int(found[0])
            derived = derive(index)
            await conn.execute(
                "INSERT INTO addresses (account_id, keychain, derivation_index, address, script)"
                " VALUES (%s, %s, %s, %s, %s)",
                (account_id, keychain.value, index, derived.address, derived.script),
            )
        return StoredAddress(account_id, keychain, index, derived.address, derived.script)

    async def watched_addresses(self, keychain: KeyChain) -> dict[str, StoredAddress]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT account_id, derivation_index, address, script FROM addresses"
                " WHERE keychain = %s",
                (keychain.value,),
            )
            rows = await cur.fetchall()
        return {
            row[2]: StoredAddress(row[0], keychain, int(row[1]), row[2], row[3]) for row in rows
        }

    async def funded_addresses(
        self, network: ChainNetwork, keychain: KeyChain
    ) -> list[StoredAddress]:
        """The addresses that received a final deposit on `network` (funds may still be there;
        only the node knows whether they are)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT a.account_id, a.derivation_index, a.address, a.script"
                " FROM addresses a JOIN deposits d ON d.address = a.address"
                " WHERE d.network = %s AND a.keychain = %s"
                " AND d.state IN ('confirmed', 'credited', 'below_minimum')"
                " ORDER BY a.derivation_index",
                (network.value, keychain.value),
            )
            rows = await cur.fetchall()
        return [StoredAddress(row[0], keychain, int(row[1]), row[2], row[3]) for row in rows]

    # -- deposits -------------------------------------------------------------------------

    async def deposits_to_watch(
        self, network: ChainNetwork, keys: Collection[DepositKey]
    ) -> dict[DepositKey, AccountDeposit]:
        """The open deposits of `network`, and the records of `keys` whatever their state."""
        hashes = sorted({key.tx_hash for key in keys})
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT {} FROM deposits WHERE network = %s AND ("
                    " state IN ('detected', 'confirmed')"
                    " OR (state = 'below_minimum' AND confirmations < %s)"
                    " OR tx_hash = ANY(%s))"
                ).format(_DEPOSIT_COLUMNS),
                (network.value, _BELOW_MINIMUM_WATCHED, hashes),
            )
            rows = await cur.fetchall()
        found = (_deposit(row) for row in rows)
        return {
            record.deposit.key: record
            for record in found
            if record.deposit.key in keys or _is_watched(record.deposit)
        }

    async def recently_credited(
        self, network: ChainNetwork, below_confirmations: int
    ) -> dict[DepositKey, AccountDeposit]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT {} FROM deposits WHERE network = %s"
                    " AND state = 'credited' AND confirmations < %s"
                ).format(_DEPOSIT_COLUMNS),
                (network.value, below_confirmations),
            )
            rows = await cur.fetchall()
        return {record.deposit.key: record for record in map(_deposit, rows)}

    async def deposits_in_blocks(
        self, network: ChainNetwork, block_hashes: Collection[str]
    ) -> dict[DepositKey, AccountDeposit]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT {} FROM deposits WHERE network = %s AND block_hash = ANY(%s)"
                ).format(_DEPOSIT_COLUMNS),
                (network.value, sorted(block_hashes)),
            )
            rows = await cur.fetchall()
        return {record.deposit.key: record for record in map(_deposit, rows)}

    async def heads(self) -> dict[ChainNetwork, ChainHead]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT network, head, finalized FROM chain_heads")
            rows = await cur.fetchall()
        return {ChainNetwork(row[0]): ChainHead(int(row[1]), row[2]) for row in rows}

    async def account_deposits(self, account_id: str, limit: int = 500) -> list[AccountDeposit]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT {} FROM deposits WHERE account_id = %s"
                    " ORDER BY first_seen_at DESC, tx_hash, position LIMIT %s"
                ).format(_DEPOSIT_COLUMNS),
                (account_id, limit),
            )
            rows = await cur.fetchall()
        return [_deposit(row) for row in rows]

    async def deposit_owners(self, text: str) -> list[tuple[str, str]]:
        """(account id, "address" | "tx_hash") of the deposit addresses and transactions that
        ``text`` names, whatever its letter case and with or without ``0x`` (the operator's
        search; a scan of both tables, which an operator's question can afford)."""
        plain = text.strip().lower()
        bare = plain.removeprefix("0x")
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT account_id, 'address' FROM addresses WHERE lower(address) = %s"
                " UNION SELECT DISTINCT account_id, 'tx_hash' FROM deposits"
                " WHERE lower(tx_hash) IN (%s, %s) ORDER BY 1, 2",
                (plain, bare, "0x" + bare),
            )
            rows = await cur.fetchall()
        return [(str(row[0]), str(row[1])) for row in rows]

    async def commit_watch(
        self,
        *,
        cursor: tuple[str, Sequence[BlockRef]] | None,
        changes: Sequence[AccountDeposit],
        events: Sequence[Event],
        head: tuple[ChainNetwork, ChainHead] | None = None,
    ) -> None:
        """One watch cycle's outcome, all or nothing."""
        async with self._pool.connection() as conn, conn.transaction():
            if cursor is not None:
                await _save_cursor(conn, *cursor)
            if head is not None:
                network, seen = head
                await conn.execute(
                    "INSERT INTO chain_heads (network, head, finalized) VALUES (%s, %s, %s)"
                    " ON CONFLICT (network) DO UPDATE SET head = EXCLUDED.head,"
                    " finalized = EXCLUDED.finalized, updated_at = now()",
                    (network.value, seen.head, seen.finalized),
                )
            await _upsert_deposits(conn, changes)
            await _add_to_outbox(conn, events)

    # -- cursors --------------------------------------------------------------------------

    async def load_cursor(self, name: str) -> list[BlockRef]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT blocks FROM cursors WHERE name = %s", (name,))
            row = await cur.fetchone()
        if row is None:
            return []
        return [BlockRef(int(number), str(block_hash)) for number, block_hash in row[0]]

    async def save_cursor(self, name: str, blocks: Sequence[BlockRef]) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await _save_cursor(conn, name, blocks)

    # -- rates ----------------------------------------------------------------------------

    async def add_quotes(self, quotes: Sequence[Quote], *, prune_before: datetime) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO quotes (asset, source, rate_nano_usd, observed_at)"
                    " VALUES (%s, %s, %s, %s)",
                    [(q.asset.value, q.source, q.rate_nano_usd, q.observed_at) for q in quotes],
                )
            await conn.execute("DELETE FROM quotes WHERE observed_at < %s", (prune_before,))

    async def quotes_since(self, since: datetime) -> list[Quote]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT source, asset, rate_nano_usd, observed_at FROM quotes"
                " WHERE observed_at >= %s",
                (since,),
            )
            rows = await cur.fetchall()
        return [Quote(row[0], Asset(row[1]), int(row[2]), row[3]) for row in rows]

    async def newest_manual_rates(self) -> list[ManualRate]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT ON (asset) asset, rate_nano_usd, set_at FROM manual_rates"
                " ORDER BY asset, set_at DESC, id DESC"
            )
            rows = await cur.fetchall()
        return [ManualRate(Asset(row[0]), int(row[1]), row[2]) for row in rows]

    async def record_manual_rate(self, rate: ManualRate, actor: str) -> list[str]:
        """Store a manual rate with its audit row; it prices the deposits waiting for one.

        One statement picks the waiting deposits and prices them, so a watcher writing the
        same rows concurrently cannot undo it (the upsert keeps a rate once set).
        """
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE deposits SET rate_nano_usd = %s, rate_source = 'manual',"
                " updated_at = now() WHERE asset = %s AND rate_nano_usd IS NULL"
                " AND state IN ('detected', 'orphaned') RETURNING deposit_id",
                (rate.rate_nano_usd, rate.asset.value),
            )
            priced = sorted(str(row[0]) for row in await cur.fetchall())
            await conn.execute(
                "INSERT INTO manual_rates (asset, rate_nano_usd, actor, set_at, priced_deposits)"
                " VALUES (%s, %s, %s, %s, %s)",
                (rate.asset.value, rate.rate_nano_usd, actor, rate.set_at, priced),
            )
        return priced


async def credit_published(conn: AsyncConnection[Any], rows: Sequence[OutboxRow]) -> None:
    """The outbox's after-publish hook: a confirmed deposit whose credit event left is now
    ``credited`` (in the transaction that marks the rows published)."""
    ids = [row.id for row in rows if row.subject == DepositConfirmed.subject]
    if not ids:
        return
    await conn.execute(
        "UPDATE deposits SET state = 'credited', updated_at = now()"
        " WHERE state = 'confirmed' AND deposit_id IN"
        " (SELECT deposit_id FROM outbox WHERE id = ANY(%s) AND deposit_id IS NOT NULL)",
        (ids,),
    )


async def _save_cursor(conn: AsyncConnection[Any], name: str, blocks: Sequence[BlockRef]) -> None:
    document = json.dumps([[block.number, block.hash] for block in blocks])
    await conn.execute(
        "INSERT INTO cursors (name, blocks) VALUES (%s, %s::jsonb)"
        " ON CONFLICT (name) DO UPDATE SET blocks = EXCLUDED.blocks, updated_at = now()",
        (name, document),
    )


async def _upsert_deposits(conn: AsyncConnection[Any], records: Sequence[AccountDeposit]) -> None:
    if not records:
        return
    rows = [
        (
            d.key.network.value,
            d.key.asset.value,
            d.key.tx_hash,
            d.key.position,
            record.account_id,
            d.address,
            d.amount,
            d.state.value,
            d.first_seen_at,
            d.block_number,
            d.block_hash,
            d.confirmations,
            d.rate_nano_usd,
            d.rate_source,
            d.usd_nano,
            d.decimals,
        )
        for record in records
        for d in (record.deposit,)
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            sql.SQL(
                "INSERT INTO deposits ({}) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (network, asset, tx_hash, position) DO UPDATE SET"
                # The relay may have credited the deposit since this record was read: a credit
                # never goes back to confirmed. A rate, once set, is the rate (first sight or
                # the operator's), whatever a concurrent writer read before it was set.
                " state = CASE WHEN deposits.state = 'credited' AND EXCLUDED.state = 'confirmed'"
                " THEN 'credited' ELSE EXCLUDED.state END,"
                " block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash,"
                " confirmations = EXCLUDED.confirmations,"
                " rate_nano_usd = coalesce(deposits.rate_nano_usd, EXCLUDED.rate_nano_usd),"
                " rate_source = coalesce(deposits.rate_source, EXCLUDED.rate_source),"
                " usd_nano = coalesce(EXCLUDED.usd_nano, deposits.usd_nano), updated_at = now()"
            ).format(_DEPOSIT_COLUMNS),
            rows,
        )


async def _add_to_outbox(conn: AsyncConnection[Any], events: Sequence[Event]) -> None:
    if not events:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO outbox (event_id, subject, payload, deposit_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            [
                (event.event_id, event.subject, event.to_json(), getattr(event, "deposit_id", None))
                for event in events
            ],
        )


class PostgresCursorStore:
    """The Ethereum watcher's `CursorStore` in PostgreSQL.

    `save()` only stages the blocks: the watch cycle writes them with `commit_watch`, in the
    transaction that records the deposits those blocks revealed. Saving them on their own
    would let a crash in between advance the cursor past transfers nobody recorded.
    """

    def __init__(self, repository: Repository, name: str) -> None:
        self._repository = repository
        self.name = name
        self._staged: list[BlockRef] | None = None

    async def load(self) -> list[BlockRef]:
        if self._staged is not None:
            return list(self._staged)
        return await self._repository.load_cursor(self.name)

    async def save(self, blocks: Sequence[BlockRef]) -> None:
        self._staged = list(blocks)

    def staged(self) -> tuple[str, list[BlockRef]] | None:
        return None if self._staged is None else (self.name, list(self._staged))

    def discard(self) -> None:
        """The cycle's transaction failed: forget the staged blocks, reload from the table."""
        self._staged = None
