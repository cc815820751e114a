"""Money as integer nano-USD (1e-9 USD), rendered as decimal strings in JSON, never a float.

Every amount of money in aiapi is an ``int`` counting nano-USD. Decimal strings appear only at the
edges (JSON, settings, operator input); this module is the one place that converts between them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

NANO_PER_USD = 1_000_000_000
_NANO_EXPONENT = Decimal("1e-9")
_PLAIN = re.compile(r"(-?)([0-9]+)\.([0-9]{1,9})")


class MoneyFormatError(ValueError):
    """A USD amount that is not a plain decimal with at most nine decimals."""


def parse_usd(text: str) -> int:
    """Parse a decimal USD string ("10.00", "-0.5", "0.000000001") into nano-USD, exactly.

    Refuses floats in disguise (exponents, NaN, infinity) and anything finer than one nano-USD,
    because silently rounding a customer's money is worse than a clear error.
    """
    if not isinstance(text, str):
        raise MoneyFormatError("a USD amount must be a decimal string")
    plain = _PLAIN.fullmatch(text)
    if plain is not None:  # the form format_usd writes: every event's amounts, without Decimal
        sign, whole, fraction = plain.groups()
        amount = int(whole) * NANO_PER_USD + int(fraction.ljust(9, "0"))
        return -amount if sign else amount
    stripped = text.strip()
    if not stripped or any(c in stripped for c in "eEnN_ "):
        raise MoneyFormatError(f"not a plain decimal USD amount: {text!r}")
    try:
        value = Decimal(stripped)
    except InvalidOperation as exc:
        raise MoneyFormatError(f"not a decimal USD amount: {text!r}") from exc
    nano = value * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise MoneyFormatError(f"more than nine decimals: {text!r}")
    return int(nano)


def format_usd(nano: int) -> str:
    """Render nano-USD as a decimal string with at least two decimals and no trailing noise.

    1_500_000_000 -> "1.50"; 1 -> "0.000000001"; -250_000_000 -> "-0.25".
    """
    if isinstance(nano, bool) or not isinstance(nano, int):
        raise TypeError("nano-USD amounts are integers")
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    frac_text = f"{frac:09d}".rstrip("0")
    if len(frac_text) < 2:
        frac_text = frac_text.ljust(2, "0")
    return f"{sign}{whole}.{frac_text}"


def owed(balance: int) -> int:
    """What an account owes: the settled balance's shortfall below zero (0 when it is not)."""
    return max(0, -balance)


def _validate_money(value: Any) -> int:
    if isinstance(value, (bool, float)):
        raise MoneyFormatError("money is never a float or a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_usd(value)
    raise MoneyFormatError("money is a decimal USD string")


Money = Annotated[
    int,
    BeforeValidator(_validate_money),
    PlainSerializer(format_usd, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2,9}$", "description": "USD"}),
]
"""A pydantic field type: an ``int`` of nano-USD in Python, a decimal USD string in JSON.

In Python code an ``int`` is taken as nano-USD; from JSON only a decimal string is meant, and a
JSON number is refused unless it is an integer (then nano-USD, for internal producers only).
"""
