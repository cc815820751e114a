"""Deposits: a confirmed deposit credits once per ``deposit_id``; a reversal debits it back once."""

from __future__ import annotations

from dataclasses import dataclass

from aiapi_shared.events import DepositConfirmed, DepositCredited, DepositReversed

from aiapi_billing.ledger import DEPOSITS, TransferSpec
from aiapi_billing.notices import balance_events
from aiapi_billing.repository import Conn, accounts, outbox, transfers


@dataclass(frozen=True)
class DepositBook:
    low_threshold: int

    async def credit(self, conn: Conn, event: DepositConfirmed) -> bool:
        """Credit ``usd``; ``False`` when this deposit was credited before (or is worth nothing)."""
        if event.usd <= 0:
            return False
        account = await accounts.lock_account(conn, event.account_id)
        spec = TransferSpec(
            key=f"deposit:{event.deposit_id}",
            kind="deposit",
            account_id=event.account_id,
            amount=event.usd,
            counterpart=DEPOSITS,
            reference=event.deposit_id,
            memo=f"{event.amount} {event.asset} {event.tx_hash}:{event.position}",
            actor="payments",
        )
        posted = await transfers.post_transfer(conn, spec, account.totals)
        if posted is None:
            return False
        _, after = posted
        credited = DepositCredited(
            account_id=event.account_id, deposit_id=event.deposit_id, amount=event.usd
        )
        notices = balance_events(
            event.account_id,
            account.totals,
            after,
            cause="deposit",
            low_threshold=self.low_threshold,
        )
        await outbox.queue_events(conn, [credited, *notices])
        return True

    async def reverse(self, conn: Conn, event: DepositReversed) -> bool:
        """Debit back exactly what the deposit credited, once; nothing if it never credited."""
        account = await accounts.lock_account(conn, event.account_id)
        credited = await transfers.account_transfer_amount(
            conn, f"deposit:{event.deposit_id}", event.account_id
        )
        if credited is None:
            return False
        spec = TransferSpec(
            key=f"deposit_reversal:{event.deposit_id}",
            kind="deposit_reversal",
            account_id=event.account_id,
            amount=-credited,
            counterpart=DEPOSITS,
            reference=event.deposit_id,
            memo=f"reorganisation undid {event.tx_hash}:{event.position}",
            actor="payments",
        )
        posted = await transfers.post_transfer(conn, spec, account.totals)
        if posted is None:
            return False
        notices = balance_events(
            event.account_id,
            account.totals,
            posted[1],
            cause="deposit",
            low_threshold=self.low_threshold,
        )
        await outbox.queue_events(conn, notices)
        return True
