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

from aiapi_billing import lease_rules
from aiapi_billing.postings import Released
from aiapi_billing.repository import Conn, leases


async def release_leases(conn: Conn, events: Sequence[UsageRecorded]) -> dict[str, Released]:
    """Lock the events' leases, release each event's share in batch order, write the leases back;
    returns what each event released (by request id), for ``postings.post``."""
    # A request with its own hold was admitted per request: its hold is what it releases.
    under = [e for e in events if e.lease_id is not None and e.hold_id is None]
    if not under:
        return {}
    tallies = await leases.lock_tallies(
        conn, sorted({(str(e.lease_id), e.account_id) for e in under})
    )
    released: dict[str, Released] = {}
    touched: set[str] = set()
    for event in under:
        lease_id = str(event.lease_id)
        tally = tallies.get(lease_id)
        if tally is None or tally.state == "expired":
            continue
        tallies[lease_id], amount = lease_rules.settle_event(tally, event.lease_reserved)
        released[event.request_id] = Released(amount, event.lease_tokens)
        touched.add(lease_id)
    await leases.write_tallies(conn, {lease_id: tallies[lease_id] for lease_id in touched})
    return released
