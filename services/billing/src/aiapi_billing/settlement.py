"""Settlement: each usage event debits its cost exactly once and releases its hold.

The event id (= request id) is the primary key of ``usage_records``, written in the same
transaction as the debit: a redelivery finds its own record and does nothing; the same id with
different content is set aside in ``usage_conflicts`` for an operator and never billed twice.
A hold that already expired is simply not released again; the event still bills in full.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events import RequestPriced, UsageRecorded

from aiapi_billing import pricing, ratelimit
from aiapi_billing.errors import UnpricedModel
from aiapi_billing.ledger import (
    REVENUE,
    Conn,
    TransferSpec,
    apply_totals,
    insert_transfer,
    lock_account,
    queue_events,
)
from aiapi_billing.notices import balance_events
from aiapi_billing.prices import PriceBook, prices_of

Outcome = str  # "settled" | "duplicate" | "conflict"


def content_hash(event: UsageRecorded) -> str:
    """A digest of what the event says (as this version of the contract reads it)."""
    canonical = json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class PriceMemo:
    """The price table as read inside one transaction, one query per model (batches reuse it)."""

    def __init__(self) -> None:
        self._books: dict[str, PriceBook] = {}

    async def price_at(self, conn: Conn, model: str, moment: datetime) -> pricing.Price | None:
        book = self._books.get(model)
        if book is None:
            book = PriceBook()
            book.load(await prices_of(conn, model))
            self._books[model] = book
        return book.price_at(model, moment)


@dataclass(frozen=True)
class Settler:
    catalogue: Catalogue
    low_threshold: int

    async def settle(
        self, conn: Conn, event: UsageRecorded, prices: PriceMemo | None = None
    ) -> Outcome:
        """Run inside the caller's transaction; the caller commits, then acks."""
        digest = content_hash(event)
        memo = prices or PriceMemo()
        price = await memo.price_at(conn, event.model, event.started_at)
        if price is None:
            raise UnpricedModel(f"{event.model} has no price at {event.started_at.isoformat()}")
        plan = self.catalogue.plan(event.plan)
        cost = pricing.cost_nano(
            event.usage,
            price,
            discount_bps=plan.discount_bps,
            multipliers=self.catalogue.cache_multipliers_bps,
        )
        account = await lock_account(conn, event.account_id)
        if not await self._record(conn, event, digest, cost, price):
            return await self._duplicate(conn, event, digest)
        cur = await conn.execute(
            "UPDATE holds SET state = 'settled', closed_at = now()"
            " WHERE request_id = %s AND account_id = %s AND state = 'open'"
            " RETURNING amount, rate_tokens",
            (event.request_id, event.account_id),
        )
        released = await cur.fetchone()
        hold_amount, estimated = (int(released[0]), int(released[1])) if released else (0, 0)
        if cost > 0:
            spec = TransferSpec(
                key=f"usage:{event.request_id}",
                kind="usage",
                account_id=event.account_id,
                amount=-cost,
                counterpart=REVENUE,
                reference=event.request_id,
                memo=event.model,
            )
            await insert_transfer(conn, spec, account.totals.balance - cost)
        correction = ratelimit.token_correction_us(
            pricing.rate_tokens(event.usage), estimated, plan.tokens_per_minute
        )
        after = await apply_totals(conn, event.account_id, debit=cost, hold_delta=-hold_amount)
        if correction and released:
            await conn.execute(
                "UPDATE accounts SET tpm_tat_us = tpm_tat_us + %s WHERE account_id = %s",
                (correction, event.account_id),
            )
        priced = RequestPriced(
            request_id=event.request_id,
            account_id=event.account_id,
            model=event.model,
            started_at=event.started_at,
            usage=event.usage,
            cost=cost,
            price_effective_from=price.effective_from,
        )
        notices = balance_events(
            event.account_id,
            account.totals,
            after,
            cause="usage",
            low_threshold=self.low_threshold,
        )
        await queue_events(conn, [priced, *notices])
        return "settled"

    async def _record(
        self, conn: Conn, event: UsageRecorded, digest: str, cost: int, price: pricing.Price
    ) -> bool:
        u = event.usage
        cur = await conn.execute(
            "INSERT INTO usage_records (request_id, account_id, key_id, model, plan, route,"
            " outcome, status_code, started_at, finished_at, input_tokens, output_tokens,"
            " cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, thinking_tokens,"
            " cost, price_id, price_effective_from, hold_id, content_hash) VALUES (%s, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (request_id) DO NOTHING RETURNING 1",
            (event.request_id, event.account_id, event.key_id, event.model, event.plan,
             event.route, event.outcome, event.status_code, event.started_at, event.finished_at,
             u.input_tokens, u.output_tokens, u.cache_read_input_tokens,
             u.cache_creation_5m_input_tokens, u.cache_creation_1h_input_tokens,
             u.thinking_tokens, cost, price.price_id, price.effective_from, event.hold_id,
             digest),
        )  # fmt: skip
        return await cur.fetchone() is not None

    async def _duplicate(self, conn: Conn, event: UsageRecorded, digest: str) -> Outcome:
        cur = await conn.execute(
            "SELECT content_hash FROM usage_records WHERE request_id = %s", (event.request_id,)
        )
        row = await cur.fetchone()
        if row is not None and row[0] == digest:
            return "duplicate"
        await conn.execute(
            "INSERT INTO usage_conflicts (request_id, content_hash, payload) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (event.request_id, digest, event.model_dump_json()),
        )
        return "conflict"
