"""The text of each account mail (no I/O): subject and plain-text body. Links are built from the
dashboard's configured public URL, never from a request's Host header."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from aiapi_shared.money import format_usd


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str


def _link(base_url: str, path: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{path}?token={quote(token, safe='')}"


def _hours(seconds: int) -> str:
    hours = max(1, round(seconds / 3600))
    return "1 hour" if hours == 1 else f"{hours} hours"


def verification_mail(base_url: str, token: str, ttl_s: int) -> Mail:
    link = _link(base_url, "/verify-email", token)
    return Mail(
        "Confirm your email address",
        "Welcome! Please confirm that this is your email address by opening this link:\n\n"
        f"{link}\n\n"
        f"The link works once and for {_hours(ttl_s)}. Until then, API keys cannot be created and "
        "no deposit address is shown.\n\n"
        "If you did not sign up, ignore this mail: nothing happens without the link.\n",
    )


def password_reset_mail(base_url: str, token: str, ttl_s: int) -> Mail:
    link = _link(base_url, "/reset-password", token)
    return Mail(
        "Reset your password",
        "Someone (hopefully you) asked to reset the password of this account. To choose a new "
        f"one, open this link:\n\n{link}\n\n"
        f"The link works once and for {_hours(ttl_s)}; setting a new password signs out every "
        "other session.\n\nIf you did not ask, ignore this mail: the password stays as it is.\n",
    )


def deposit_credited_mail(base_url: str, amount_nano_usd: int) -> Mail:
    return Mail(
        "Deposit credited",
        f"A deposit of {format_usd(amount_nano_usd)} USD was credited to your balance.\n\n"
        f"Your balance and its history: {base_url.rstrip('/')}/billing\n",
    )


def balance_low_mail(base_url: str, balance_nano_usd: int) -> Mail:
    return Mail(
        "Your balance is running low",
        f"Your balance is down to {format_usd(balance_nano_usd)} USD. When it runs out, requests "
        "are refused until you top up.\n\n"
        f"Top up: {base_url.rstrip('/')}/top-up\n",
    )
