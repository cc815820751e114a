"""Settlement's part for leases: each usage event admitted under a lease releases its share.

Runs inside the settlement transaction, after the batch's accounts were locked (in id order); the
batch's lease rows are locked next, in lease id order, so settlement, close and the sweeper take
their locks in one order. Only events recorded for the first time reach this, so a redelivered
event never releases twice. A lease that expired (or one never heard of) releases nothing: its
money went back to the account already, and the event still bills in full.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiapi_shared.events import UsageRecorded

from aiapi_billing import leasing
from aiapi_billing.ledger import Conn
from aiapi_billing.postings import Released

_LOCK = (
    "SELECT l.lease_id, l.state, l.open_amount, l.settled_reserved, l.settled_count, l.admitted"
    " FROM leases l JOIN unnest(%s::text[], %s::text[]) AS s(lease_id, account_id)"
    "   ON l.lease_id = s.lease_id AND l.account_id = s.account_id"
    " ORDER BY l.lease_id FOR UPDATE OF l"
)
_WRITE = (
    "UPDATE leases l SET state = w.state, open_amount = w.open_amount,"
    " settled_reserved = w.settled_reserved, settled_count = w.settled_count"
    " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[])"
    "   AS w(lease_id, state, open_amount, settled_reserved, settled_count)"
    " WHERE l.lease_id = w.lease_id"
)


async def release_leases(conn: Conn, events: Sequence[UsageRecorded]) -> dict[str, Released]:
    """Lock the events' leases, release each event's share in batch order, write the leases back;
    returns what each event released (by request id), for ``postings.post``."""
    # A request with its own hold was admitted per request: its hold is what it releases.
    under = [e for e in events if e.lease_id is not None and e.hold_id is None]
    if not under:
        return {}
    pairs = sorted({(str(e.lease_id), e.account_id) for e in under})
    cur = await conn.execute(_LOCK, ([p[0] for p in pairs], [p[1] for p in pairs]))
    tallies = {
        str(r[0]): leasing.Tally(
            r[1], int(r[2]), int(r[3]), int(r[4]), None if r[5] is None else int(r[5])
        )
        for r in await cur.fetchall()
    }
    released: dict[str, Released] = {}
    touched: set[str] = set()
    for event in under:
        lease_id = str(event.lease_id)
        tally = tallies.get(lease_id)
        if tally is None or tally.state == "expired":
            continue
        tallies[lease_id], amount = leasing.settle_event(tally, event.lease_reserved)
        released[event.request_id] = Released(amount, event.lease_tokens)
        touched.add(lease_id)
    if touched:
        ids = sorted(touched)
        await conn.execute(
            _WRITE,
            (
                ids,
                [tallies[i].state for i in ids],
                [tallies[i].open_amount for i in ids],
                [tallies[i].settled_reserved for i in ids],
                [tallies[i].settled_count for i in ids],
            ),
        )
    return released
