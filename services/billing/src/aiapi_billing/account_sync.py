"""Billing's copy of each account's status and plan, learned from the ACCOUNTS stream.

An account billing has not heard of yet (its ``AccountCreated`` still in flight) is active on
the plan the edge names: the edge authenticated the key against accounts' own records, so
refusing it would only turn a propagation delay into an outage for a new customer.
"""

from __future__ import annotations

from aiapi_shared.events import AccountCreated, AccountStatusChanged, Event, PlanChanged

from aiapi_billing.ledger import Conn


async def apply_account_event(conn: Conn, event: Event) -> None:
    if isinstance(event, AccountCreated):
        await conn.execute(
            "INSERT INTO accounts (account_id, plan, known) VALUES (%s, %s, true)"
            " ON CONFLICT (account_id) DO UPDATE SET plan = EXCLUDED.plan, known = true",
            (event.account_id, event.plan),
        )
    elif isinstance(event, AccountStatusChanged):
        await conn.execute(
            "INSERT INTO accounts (account_id, status, known) VALUES (%s, %s, true)"
            " ON CONFLICT (account_id) DO UPDATE SET status = EXCLUDED.status, known = true",
            (event.account_id, event.status),
        )
    elif isinstance(event, PlanChanged):
        await conn.execute(
            "INSERT INTO accounts (account_id, plan, known) VALUES (%s, %s, true)"
            " ON CONFLICT (account_id) DO UPDATE SET plan = EXCLUDED.plan, known = true",
            (event.account_id, event.plan),
        )
