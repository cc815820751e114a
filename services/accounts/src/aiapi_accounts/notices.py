"""Durable JetStream consumers that turn billing's events into notices by mail: a deposit was
credited, the balance is running low. Started only when mail is configured; each event queues
one mail in the outbox table (a redelivered event may queue it again: a rare duplicate notice
is better than a lost one)."""

from __future__ import annotations

import asyncio

from aiapi_shared.bus import Bus, Msg, decode_event
from aiapi_shared.events.billing_v1 import BalanceLow, DepositCredited

from aiapi_accounts.account_mail import AccountMail

DEPOSIT_DURABLE = "accounts-notice-deposit-credited"
BALANCE_LOW_DURABLE = "accounts-notice-balance-low"


class Notices:
    def __init__(self, bus: Bus, mail: AccountMail) -> None:
        self._bus = bus
        self._mail = mail

    def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(
                self._bus.consume(
                    stream="BILLING",
                    durable=DEPOSIT_DURABLE,
                    subject=DepositCredited.subject,
                    handler=self.on_deposit_credited,
                    stop=stop,
                ),
                name=DEPOSIT_DURABLE,
            ),
            asyncio.create_task(
                self._bus.consume(
                    stream="BILLING",
                    durable=BALANCE_LOW_DURABLE,
                    subject=BalanceLow.subject,
                    handler=self.on_balance_low,
                    stop=stop,
                ),
                name=BALANCE_LOW_DURABLE,
            ),
        ]

    async def on_deposit_credited(self, msg: Msg) -> None:
        event = decode_event(DepositCredited, msg.data)
        await self._mail.notify_deposit(event.account_id, event.amount)

    async def on_balance_low(self, msg: Msg) -> None:
        event = decode_event(BalanceLow, msg.data)
        await self._mail.notify_balance_low(event.account_id, event.available)
