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

import orjson
from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events import UsageRecorded
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.outbox import OutboxRow
from aiapi_shared.pricing import UnpricedMeter, request_cost

from aiapi_billing import pricing
from aiapi_billing.errors import UnpricedModel
from aiapi_billing.lease_settlement import release_leases
from aiapi_billing.live_catalogue import LiveCatalogue
from aiapi_billing.notices import Totals
from aiapi_billing.postings import Released, SettledEvent, announcements, post
from aiapi_billing.price_book import PriceBook
from aiapi_billing.repository import Conn, accounts, holds, outbox, prices, transfers, usage

Outcome = str  # "settled" | "duplicate" | "conflict"


_ADDED_USAGE_DEFAULTS = Usage().model_dump(
    include={"web_search_requests", "web_fetch_requests", "service_tier", "inference_geo", "speed"}
)


def content_hash(event: UsageRecorded) -> str:
    """A digest of what the event says (as this version of the contract reads it). Usage fields
    added later are left out while at their defaults, so a redelivered older event keeps its
    digest."""
    # What model_dump(mode="json") gives, by pydantic's JSON serialiser (twice as fast).
    payload = orjson.loads(event.model_dump_json())
    usage = payload["usage"]
    for name, default in _ADDED_USAGE_DEFAULTS.items():
        if usage.get(name) == default:
            del usage[name]
    # The digest is of json.dumps(payload, sort_keys=True, separators=(",", ":")) as it always
    # was (records settled by earlier versions keep theirs). orjson writes the same bytes for
    # text below 0x7F, ten times faster; json.dumps escapes anything else (\uXXXX), so such an
    # event takes the slow way.
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    if not canonical.isascii() or b"\x7f" in canonical:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class _Candidate:
    index: int  # the event's place in the batch
    event: UsageRecorded
    digest: str
    cost: int
    price: pricing.Price
    list_cost: int  # the upstream's list price of the usage, before the plan's discount


@dataclass
class BatchResult:
    """One outcome per event of the batch, in order: an Outcome, or UnpricedModel (retry later);
    and what the transaction wrote that its commit makes true: each billed account's totals as
    the settlement left them (its balance snapshot, no need to read them back) and the outbox
    rows it queued (handed to the relay, no need to claim them back)."""

    outcomes: list[Outcome | UnpricedModel]
    accounts: set[str] = field(default_factory=set)
    totals: dict[str, Totals] = field(default_factory=dict)
    queued: list[OutboxRow] = field(default_factory=list)


@dataclass(frozen=True)
class Settler:
    catalogue: LiveCatalogue
    low_threshold: int

    async def settle_batch(self, conn: Conn, events: Sequence[UsageRecorded]) -> BatchResult:
        """Settle ``events`` inside the caller's transaction; the caller commits, then acks."""
        result = BatchResult(outcomes=["duplicate"] * len(events))
        candidates, extras, catalogue = await self._price(conn, events, result)
        if not candidates:
            return result
        locked = await accounts.lock_accounts(conn, [c.event.account_id for c in candidates])
        inserted = await usage.insert_records(conn, candidates)
        stored = await usage.stored_digests(
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
        await usage.set_aside(conn, [c for c in [*candidates, *extras]
                                     if result.outcomes[c.index] == "conflict"])  # fmt: skip
        fresh = [c for c in candidates if c.event.request_id in inserted]
        if fresh:
            result.totals, result.queued = await self._bill(
                conn, catalogue, fresh, {a: r.totals for a, r in locked.items()}
            )
            result.accounts = {c.event.account_id for c in fresh}
        return result

    async def _price(
        self, conn: Conn, events: Sequence[UsageRecorded], result: BatchResult
    ) -> tuple[list[_Candidate], list[_Candidate], Catalogue]:
        """Price every event (the price table and the terms as this transaction reads them:
        each event by the versions in force when it started, so a change made since its
        admission leaves its price alone). The first event of each request id is a candidate
        for settlement; later ones with that id are extras."""
        book = PriceBook()
        models = sorted({e.model for e in events})
        table, windows, version = await prices.prices_and_windows(conn, models)
        catalogue = await self.catalogue.fresh(conn, version)
        book.load(table)
        candidates: list[_Candidate] = []
        extras: list[_Candidate] = []
        seen: set[str] = set()
        for index, event in enumerate(events):
            price = book.price_at(event.model, event.started_at)
            if price is None:
                moment = event.started_at.isoformat()
                result.outcomes[index] = UnpricedModel(f"{event.model} has no price at {moment}")
                continue
            try:
                cost = request_cost(
                    event.usage,
                    price,
                    catalogue=catalogue,
                    discount_bps=catalogue.terms(
                        event.plan, event.account_id, event.started_at
                    ).discount_bps,
                    moment=event.started_at,
                    context_window=windows.get(event.model, 0),
                )
            except UnpricedMeter as exc:  # the operator prices it; the event waits, never lost
                moment = event.started_at.isoformat()
                result.outcomes[index] = UnpricedModel(f"meter {exc} has no price at {moment}")
                continue
            candidate = _Candidate(
                index, event, content_hash(event), cost.cost, price, cost.list_cost
            )
            (extras if event.request_id in seen else candidates).append(candidate)
            seen.add(event.request_id)
        return candidates, extras, catalogue

    @staticmethod
    def _compare(c: _Candidate, stored: dict[str, str]) -> Outcome:
        return "duplicate" if stored.get(c.event.request_id) == c.digest else "conflict"

    async def _bill(
        self,
        conn: Conn,
        catalogue: Catalogue,
        fresh: list[_Candidate],
        before: dict[str, Totals],
    ) -> tuple[dict[str, Totals], list[OutboxRow]]:
        """Release the holds and leases' shares, post the transfers, move the totals, queue the
        events; returns the totals after and the outbox rows."""
        released = await holds.settle_holds(
            conn, [c.event.request_id for c in fresh], [c.event.account_id for c in fresh]
        )
        for request_id, share in (await release_leases(conn, [c.event for c in fresh])).items():
            # Only a request that somehow has both a hold and a lease share releases both.
            hold = released.get(request_id, Released(0, 0))
            released[request_id] = Released(
                hold.amount + share.amount, hold.rate_tokens + share.rate_tokens
            )
        settled = [
            SettledEvent(c.event, c.cost, c.price, released.get(c.event.request_id)) for c in fresh
        ]
        postings = post(settled, before, catalogue)
        await transfers.insert_transfers(conn, postings.transfers)
        after = await accounts.move_totals(conn, postings.moves)
        queued = await outbox.queue_events(
            conn,
            announcements(
                settled,
                {a: before[a] for a in after},
                after,
                low_threshold=self.low_threshold,
            ),
        )
        return after, queued
