"""The simulator's error family, in the Anthropic error shape, and the faults' errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from aiapi_simulator.faults import Fault

CREDIT_BALANCE_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)


SPEND_LIMIT_MESSAGE = (
    "You have reached your organization's monthly usage limit for its API tier. "
    "Access resumes at the start of next month."
)
BETA_MESSAGE = (
    "Unexpected value(s) {values} for the `anthropic-beta` header. Please consult our "
    "documentation at docs.anthropic.com or try again without the header."
)


@dataclass(slots=True)
class ApiError(Exception):
    """An error answered as `{"type":"error","error":{"type","message"},"request_id"}`
    (with `error.details.error_code` when `error_code` is set)."""

    status: int
    error_type: str
    message: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    error_code: str | None = None


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def error_body(
    error_type: str, message: str, request_id: str | None, error_code: str | None = None
) -> bytes:
    error: dict[str, object] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    payload: dict[str, object] = {"type": "error", "error": error}
    if request_id is not None:
        payload["request_id"] = request_id
    return orjson.dumps(payload)


def unknown_betas(values: list[str]) -> ApiError:
    """The real API's answer to `anthropic-beta` values it does not know: it names them."""
    named = ", ".join(f"`{value}`" for value in values)
    return invalid_request(BETA_MESSAGE.format(values=named))


def _retry_after(seconds: int | None, default: int | None = 1) -> list[tuple[bytes, bytes]]:
    value = default if seconds is None else seconds
    return [] if value is None else [(b"retry-after", str(value).encode())]


def fault_error(fault: Fault) -> ApiError:
    """The HTTP error a status fault (or a stream fault on a non-streaming request) answers."""
    kind = fault.kind
    if kind == "429":
        return ApiError(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests "
            "per minute. Please reduce the prompt length or the maximum tokens requested, "
            "or try again later.",
            [*_retry_after(fault.retry_after), (b"x-should-retry", b"true")],
        )
    if kind == "spend_limit":
        return ApiError(
            429,
            "rate_limit_error",
            SPEND_LIMIT_MESSAGE,
            [(b"x-should-retry", b"false")],
            error_code="enforced_spend_limit_reached",
        )
    if kind in {"529", "stream_error"}:
        return ApiError(
            529,
            "overloaded_error",
            "Overloaded",
            [*_retry_after(fault.retry_after, None), (b"x-should-retry", b"true")],
        )
    if kind == "500":
        return ApiError(500, "api_error", "Internal server error", [(b"x-should-retry", b"true")])
    if kind == "401":
        return ApiError(401, "authentication_error", "invalid x-api-key")
    if kind == "402":
        return ApiError(
            402,
            "billing_error",
            "There is an issue with your organization's billing or payment information.",
        )
    if kind == "403":
        return ApiError(
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        )
    if kind == "credit_balance_too_low":
        return ApiError(400, "invalid_request_error", CREDIT_BALANCE_MESSAGE)
    raise ValueError(f"fault {kind!r} has no HTTP error form")
