"""The catalogue as billing publishes it (KV ``aiapi_catalogue``): the plans customers may choose
and what each costs, followed at run time.

Until the first snapshot arrives accounts uses the shipped catalogue. A snapshot older than the
one held, or one that does not parse, is ignored. Billing owns the plans; accounts only shows
them and refuses a plan customers may not choose before asking billing to sell it.
"""

from __future__ import annotations

from datetime import datetime

from aiapi_shared.catalogue import Catalogue, Plan
from aiapi_shared.events.records_v1 import newer_snapshot

from aiapi_accounts.errors import InvalidRequest


class CatalogueView:
    def __init__(self, shipped: Catalogue) -> None:
        self.current = shipped
        self.version = -1

    def on_change(self, key: str, value: bytes | None) -> None:
        snapshot = newer_snapshot(key, value, self.version)
        if snapshot is not None:
            self.version, self.current = snapshot.version, snapshot.catalogue

    def choosable(self, moment: datetime | None = None) -> tuple[Plan, ...]:
        """The plans customers may choose now (sign-up, upgrade), in the catalogue's order."""
        return tuple(p for p in self.current.plans_at(moment) if p.choosable)

    def plan(self, plan_id: str) -> Plan | None:
        """A plan as it is now, or None if there is no such plan."""
        try:
            return self.current.plan(plan_id)
        except KeyError:
            return None

    def choosable_plan(self, plan_id: str) -> Plan:
        """The plan ``plan_id`` if customers may choose it now; else a 400 naming the choices.
        (Choosing the plan the account is on is billing's to answer: ``already_owned``, so that
        a retried choice is answered like the first.)"""
        plan = self.plan(plan_id)
        if plan is None or not plan.choosable:
            offered = ", ".join(p.id for p in self.choosable())
            raise InvalidRequest(f"plan: {plan_id!r} cannot be chosen; choose one of {offered}")
        return plan
