"""Spend today and this month from billing's daily usage rows (pure; days are UTC)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from aiapi_shared.billing_api import DailyUsageRow


@dataclass(frozen=True)
class Spend:
    today: int  # nano-USD
    month: int
    requests_today: int
    requests_month: int


def days_back_to_month_start(today: date) -> int:
    """How many days of rows cover the month so far (today included)."""
    return today.day


def spend_of(rows: Iterable[DailyUsageRow], today: date) -> Spend:
    today_cost = month_cost = today_requests = month_requests = 0
    for row in rows:
        if (row.day.year, row.day.month) != (today.year, today.month) or row.day > today:
            continue
        month_cost += row.cost
        month_requests += row.requests
        if row.day == today:
            today_cost += row.cost
            today_requests += row.requests
    return Spend(today_cost, month_cost, today_requests, month_requests)
