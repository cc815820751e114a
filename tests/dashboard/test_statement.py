"""The billing history's statement lines (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiapi_accounts.pages.statement import statement
from aiapi_shared.billing_api import LedgerEntry

DAY = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def entry(i: int, kind: str, amount: int, after: int, at: datetime, memo: str = "") -> LedgerEntry:
    return LedgerEntry(
        id=i, kind=kind, amount=amount, balance_after=after, reference=f"ref{i}", created_at=at,
        memo=memo,
    )  # fmt: skip


def test_a_days_usage_is_one_line_and_balances_stay_exact() -> None:
    entries = [  # newest first, as the ledger answers
        entry(6, "usage", -3, 9_999_999_990, DAY + timedelta(hours=2)),
        entry(5, "usage", -4, 9_999_999_993, DAY + timedelta(hours=1)),
        entry(4, "usage", -3, 9_999_999_997, DAY - timedelta(days=1)),
        entry(3, "deposit", 10_000_000_000, 10_000_000_000, DAY - timedelta(days=2)),
        entry(2, "adjustment", -5, 0, DAY - timedelta(days=3), memo="correction"),
        entry(1, "usage", -1, 5, DAY - timedelta(days=3)),
    ]
    lines = statement(entries)
    assert [(ln.label, ln.amount, ln.balance_after, ln.entries) for ln in lines] == [
        ("Usage", -7, 9_999_999_990, 2),  # today's two requests, balance after the newest
        ("Usage", -3, 9_999_999_997, 1),
        ("Top-up", 10_000_000_000, 10_000_000_000, 1),
        ("Adjustment", -5, 0, 1),
        ("Usage", -1, 5, 1),  # not folded across another kind
    ]
    assert lines[3].detail == "correction"
