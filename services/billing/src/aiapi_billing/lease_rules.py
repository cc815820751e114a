"""The rules of admission leases: grant, close and settle as arithmetic. Pure: no I/O.

``lease_commands.py`` (grant, top-up, close) and ``lease_settlement.py`` run these rules under
the account's and the lease's locks, reading and writing through ``repository/leases.py``.

A lease is money held for an edge replica (it counts in ``accounts.holds`` like a hold) plus a
slice of the plan's requests/min and tokens/min taken from the account's GCRA state. Its held
amount, ``open_amount``, only ever goes down by what is released: a settled request's reserved
share, what no request reserved once the lease is closed, and the rest once every admitted
request has settled. So the money held always covers what the edge may still spend with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from aiapi_billing.ratelimit import WINDOW_US

BPS = 10_000

LeaseState = Literal["open", "closed", "settled", "expired"]
LIVE_STATES: tuple[LeaseState, ...] = ("open", "closed")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def free_units(tat_us: int, now_us: int, limit_per_minute: int) -> int:
    """Units the GCRA would admit at once now: one minute's burst minus what the TAT is ahead."""
    ahead_us = max(tat_us, now_us) - now_us
    return max(0, (WINDOW_US - ahead_us) * limit_per_minute // WINDOW_US)


def advance_us(tat_us: int, now_us: int, units: int, limit_per_minute: int) -> int:
    """The TAT after ``units`` more were admitted (as ``ratelimit.decide`` moves it)."""
    return max(tat_us, now_us) + _ceil_div(units * WINDOW_US, limit_per_minute)


def rewind_us(unused_units: int, limit_per_minute: int) -> int:
    """How far to move a TAT back for units granted but never used (rounded down, never more
    than was taken: ``advance_us`` rounded up)."""
    return max(0, unused_units) * WINDOW_US // limit_per_minute


@dataclass(frozen=True)
class GrantAsk:
    """What the edge asked for, and the account and plan as they are under the lock."""

    amount: int
    min_amount: int
    requests: int
    tokens: int
    min_tokens: int
    available: int
    rpm: int
    tpm: int
    rpm_tat_us: int
    tpm_tat_us: int
    now_us: int


@dataclass(frozen=True)
class Grant:
    amount: int
    requests: int
    tokens: int
    rpm_tat_us: int  # the account's TATs with the lease's slices taken
    tpm_tat_us: int


@dataclass(frozen=True)
class Decline:
    reason: str


def grant_terms(ask: GrantAsk, *, share_bps: int) -> Grant | Decline:
    """At most ``share_bps`` of the available balance and half of each limit's free burst, so
    other replicas (and per-request admission) keep a share; or a decline when that is less than
    the edge said it could use."""
    amount = min(ask.amount, max(0, ask.available) * share_bps // BPS)
    if amount < ask.min_amount:
        return Decline("the available balance is too small for a lease")
    requests = min(ask.requests, free_units(ask.rpm_tat_us, ask.now_us, ask.rpm) // 2)
    tokens = min(ask.tokens, free_units(ask.tpm_tat_us, ask.now_us, ask.tpm) // 2)
    if requests < 1 or tokens < ask.min_tokens:
        return Decline("the plan's rate limit has too little left for a lease")
    return Grant(
        amount=amount,
        requests=requests,
        tokens=tokens,
        rpm_tat_us=advance_us(ask.rpm_tat_us, ask.now_us, requests, ask.rpm),
        tpm_tat_us=advance_us(ask.tpm_tat_us, ask.now_us, tokens, ask.tpm),
    )


@dataclass(frozen=True)
class Tally:
    """A lease's row as settlement and close read and write it."""

    state: LeaseState
    open_amount: int
    settled_reserved: int
    settled_count: int
    admitted: int | None  # known once closed


def _finish_if_settled(tally: Tally) -> tuple[Tally, int]:
    """A closed lease whose admitted requests have all settled holds nothing more."""
    admitted = tally.admitted
    if tally.state == "closed" and admitted is not None and tally.settled_count >= admitted:
        return replace(tally, state="settled", open_amount=0), tally.open_amount
    return tally, 0


def settle_event(tally: Tally, reserved: int) -> tuple[Tally, int]:
    """One usage event admitted under the lease: release its reserved share (never more than is
    held), count it, and release the rest when it was the last one. Returns the new tally and
    the amount released. Expired leases are not given here (their money went back already)."""
    assert tally.state != "expired"
    released = min(reserved, tally.open_amount)
    tally = replace(
        tally,
        open_amount=tally.open_amount - released,
        settled_reserved=tally.settled_reserved + reserved,
        settled_count=tally.settled_count + 1,
    )
    tally, rest = _finish_if_settled(tally)
    return tally, released + rest


@dataclass(frozen=True)
class CloseReport:
    admitted: int
    reserved_amount: int
    reserved_tokens: int


@dataclass(frozen=True)
class Unused:
    """What an open lease holds beyond what the edge's report says its requests took: money
    (``open_amount`` − the report's outstanding reservations), requests and tokens."""

    amount: int
    requests: int
    tokens: int


def unused_at(tally: Tally, report: CloseReport, *, requests: int, tokens: int) -> Unused:
    """The lease's unused part by the edge's report (as ``close_terms`` would release it)."""
    outstanding = max(0, report.reserved_amount - tally.settled_reserved)
    return Unused(
        amount=max(0, tally.open_amount - outstanding),
        requests=max(0, requests - report.admitted),
        tokens=max(0, tokens - report.reserved_tokens),
    )


def renew_terms(ask: GrantAsk, unused: Unused, *, share_bps: int) -> Grant | Decline:
    """Renew an open lease in place: what it adds to the lease so that its unused part becomes
    what a new grant would give, as if it were closed by the report (its unused part given back)
    and granted again; never less than its unused part (the edge may be admitting with it right
    now, so nothing is taken back: what it does not use goes back when it is closed).

    ``Grant``'s amounts are the additions; its TATs are the account's with the unused slices
    given back and the new ones taken, exactly as close then grant would move them."""
    available = max(0, ask.available) + unused.amount
    rpm_tat = ask.rpm_tat_us - rewind_us(unused.requests, ask.rpm)
    tpm_tat = ask.tpm_tat_us - rewind_us(unused.tokens, ask.tpm)
    amount = max(unused.amount, min(ask.amount, available * share_bps // BPS))
    requests = max(
        unused.requests, min(ask.requests, free_units(rpm_tat, ask.now_us, ask.rpm) // 2)
    )
    tokens = max(unused.tokens, min(ask.tokens, free_units(tpm_tat, ask.now_us, ask.tpm) // 2))
    if amount < ask.min_amount:
        return Decline("the available balance is too small for a lease")
    if requests < 1 or tokens < ask.min_tokens:
        return Decline("the plan's rate limit has too little left for a lease")
    return Grant(
        amount=amount - unused.amount,
        requests=requests - unused.requests,
        tokens=tokens - unused.tokens,
        rpm_tat_us=advance_us(rpm_tat, ask.now_us, requests, ask.rpm),
        tpm_tat_us=advance_us(tpm_tat, ask.now_us, tokens, ask.tpm),
    )


@dataclass(frozen=True)
class Closing:
    tally: Tally
    released: int
    rpm_rewind_us: int
    tpm_rewind_us: int


def close_terms(
    tally: Tally, report: CloseReport, *, requests: int, tokens: int, rpm: int, tpm: int
) -> Closing:
    """Close an open lease: keep held what admitted requests reserved and have not settled yet,
    release the rest, and give back the requests and tokens the edge never used."""
    assert tally.state == "open"
    outstanding = max(0, report.reserved_amount - tally.settled_reserved)
    released = max(0, tally.open_amount - outstanding)
    closed = replace(
        tally, state="closed", open_amount=tally.open_amount - released, admitted=report.admitted
    )
    closed, rest = _finish_if_settled(closed)
    return Closing(
        tally=closed,
        released=released + rest,
        rpm_rewind_us=rewind_us(requests - report.admitted, rpm),
        tpm_rewind_us=rewind_us(tokens - report.reserved_tokens, tpm),
    )
