"""Billing's books as a checker reads them, and a request's price computed without billing's code.

``expected_cost`` applies the contract's meters to the catalogue's prices in exact fractions and
rounds up once (docs/billing.md), so a benchmark or a fault run can tell whether billing charged
each request exactly. ``read_books`` reads the few tables a run's verdict needs, from PostgreSQL
directly (the operator's view, not the customer's); ``read_deposits`` what payments saw and
billing credited of deposits. ``balances_after`` and ``exact`` are a benchmark's verdict on the
balances it reads through the operator API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from math import ceil
from typing import Any

import psycopg
from aiapi_shared.catalogue import Catalogue, default_catalogue

METERS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
)


def meters_of(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """The five meters of an Anthropic ``usage`` object (the 5-minute cache write takes what the
    TTL split does not explain, as the edge meters it)."""
    created = usage.get("cache_creation") or {}
    split_1h = int(created.get("ephemeral_1h_input_tokens") or 0)
    total = int(usage.get("cache_creation_input_tokens") or 0)
    split_5m = int(created.get("ephemeral_5m_input_tokens") or 0)
    return (
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int(usage.get("cache_read_input_tokens") or 0),
        max(total, split_5m + split_1h) - split_1h,
        split_1h,
    )


def expected_cost(
    model: str,
    plan: str,
    meters: tuple[int, int, int, int, int],
    at: datetime | None = None,
    catalogue: Catalogue | None = None,
) -> int:
    """Nano-USD: each meter at the price in force at ``at`` (now when omitted), the plan's
    discount, rounded up once."""
    cat = catalogue or default_catalogue()
    when = at or datetime.now(UTC)
    prices = next(m for m in cat.models if m.id == model).prices
    price = max((p for p in prices if p.effective_from <= when), key=lambda p: p.effective_from)
    per_in = Fraction(price.input_usd_per_mtok, 10**6)  # nano-USD per token
    per_out = Fraction(price.output_usd_per_mtok, 10**6)
    bps = cat.cache_multipliers_bps
    inputs, outputs, read, write_5m, write_1h = meters
    total = (
        inputs * per_in
        + read * per_in * Fraction(bps.cache_read, 10_000)
        + write_5m * per_in * Fraction(bps.cache_write_5m, 10_000)
        + write_1h * per_in * Fraction(bps.cache_write_1h, 10_000)
        + outputs * per_out
    )
    return ceil(total * (1 - Fraction(cat.plan(plan).discount_bps, 10_000)))


def balances_after(start: Mapping[str, int], spent: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Each account's balance once every cost in ``spent`` ((account, nano-USD), as the
    responses' usage priced them) is settled."""
    expected = dict(start)
    for account_id, cost in spent:
        expected[account_id] -= cost
    return expected


def exact(settled: Mapping[str, tuple[int, int]], expected: Mapping[str, int]) -> bool:
    """Each account's (balance, available) is (expected, expected): every request billed at its
    price, and no hold or lease left holding anything."""
    return all(settled[account_id] == (b, b) for account_id, b in expected.items())


@dataclass(frozen=True)
class UsageRow:
    request_id: str
    account_id: str
    model: str
    plan: str
    route: str
    started_at: datetime
    meters: tuple[int, int, int, int, int]
    cost: int


@dataclass(frozen=True)
class Books:
    usage: list[UsageRow]
    open_holds: int  # holds in state open
    live_leases: int  # leases open or closed (still holding, or waiting for settlements)
    held: int  # the sum of accounts.holds


def read_books(database_url: str) -> Books:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT request_id, account_id, model, plan, route, started_at, input_tokens,"
            " output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,"
            " cost FROM billing.usage_records"
        ).fetchall()
        holds = conn.execute("SELECT count(*) FROM billing.holds WHERE state = 'open'").fetchone()
        leases = conn.execute(
            "SELECT count(*) FROM billing.leases WHERE state IN ('open', 'closed')"
        ).fetchone()
        held = conn.execute("SELECT coalesce(sum(holds), 0) FROM billing.accounts").fetchone()
    usage = [
        UsageRow(r[0], r[1], r[2], r[3], r[4], r[5], (r[6], r[7], r[8], r[9], r[10]), r[11])
        for r in rows
    ]
    return Books(
        usage,
        int(holds[0]) if holds else 0,
        int(leases[0]) if leases else 0,
        int(held[0]) if held else 0,
    )


@dataclass(frozen=True)
class DepositRow:
    """A deposit as payments tracks it."""

    deposit_id: str
    tx_hash: str
    account_id: str
    state: str
    usd_nano: int | None


@dataclass(frozen=True)
class DepositCredit:
    """A deposit transfer in billing's ledger (its reference is the deposit id)."""

    deposit_id: str
    account_id: str
    amount: int


def read_deposits(database_url: str) -> tuple[list[DepositRow], list[DepositCredit]]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        tracked = conn.execute(
            "SELECT deposit_id, tx_hash, account_id, state, usd_nano FROM payments.deposits"
        ).fetchall()
        credited = conn.execute(
            "SELECT reference, account_id, amount FROM billing.transfers WHERE kind = 'deposit'"
        ).fetchall()
    return (
        [DepositRow(r[0], r[1], r[2], r[3], r[4]) for r in tracked],
        [DepositCredit(r[0], r[1], int(r[2])) for r in credited],
    )
