"""Settlement: each usage event debits its cost exactly once and releases its hold.

A fetched batch is settled in one transaction with a handful of statements, whatever its size:
lock the batch's accounts (in id order), insert every usage record at once, release the holds of
those that were new, post their transfers, move each account's totals once, queue the events.

The event id (= request id) is the primary key of ``usage_records``, written in the same
transaction as the debit: a record that already exists (a redelivery, or the same id twice in one
batch) is not inserted again, and only the inserted ones are billed. The same id with different
content is set aside in ``usage_conflicts`` for an operator and never billed twice. A hold that
already expired is simply not released again; the event still bills in full. An event admitted
under a lease releases its reserved share of the lease instead (``lease_settlement.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events import UsageRecorded

from aiapi_billing import pricing
from aiapi_billing.errors import UnpricedModel
from aiapi_billing.lease_settlement import release_leases
from aiapi_billing.ledger import Conn, insert_transfers, lock_accounts, move_totals, queue_events
from aiapi_billing.notices import Totals
from aiapi_billing.postings import Released, SettledEvent, announcements, post
from aiapi_billing.prices import PriceBook, prices_of_models

Outcome = str  # "settled" | "duplicate" | "conflict"


def content_hash(event: UsageRecorded) -> str:
    """A digest of what the event says (as this version of the contract reads it)."""
    canonical = json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class _Candidate:
    index: int  # the event's place in the batch
    event: UsageRecorded
    digest: str
    cost: int
    price: pricing.Price


@dataclass
class BatchResult:
    """One outcome per event of the batch, in order: an Outcome, or UnpricedModel (retry later)."""

    outcomes: list[Outcome | UnpricedModel]
    accounts: set[str] = field(default_factory=set)


_INSERT_RECORDS = (
    "INSERT INTO usage_records (request_id, account_id, key_id, model, plan, route, outcome,"
    " status_code, started_at, finished_at, input_tokens, output_tokens, cache_read_tokens,"
    " cache_write_5m_tokens, cache_write_1h_tokens, thinking_tokens, cost, price_id,"
    " price_effective_from, hold_id, content_hash)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::int[], %s::timestamptz[], %s::timestamptz[], %s::bigint[],"
    " %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],"
    " %s::bigint[], %s::timestamptz[], %s::text[], %s::text[])"
    " ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
)


def _record_row(c: _Candidate) -> tuple[Any, ...]:
    e, u = c.event, c.event.usage
    return (e.request_id, e.account_id, e.key_id, e.model, e.plan, e.route, e.outcome,
            e.status_code, e.started_at, e.finished_at, u.input_tokens, u.output_tokens,
            u.cache_read_input_tokens, u.cache_creation_5m_input_tokens,
            u.cache_creation_1h_input_tokens, u.thinking_tokens, c.cost, c.price.price_id,
            c.price.effective_from, e.hold_id, c.digest)  # fmt: skip


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


@dataclass(frozen=True)
class Settler:
    catalogue: Catalogue
    low_threshold: int

    async def settle_batch(self, conn: Conn, events: Sequence[UsageRecorded]) -> BatchResult:
        """Settle ``events`` inside the caller's transaction; the caller commits, then acks."""
        result = BatchResult(outcomes=["duplicate"] * len(events))
        candidates, extras = await self._price(conn, events, result)
        if not candidates:
            return result
        accounts = await lock_accounts(conn, [c.event.account_id for c in candidates])
        inserted = await self._insert_records(conn, candidates)
        stored = await self._stored_digests(
            conn, [c.event.request_id for c in candidates if c.event.request_id not in inserted]
        )
        for c in candidates:
            if c.event.request_id not in inserted:
                result.outcomes[c.index] = self._compare(c, stored)
            else:
                result.outcomes[c.index] = "settled"
                stored[c.event.request_id] = c.digest
        for c in extras:  # the same id again in this batch: compared with what was kept
            result.outcomes[c.index] = self._compare(c, stored)
        await self._set_aside(conn, [c for c in [*candidates, *extras]
                                     if result.outcomes[c.index] == "conflict"])  # fmt: skip
        fresh = [c for c in candidates if c.event.request_id in inserted]
        if fresh:
            await self._bill(conn, fresh, {a: row.totals for a, row in accounts.items()})
            result.accounts = {c.event.account_id for c in fresh}
        return result

    async def _price(
        self, conn: Conn, events: Sequence[UsageRecorded], result: BatchResult
    ) -> tuple[list[_Candidate], list[_Candidate]]:
        """Price every event (the price table as this transaction reads it). The first event of
        each request id is a candidate for settlement; later ones with that id are extras."""
        book = PriceBook()
        book.load(await prices_of_models(conn, sorted({e.model for e in events})))
        candidates: list[_Candidate] = []
        extras: list[_Candidate] = []
        seen: set[str] = set()
        for index, event in enumerate(events):
            price = book.price_at(event.model, event.started_at)
            if price is None:
                moment = event.started_at.isoformat()
                result.outcomes[index] = UnpricedModel(f"{event.model} has no price at {moment}")
                continue
            cost = pricing.cost_nano(
                event.usage,
                price,
                discount_bps=self.catalogue.plan(event.plan).discount_bps,
                multipliers=self.catalogue.cache_multipliers_bps,
            )
            candidate = _Candidate(index, event, content_hash(event), cost, price)
            (extras if event.request_id in seen else candidates).append(candidate)
            seen.add(event.request_id)
        return candidates, extras

    async def _insert_records(self, conn: Conn, candidates: list[_Candidate]) -> set[str]:
        rows = [_record_row(c) for c in candidates]
        cur = await conn.execute(_INSERT_RECORDS, _columns(rows, 21))
        return {str(r[0]) for r in await cur.fetchall()}

    async def _stored_digests(self, conn: Conn, request_ids: list[str]) -> dict[str, str]:
        if not request_ids:
            return {}
        cur = await conn.execute(
            "SELECT request_id, content_hash FROM usage_records WHERE request_id = ANY(%s)",
            (request_ids,),
        )
        return {str(r[0]): str(r[1]) for r in await cur.fetchall()}

    @staticmethod
    def _compare(c: _Candidate, stored: dict[str, str]) -> Outcome:
        return "duplicate" if stored.get(c.event.request_id) == c.digest else "conflict"

    async def _set_aside(self, conn: Conn, conflicts: list[_Candidate]) -> None:
        if not conflicts:
            return
        await conn.execute(
            "INSERT INTO usage_conflicts (request_id, content_hash, payload)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[]) ON CONFLICT DO NOTHING",
            (
                [c.event.request_id for c in conflicts],
                [c.digest for c in conflicts],
                [c.event.model_dump_json() for c in conflicts],
            ),
        )

    async def _bill(self, conn: Conn, fresh: list[_Candidate], before: dict[str, Totals]) -> None:
        """Release the holds and leases' shares, post the transfers, move the totals, queue the
        events."""
        cur = await conn.execute(
            "UPDATE holds h SET state = 'settled', closed_at = now()"
            " FROM unnest(%s::text[], %s::text[]) AS s(request_id, account_id)"
            " WHERE h.request_id = s.request_id AND h.account_id = s.account_id"
            " AND h.state = 'open' RETURNING h.request_id, h.amount, h.rate_tokens",
            ([c.event.request_id for c in fresh], [c.event.account_id for c in fresh]),
        )
        released = {str(r[0]): Released(int(r[1]), int(r[2])) for r in await cur.fetchall()}
        for request_id, share in (await release_leases(conn, [c.event for c in fresh])).items():
            # Only a request that somehow has both a hold and a lease share releases both.
            hold = released.get(request_id, Released(0, 0))
            released[request_id] = Released(
                hold.amount + share.amount, hold.rate_tokens + share.rate_tokens
            )
        settled = [
            SettledEvent(c.event, c.cost, c.price, released.get(c.event.request_id)) for c in fresh
        ]
        postings = post(settled, before, self.catalogue)
        await insert_transfers(conn, postings.transfers)
        after = await move_totals(conn, postings.moves)
        await queue_events(
            conn,
            announcements(
                settled,
                {a: before[a] for a in after},
                after,
                low_threshold=self.low_threshold,
            ),
        )
