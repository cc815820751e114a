from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
from aiapi_shared.money import Money, MoneyFormatError, format_usd, parse_usd
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel


@pytest.mark.parametrize(
    ("text", "nano"),
    [
        ("10.00", 10_000_000_000),
        ("0.000000001", 1),
        ("-0.25", -250_000_000),
        ("19", 19_000_000_000),
        (" 1.5 ", 1_500_000_000),
    ],
)
def test_parse_usd_is_exact(text: str, nano: int) -> None:
    assert parse_usd(text) == nano


@pytest.mark.parametrize("text", ["1e3", "NaN", "inf", "0.0000000001", "", "1_000", "abc", "1.2.3"])
def test_parse_usd_refuses_what_is_not_a_plain_decimal(text: str) -> None:
    with pytest.raises(MoneyFormatError):
        parse_usd(text)


@pytest.mark.parametrize(
    ("nano", "text"),
    [(1_500_000_000, "1.50"), (1, "0.000000001"), (0, "0.00"), (-250_000_000, "-0.25"),
     (19_000_000_000, "19.00"), (123_456_789, "0.123456789")],
)  # fmt: skip
def test_format_usd(nano: int, text: str) -> None:
    assert format_usd(nano) == text


def _by_decimal(text: str) -> int | None:
    """What a decimal string is worth in nano-USD by Decimal arithmetic (None: refused)."""
    try:
        value = Decimal(text.strip()) * 10**9
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    return int(value)


@given(st.text(alphabet="0123456789.-+ e", max_size=24))
def test_parse_usd_agrees_with_decimal_arithmetic(text: str) -> None:
    """The plain form is parsed without Decimal; every text is worth what Decimal says or is
    refused (parse_usd also refuses exponents and blanks inside that Decimal would take)."""
    try:
        parsed: int | None = parse_usd(text)
    except MoneyFormatError:
        parsed = None
    if parsed is not None:
        assert parsed == _by_decimal(text)
    elif "e" not in text and " " not in text.strip() and text.strip():
        assert _by_decimal(text) is None


@pytest.mark.parametrize(
    ("text", "nano"),
    [("-0.00", 0), ("0.5", 500_000_000), ("12345678901.123456789", 12_345_678_901_123_456_789),
     ("-7.000000001", -7_000_000_001), ("00.10", 100_000_000)],
)  # fmt: skip
def test_the_plain_form_is_exact(text: str, nano: int) -> None:
    assert parse_usd(text) == nano


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_format_then_parse_round_trips(nano: int) -> None:
    assert parse_usd(format_usd(nano)) == nano


class _Doc(BaseModel):
    amount: Money


def test_money_field_is_int_in_python_and_string_in_json() -> None:
    doc = _Doc.model_validate_json('{"amount": "2.50"}')
    assert doc.amount == 2_500_000_000
    assert doc.model_dump_json() == '{"amount":"2.50"}'


def test_money_field_refuses_floats() -> None:
    with pytest.raises(ValueError, match="float"):
        _Doc.model_validate_json('{"amount": 2.5}')
