"""The events a deposit's change of record announces. Pure: records in, events out.

Each event id is derived from the deposit id and the kind of event, so that writing the same
announcement twice (a replayed poll, a restarted watcher) yields the same id: the outbox keeps
one row per id, and JetStream (`Nats-Msg-Id`) and billing (its key per deposit id) see one
message even when the relay publishes it again after a crash.
"""

from __future__ import annotations

from datetime import datetime

from aiapi_shared.events.base import Event
from aiapi_shared.events.payments_v1 import DepositConfirmed, DepositDetected, DepositReversed

from aiapi_payments.model import Deposit, DepositState
from aiapi_payments.policy import format_units

DETECTED = "detected"
CONFIRMED = "confirmed"
REVERSED = "reversed"


def event_id(deposit_id: str, kind: str) -> str:
    return f"{deposit_id}:{kind}"


def _common(deposit: Deposit, account_id: str, kind: str, at: datetime) -> dict[str, object]:
    key = deposit.key
    return {
        "event_id": event_id(key.deposit_id, kind),
        "occurred_at": at,
        "deposit_id": key.deposit_id,
        "account_id": account_id,
        "asset": key.asset.value,
        "network": key.network.value,
        "tx_hash": key.tx_hash,
        "position": key.position,
        "amount": format_units(deposit.amount, deposit.scale),
    }


def announcements(
    previous: Deposit | None, current: Deposit, account_id: str, at: datetime
) -> list[Event]:
    """What to tell the world about `current`, given the record it replaces (None: new)."""
    events: list[Event] = []
    if previous is None:
        events.append(
            DepositDetected.model_validate(
                {
                    **_common(current, account_id, DETECTED, at),
                    "confirmations": current.confirmations,
                }
            )
        )
    was = None if previous is None else previous.state
    if current.state is DepositState.CONFIRMED and was is not DepositState.CONFIRMED:
        assert current.usd_nano is not None and current.rate_nano_usd is not None
        events.append(
            DepositConfirmed.model_validate(
                {
                    **_common(current, account_id, CONFIRMED, at),
                    "usd": current.usd_nano,
                    "rate_usd": current.rate_nano_usd,
                }
            )
        )
    if current.state is DepositState.REVERSED and was in (
        DepositState.CONFIRMED,
        DepositState.CREDITED,
    ):
        events.append(
            DepositReversed.model_validate(
                {**_common(current, account_id, REVERSED, at), "usd": current.usd_nano or 0}
            )
        )
    return events
