"""The simulator's error family, in the Anthropic error shape, and the faults' errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from aiapi_simulator.faults import Fault

CREDIT_BALANCE_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)


@dataclass(slots=True)
class ApiError(Exception):
    """An error answered as `{"type":"error","error":{"type","message"},"request_id"}`."""

    status: int
    error_type: str
    message: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def error_body(error_type: str, message: str, request_id: str | None) -> bytes:
    payload: dict[str, object] = {
        "type": "error",
        "error": {"type": error_type, "message": message},
    }
    if request_id is not None:
        payload["request_id"] = request_id
    return orjson.dumps(payload)


def _retry_after(seconds: int | None) -> list[tuple[bytes, bytes]]:
    return [(b"retry-after", str(1 if seconds is None else seconds).encode())]


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
    if kind in {"529", "stream_error"}:
        return ApiError(
            529,
            "overloaded_error",
            "Overloaded",
            [*_retry_after(fault.retry_after), (b"x-should-retry", b"true")],
        )
    if kind == "500":
        return ApiError(500, "api_error", "Internal server error", [(b"x-should-retry", b"true")])
    if kind == "401":
        return ApiError(401, "authentication_error", "invalid x-api-key")
    if kind == "403":
        return ApiError(
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        )
    if kind == "credit_balance_too_low":
        return ApiError(400, "invalid_request_error", CREDIT_BALANCE_MESSAGE)
    raise ValueError(f"fault {kind!r} has no HTTP error form")
