"""Requests/min and tokens/min as a generic cell rate algorithm (GCRA). Pure: no I/O.

Each limit keeps one number per account, its theoretical arrival time (TAT, microseconds): every
admitted unit pushes it forward by ``60 s / limit``; a request is refused when that would put the
TAT more than one minute ahead of now. This allows a full minute's allowance in a burst, refills
smoothly, and tells a refused caller exactly when it may retry. Billing keeps the TATs in the
account row, so every edge replica and every billing replica sees (and locks) the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_US = 60_000_000
MAX_RETRY_AFTER_S = 60


@dataclass(frozen=True)
class RateState:
    rpm_tat_us: int
    tpm_tat_us: int


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    state: RateState
    retry_after_s: int = 0


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _advance(tat_us: int, now_us: int, units: int, limit_per_minute: int) -> int:
    return max(tat_us, now_us) + _ceil_div(units * WINDOW_US, limit_per_minute)


def decide(state: RateState, now_us: int, *, rpm: int, tpm: int, tokens: int) -> RateDecision:
    """Admit one request of ``tokens`` estimated tokens, or say how long to wait (1..60 s)."""
    # A single request larger than a minute's tokens is admitted alone rather than never.
    tokens = min(tokens, tpm)
    rpm_tat = _advance(state.rpm_tat_us, now_us, 1, rpm)
    tpm_tat = _advance(state.tpm_tat_us, now_us, tokens, tpm)
    excess_us = max(rpm_tat - now_us - WINDOW_US, tpm_tat - now_us - WINDOW_US)
    if excess_us > 0:
        wait_s = min(MAX_RETRY_AFTER_S, max(1, _ceil_div(excess_us, 1_000_000)))
        return RateDecision(False, state, wait_s)
    return RateDecision(True, RateState(rpm_tat, tpm_tat))


def token_correction_us(actual_tokens: int, estimated_tokens: int, tpm: int) -> int:
    """How far the tokens TAT moves once the real usage replaces the admission's estimate."""
    delta = actual_tokens - estimated_tokens
    if delta >= 0:
        return _ceil_div(delta * WINDOW_US, tpm)
    return -((-delta * WINDOW_US) // tpm)
