"""The billing history as a statement (pure): ledger entries newest first, a day's usage debits
folded into one line, each line with the balance after it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from aiapi_shared.billing_api import LedgerEntry

KIND_LABELS = {
    "deposit": "Top-up",
    "deposit_reversal": "Top-up reversed",
    "adjustment": "Adjustment",
    "plan_purchase": "Plan purchase",
    "usage": "Usage",
}


@dataclass(frozen=True)
class Line:
    label: str
    detail: str
    at: datetime
    day: date
    amount: int  # nano-USD, signed
    balance_after: int | None
    entries: int  # ledger entries folded into this line


def statement(entries: Iterable[LedgerEntry]) -> list[Line]:
    """Newest first, as the ledger lists them. Consecutive usage entries of one UTC day become
    one line (its balance is the one after the newest of them)."""
    lines: list[Line] = []
    for entry in entries:
        day = entry.created_at.astimezone(UTC).date()
        last = lines[-1] if lines else None
        if entry.kind == "usage" and last and last.label == "Usage" and last.day == day:
            lines[-1] = Line(
                last.label, last.detail, last.at, day, last.amount + entry.amount,
                last.balance_after, last.entries + 1,
            )  # fmt: skip
            continue
        detail = entry.memo or ("" if entry.kind == "usage" else entry.reference)
        lines.append(
            Line(
                KIND_LABELS.get(entry.kind, entry.kind), detail, entry.created_at, day,
                entry.amount, entry.balance_after, 1,
            )
        )  # fmt: skip
    return lines
