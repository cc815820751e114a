"""The ledger's invariants as queries: each returns the rows that break one (see ``auditor``)."""

from __future__ import annotations

from typing import Any

from aiapi_billing.ledger import REVENUE
from aiapi_billing.repository import Conn

_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "running totals differ from the transfers",
        "SELECT a.account_id, a.credits, coalesce(t.credits, 0), a.debits, coalesce(t.debits, 0)"
        " FROM accounts a LEFT JOIN ("
        "   SELECT account_id,"
        "     sum(amount) FILTER (WHERE to_account = 'cust:' || account_id) AS credits,"
        "     sum(amount) FILTER (WHERE from_account = 'cust:' || account_id) AS debits"
        "   FROM transfers GROUP BY account_id) t USING (account_id)"
        " WHERE a.credits <> coalesce(t.credits, 0) OR a.debits <> coalesce(t.debits, 0)",
    ),
    (
        "open holds differ from the holds and leases tables",
        "SELECT a.account_id, a.holds, coalesce(h.total, 0), coalesce(l.total, 0)"
        " FROM accounts a LEFT JOIN ("
        "   SELECT account_id, sum(amount) AS total FROM holds WHERE state = 'open'"
        "   GROUP BY account_id) h USING (account_id) LEFT JOIN ("
        "   SELECT account_id, sum(open_amount) AS total FROM leases"
        "   WHERE state IN ('open', 'closed') GROUP BY account_id) l USING (account_id)"
        " WHERE a.holds <> coalesce(h.total, 0) + coalesce(l.total, 0)",
    ),
    (
        "a lease holds more than it was granted, or less than nothing",
        "SELECT lease_id, open_amount, granted FROM leases"
        " WHERE open_amount < 0 OR open_amount > granted",
    ),
    (
        "a settled or expired lease still holds money",
        "SELECT lease_id, state, open_amount FROM leases"
        " WHERE state IN ('settled', 'expired') AND open_amount <> 0",
    ),
    (
        "a closed lease still holds money after all its requests settled",
        "SELECT lease_id, admitted, settled_count, open_amount FROM leases"
        " WHERE state = 'closed' AND settled_count >= admitted",
    ),
    (
        "a usage record's transfers differ from its cost",
        "SELECT u.request_id, u.cost, coalesce(sum(t.amount), 0) FROM usage_records u"
        " LEFT JOIN transfers t ON t.transfer_key = 'usage:' || u.request_id"
        " GROUP BY u.request_id, u.cost HAVING u.cost <> coalesce(sum(t.amount), 0)",
    ),
    (
        "a usage transfer has no usage record",
        "SELECT t.transfer_key FROM transfers t WHERE t.kind = 'usage' AND NOT EXISTS ("
        " SELECT 1 FROM usage_records u WHERE 'usage:' || u.request_id = t.transfer_key)",
    ),
    (
        "revenue differs from the sum of usage costs",
        "SELECT r.total, c.total FROM"
        " (SELECT coalesce(sum(CASE WHEN to_account = %(rev)s THEN amount ELSE -amount END), 0)"
        "  AS total FROM transfers WHERE to_account = %(rev)s OR from_account = %(rev)s) r,"
        " (SELECT coalesce(sum(cost), 0) AS total FROM usage_records) c"
        " WHERE r.total <> c.total",
    ),
    (
        "a hold is still open after its request was settled",
        "SELECT h.hold_id, h.request_id FROM holds h JOIN usage_records u USING (request_id)"
        " WHERE h.state = 'open'",
    ),
)


async def violations(conn: Conn, per_check: int = 20) -> list[tuple[str, tuple[Any, ...]]]:
    """(title, row) for up to ``per_check`` rows breaking each invariant, in the checks' order."""
    found: list[tuple[str, tuple[Any, ...]]] = []
    for title, query in _CHECKS:
        params = {"rev": REVENUE} if "%(rev)s" in query else None
        cur = await conn.execute(query, params)
        found.extend((title, tuple(row)) for row in await cur.fetchmany(per_check))
    return found
