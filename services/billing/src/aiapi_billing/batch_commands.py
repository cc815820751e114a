"""Message Batches: the hold when a batch opens, the records the edge reads, the tracker's
claims, and the settlement that bills each succeeded request once and releases the hold.

Each command runs in one transaction and locks the account row before the batch row (the lock
order of ``repository/accounts.py``). Settlement is idempotent twice over: the batch row leaves
``in_progress`` in the same transaction that bills it, and each request's usage record has its
own key (``batch_rules.item_request_id``), so two replicas settling the same batch at once bill
it once: the second waits on the row lock and finds it settled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiapi_shared import batches_api as api
from aiapi_shared.pricing import UnpricedMeter
from psycopg_pool import AsyncConnectionPool

from aiapi_billing import batch_rules
from aiapi_billing.errors import BillingError, NotFound, UnpricedModel
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.price_book import PriceBook
from aiapi_billing.repository import Conn, accounts, batches, holds, prices, usage
from aiapi_billing.rpc import _handler
from aiapi_billing.settlement import Settler

Handler = Callable[[bytes], Awaitable[bytes]]


class BatchCommands:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        catalogue: LiveCatalogue,
        settler: Settler,
        after_commit: Callable[[str], None],
        *,
        hold_ttl_s: int,
        opening_timeout_s: float,
    ) -> None:
        self._pool = pool
        self._catalogue = catalogue
        self._settler = settler
        self._after_commit = after_commit
        self._hold_ttl = timedelta(seconds=hold_ttl_s)
        self._opening_timeout_s = opening_timeout_s

    async def open(self, cmd: api.BatchOpenCommand) -> api.BatchOpenReply:
        """Stage a chunk of the batch's requests; with the final one, hold the worst case of
        them all at the batch price if the available balance covers it."""
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            account = await accounts.lock_account(conn, cmd.account_id)
            if account.status != "active":
                return api.BatchOpenReply(
                    decision="account_inactive", message="the account is suspended"
                )
            await batches.stage(
                conn,
                batch_id=cmd.batch_id,
                account_id=cmd.account_id,
                key_id=cmd.key_id,
                plan=cmd.plan,
                items=cmd.items,
                started_at=cmd.started_at,
            )
            if not cmd.final:
                return api.BatchOpenReply(decision="staged")
            locked = await batches.lock(conn, cmd.batch_id)
            if locked is None or locked[0].account_id != cmd.account_id:
                raise NotFound(f"no batch {cmd.batch_id}")
            record, stored = locked
            available = account.totals.balance - account.totals.holds
            if record.state != "staging":  # a retried final chunk: the hold is there already
                return api.BatchOpenReply(
                    decision="admit", hold_amount=record.hold_amount, available=available
                )
            items = batches.stored_items(stored)
            if len(items) != cmd.total_items:
                raise BillingError(f"{len(items)} requests staged, {cmd.total_items} announced")
            refusal, amount = await self._hold_for(conn, record, items, available)
            if refusal is not None:
                await batches.discard(conn, cmd.batch_id)
                return refusal
            await holds.open_hold(
                conn,
                request_id=cmd.batch_id,
                account_id=cmd.account_id,
                model=items[0].model,
                plan=cmd.plan,
                started_at=cmd.started_at,
                amount=amount,
                ttl=self._hold_ttl,
            )
            await accounts.hold_more(conn, cmd.account_id, amount)
            await batches.hold_taken(conn, cmd.batch_id, amount)
        self._after_commit(cmd.account_id)
        return api.BatchOpenReply(
            decision="admit", hold_amount=amount, available=available - amount
        )

    async def _hold_for(
        self,
        conn: Conn,
        record: api.BatchRecord,
        items: list[api.BatchItemAsk],
        available: int,
    ) -> tuple[api.BatchOpenReply | None, int]:
        """The batch's worst case, or the refusal when it has no price or is not covered."""
        amount = await self._worst_case(conn, record, items)
        if amount is None:
            message = "the batch price is not in the catalogue"
            return api.BatchOpenReply(decision="unpriced", message=message), 0
        if available < amount:
            return api.BatchOpenReply(
                decision="insufficient_balance",
                available=available,
                message="the balance cannot cover this batch",
            ), 0
        return None, amount

    async def _worst_case(
        self, conn: Conn, record: api.BatchRecord, items: list[api.BatchItemAsk]
    ) -> int | None:
        book = PriceBook()
        table, windows, version = await prices.prices_and_windows(
            conn, sorted({item.model for item in items})
        )
        book.load(table)
        catalogue = await self._catalogue.fresh(conn, version)
        discount = catalogue.terms(record.plan, record.account_id, record.started_at).discount_bps
        total = 0
        for item in items:
            price = book.price_at(item.model, record.started_at)
            if price is None:
                return None
            try:
                total += batch_rules.item_hold(
                    item,
                    price,
                    catalogue=catalogue,
                    discount_bps=discount,
                    moment=record.started_at,
                    context_window=windows.get(item.model, 0),
                )
            except UnpricedMeter:
                return None
        return total

    async def bind(self, cmd: api.BatchBindCommand) -> api.BatchRecord:
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            await batches.bind(conn, cmd.batch_id, cmd.upstream_id, cmd.upstream_key, cmd.snapshot)
            locked = await batches.lock(conn, cmd.batch_id)
        if locked is None:
            raise NotFound(f"no batch {cmd.batch_id}")
        return locked[0]

    async def abandon(self, cmd: api.BatchAbandonCommand) -> api.BatchSettleReply:
        """Release the hold of a batch the upstream never took; nothing is billed."""
        async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
            account_id = await self._release(conn, cmd.batch_id, {"staging", "opening"}, "failed")
        if account_id is not None:
            self._after_commit(account_id)
        return api.BatchSettleReply(billed_items=0, cost=0, already_settled=account_id is None)

    async def _release(
        self, conn: Conn, batch_id: str, from_states: set[str], to_state: str
    ) -> str | None:
        """Close the batch's hold and move it to ``to_state``; None when it was not in one of
        ``from_states`` (already done)."""
        account_id = await batches.account_of(conn, batch_id)
        if account_id is None:
            raise NotFound(f"no batch {batch_id}")
        await accounts.lock_account(conn, account_id)
        locked = await batches.lock(conn, batch_id)
        assert locked is not None
        if locked[0].state not in from_states:
            return None
        await self._release_hold(conn, locked[0])
        await batches.finish(conn, batch_id, to_state)
        return account_id

    async def get(self, q: api.BatchQuery) -> api.BatchRecord:
        async with self._pool.connection(timeout=2.0) as conn:
            record = await batches.find(conn, q.account_id, q.batch_id)
        if record is None:
            raise NotFound(f"message_batch: {q.batch_id} not found")
        return record

    async def page(self, q: api.BatchListQuery) -> api.BatchListReply:
        async with self._pool.connection(timeout=2.0) as conn:
            data, more = await batches.page(conn, q.account_id, q.limit, q.before_id, q.after_id)
        return api.BatchListReply(data=data, has_more=more)

    async def delete(self, cmd: api.BatchDeleteCommand) -> api.BatchRecord:
        async with self._pool.connection(timeout=2.0) as conn, conn.transaction():
            record = await batches.find(conn, cmd.account_id, cmd.batch_id)
            if record is None or not await batches.mark_deleted(conn, cmd.account_id, cmd.batch_id):
                raise NotFound(f"message_batch: {cmd.batch_id} not found")
        return record

    async def claim(self, cmd: api.BatchClaimCommand) -> api.BatchListReply:
        """Abandon batches stuck before the upstream, then lease due ones to this edge."""
        async with self._pool.connection(timeout=5.0) as conn:
            async with conn.transaction():
                stale = await batches.stale_openings(conn, self._opening_timeout_s, cmd.limit)
            for batch_id in stale:
                await self.abandon(api.BatchAbandonCommand(batch_id=batch_id, reason="stale"))
            async with conn.transaction():
                data = await batches.claim(
                    conn, cmd.edge_id, cmd.upstream_keys, cmd.limit, cmd.lease_s
                )
        return api.BatchListReply(data=data)

    async def update(self, cmd: api.BatchUpdateCommand) -> api.BatchSettleReply:
        async with self._pool.connection(timeout=2.0) as conn, conn.transaction():
            await batches.refresh(conn, cmd.batch_id, cmd.snapshot, cmd.next_poll_s)
        return api.BatchSettleReply(billed_items=0, cost=0)

    async def settle(self, cmd: api.BatchSettleCommand) -> api.BatchSettleReply:
        """Bill each succeeded request of a chunk of results once; the final chunk also releases
        the hold and marks the batch ended, in the same transaction. A request whose model or
        meter has no price fails the chunk (the tracker tries again), never bills it at zero."""
        async with self._pool.connection(timeout=10.0) as conn, conn.transaction():
            account_id = await batches.account_of(conn, cmd.batch_id)
            if account_id is None:
                raise NotFound(f"no batch {cmd.batch_id}")
            await accounts.lock_account(conn, account_id)
            locked = await batches.lock(conn, cmd.batch_id)
            assert locked is not None
            record, models = locked
            if record.state != "in_progress":
                return api.BatchSettleReply(billed_items=0, cost=record.cost, already_settled=True)
            events = batch_rules.item_events(record, models, cmd.results, datetime.now(UTC))
            outcome = await self._settler.settle_batch(conn, events)
            unpriced = [o for o in outcome.outcomes if isinstance(o, UnpricedModel)]
            if unpriced:
                raise BillingError(str(unpriced[0]))
            billed, cost = await usage.cost_under(
                conn, batch_rules.item_request_id(cmd.batch_id, "")
            )
            if cmd.final:
                await self._release_hold(conn, record)
                await batches.finish(
                    conn, cmd.batch_id, "ended", snapshot=cmd.snapshot, cost=cost,
                    billed_items=billed,
                )  # fmt: skip
        self._after_commit(account_id)
        return api.BatchSettleReply(billed_items=billed, cost=cost)

    @staticmethod
    async def _release_hold(conn: Conn, record: api.BatchRecord) -> None:
        released = await holds.settle_holds(conn, [record.batch_id], [record.account_id])
        held = sum(r.amount for r in released.values())
        if held:  # an expired hold was released by the sweeper already
            await accounts.apply_totals(conn, record.account_id, hold_delta=-held)


def batch_routes(commands: BatchCommands) -> list[tuple[str, Handler]]:
    """The request/reply subjects of ``aiapi_shared.batches_api`` and their handlers."""
    return [
        (api.BATCH_OPEN_SUBJECT, _handler(api.BatchOpenCommand, commands.open)),
        (api.BATCH_BIND_SUBJECT, _handler(api.BatchBindCommand, commands.bind)),
        (api.BATCH_ABANDON_SUBJECT, _handler(api.BatchAbandonCommand, commands.abandon)),
        (api.BATCH_GET_SUBJECT, _handler(api.BatchQuery, commands.get)),
        (api.BATCH_LIST_SUBJECT, _handler(api.BatchListQuery, commands.page)),
        (api.BATCH_CLAIM_SUBJECT, _handler(api.BatchClaimCommand, commands.claim)),
        (api.BATCH_UPDATE_SUBJECT, _handler(api.BatchUpdateCommand, commands.update)),
        (api.BATCH_SETTLE_SUBJECT, _handler(api.BatchSettleCommand, commands.settle)),
        (api.BATCH_DELETE_SUBJECT, _handler(api.BatchDeleteCommand, commands.delete)),
    ]
