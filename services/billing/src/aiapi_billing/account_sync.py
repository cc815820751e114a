"""Billing's copy of each account's status and plan, learned from the ACCOUNTS stream.

An account billing has not heard of yet (its ``AccountCreated`` still in flight) is active on
the plan the edge names: the edge authenticated the key against accounts' own records, so
refusing it would only turn a propagation delay into an outage for a new customer.
"""

from __future__ import annotations

from aiapi_shared.events import AccountCreated, AccountStatusChanged, Event, PlanChanged

from aiapi_billing.repository import Conn, accounts


async def apply_account_event(conn: Conn, event: Event) -> None:
    if isinstance(event, AccountCreated | PlanChanged):
        await accounts.learn_plan(conn, event.account_id, event.plan)
    elif isinstance(event, AccountStatusChanged):
        await accounts.learn_status(conn, event.account_id, event.status)
