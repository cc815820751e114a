"""Errors in OpenAI form."""

from __future__ import annotations

from typing import Any

import pytest
from aiapi_edge.openai import TranslationError, openai_error_body, openai_error_from_anthropic


def anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_1"}


def test_translation_error_is_an_invalid_request_error() -> None:
    error = TranslationError("Only n=1 is supported.", "n", "unsupported_value")
    assert error.status == 400
    assert str(error) == "Only n=1 is supported."
    assert error.to_openai() == {
        "error": {
            "message": "Only n=1 is supported.",
            "type": "invalid_request_error",
            "param": "n",
            "code": "unsupported_value",
        }
    }


@pytest.mark.parametrize(
    ("status", "type_", "expected_type", "expected_code"),
    [
        (400, "invalid_request_error", "invalid_request_error", None),
        (401, "authentication_error", "authentication_error", "invalid_api_key"),
        (402, "insufficient_balance", "insufficient_balance", "insufficient_balance"),
        (403, "permission_error", "permission_error", None),
        (404, "not_found_error", "not_found_error", None),
        (413, "request_too_large", "request_too_large", "request_too_large"),
        (429, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
        (500, "api_error", "api_error", None),
        (500, "internal_error", "internal_error", None),
        (400, "billing_error", "api_error", None),
        (504, "timeout_error", "api_error", None),
        (529, "overloaded_error", "overloaded_error", "overloaded"),
    ],
)
def test_anthropic_error_types_map_to_openai(
    status: int, type_: str, expected_type: str, expected_code: str | None
) -> None:
    assert openai_error_from_anthropic(status, anthropic_error(type_, "Nope")) == {
        "error": {"message": "Nope", "type": expected_type, "param": None, "code": expected_code}
    }


@pytest.mark.parametrize(
    ("status", "expected_type"),
    [
        (401, "authentication_error"),
        (402, "insufficient_balance"),
        (418, "invalid_request_error"),
        (529, "overloaded_error"),
        (599, "api_error"),
    ],
)
def test_bodies_without_a_type_fall_back_on_the_status(status: int, expected_type: str) -> None:
    body = openai_error_from_anthropic(status, b"<html>bad gateway</html>")
    assert body["error"]["type"] == expected_type
    assert (
        body["error"]["message"]
        == f"The upstream API returned an error ({expected_type}, status {status})."
    )


def test_error_body_shape() -> None:
    assert openai_error_body("m", "api_error") == {
        "error": {"message": "m", "type": "api_error", "param": None, "code": None}
    }
