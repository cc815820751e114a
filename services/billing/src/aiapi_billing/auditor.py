"""The auditor: the ledger's invariants, checked from the tables alone.

* each account's running totals equal the sums of its transfers;
* each account's open holds equal the sum of its holds in state ``open`` plus what its live
  leases (``open`` or ``closed``) still hold;
* a lease holds between nothing and what it was granted, nothing once settled or expired, and
  nothing is left held by a closed lease whose admitted requests have all settled;
* each usage record has exactly its cost in transfers (none when it cost nothing);
* revenue (what reached ``sys:revenue``) equals the sum of the usage costs;
* no hold stays open once its request has been settled;
* every transfer touches exactly one customer and moves a positive amount (the schema's checks).

Each finding is one line a person can act on; no finding means the books balance.
"""

from __future__ import annotations

from aiapi_billing.repository import Conn
from aiapi_billing.repository import audit as checks


async def audit(conn: Conn) -> list[str]:
    """Every violated invariant, as readable lines (empty when the books balance)."""
    return [f"{title}: {row}" for title, row in await checks.violations(conn)]
