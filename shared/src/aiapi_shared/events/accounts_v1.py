"""Accounts events: accounts created and suspended, keys issued and revoked, plans changed."""

from __future__ import annotations

from typing import ClassVar, Literal

from aiapi_shared.catalogue import PlanId
from aiapi_shared.events.base import Event

PlanName = PlanId  # plans are data (the catalogue's), named by the operator
AccountStatus = Literal["active", "suspended"]


class AccountCreated(Event):
    subject: ClassVar[str] = "accounts.v1.account.created"

    account_id: str
    plan: PlanName


class AccountStatusChanged(Event):
    subject: ClassVar[str] = "accounts.v1.account.status_changed"

    account_id: str
    status: AccountStatus


class PlanChanged(Event):
    subject: ClassVar[str] = "accounts.v1.plan.changed"

    account_id: str
    plan: PlanName
    previous_plan: PlanName


class KeyIssued(Event):
    subject: ClassVar[str] = "accounts.v1.key.issued"

    account_id: str
    key_id: str
    name: str


class KeyRevoked(Event):
    subject: ClassVar[str] = "accounts.v1.key.revoked"

    account_id: str
    key_id: str
