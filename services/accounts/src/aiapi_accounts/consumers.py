"""Durable JetStream consumers: keys' last-used times from usage, plan purchases from billing."""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiapi_shared.bus import Bus, Msg, decode_event
from aiapi_shared.errors import PoisonMessage
from aiapi_shared.events.base import Record
from aiapi_shared.events.billing_v1 import PlanPurchased
from aiapi_shared.events.usage_v1 import UsageRecorded
from pydantic import AwareDatetime, ValidationError

from aiapi_accounts.commands import Accounts
from aiapi_accounts.errors import NotFound

USAGE_DURABLE = "accounts-key-last-used"
USAGE_LINGER_S = 0.25
USAGE_LINGER_MAX_S = (
    1.0  # while fetches stay short, the wait grows up to this (aiapi_shared.linger)
)
_MAX_NOTED = 100_000
PLAN_DURABLE = "accounts-plan-purchased"


class KeyUse(Record):
    """What this consumer reads of a ``UsageRecorded``: validating the whole event (its usage,
    its money) for two fields cost most of this consumer's CPU per request. Whether the rest of
    the event is sound is billing's to judge (its consumer sets a malformed one aside)."""

    key_id: str
    finished_at: AwareDatetime


class Consumers:
    def __init__(self, bus: Bus, accounts: Accounts, *, last_used_resolution_s: int) -> None:
        self._bus = bus
        self._accounts = accounts
        self._resolution_s = last_used_resolution_s
        # When each key was last written: most usage events then need no database work at all
        # (the consumer runs beside the hot path on the same machine; every query there costs).
        self._noted: dict[str, datetime] = {}

    def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(
                self._bus.consume(
                    stream="USAGE",
                    durable=USAGE_DURABLE,
                    subject=UsageRecorded.subject,
                    handler=self.on_usage,
                    stop=stop,
                    # Last-used times are kept to seconds: no need to wake for every request
                    # (light traffic would otherwise cost a fetch per usage event).
                    linger_s=USAGE_LINGER_S,
                    linger_max_s=USAGE_LINGER_MAX_S,
                ),
                name=USAGE_DURABLE,
            ),
            asyncio.create_task(
                self._bus.consume(
                    stream="BILLING",
                    durable=PLAN_DURABLE,
                    subject=PlanPurchased.subject,
                    handler=self.on_plan_purchased,
                    stop=stop,
                ),
                name=PLAN_DURABLE,
            ),
        ]

    async def on_usage(self, msg: Msg) -> None:
        try:
            event = KeyUse.model_validate_json(msg.data)
        except ValidationError as exc:
            raise PoisonMessage(f"usage event does not parse: {exc.error_count()} errors") from exc
        noted = self._noted.get(event.key_id)
        if noted is not None and (event.finished_at - noted).total_seconds() < self._resolution_s:
            return
        await self._accounts.note_key_used(event.key_id, event.finished_at, self._resolution_s)
        if len(self._noted) >= _MAX_NOTED:
            self._noted.clear()
        self._noted[event.key_id] = event.finished_at

    async def on_plan_purchased(self, msg: Msg) -> None:
        """The purchase's reply may have been lost on its way to us; this switches the plan
        anyway (switching twice is a no-op)."""
        event = decode_event(PlanPurchased, msg.data)
        try:
            await self._accounts.set_plan(event.account_id, event.plan)
        except NotFound:
            return  # an account billing knows and we do not: nothing to switch
