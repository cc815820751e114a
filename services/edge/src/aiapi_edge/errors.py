"""The edge's own error family, rendered in one place in the route's format.

Every refusal the gateway itself makes is a :class:`GatewayError` carrying its HTTP status and
the contract's error type; the route writes it with :func:`anthropic_error_body` or
:func:`openai_error_body_for`. ``retry-after`` is whole seconds, between 1 and 60.
"""

from __future__ import annotations

import math

import orjson

from aiapi_edge.openai import openai_error_body
from aiapi_edge.openai.errors import openai_error_type

_CODE_BY_TYPE = {
    "authentication_error": "invalid_api_key",
    "rate_limit_error": "rate_limit_exceeded",
    "insufficient_balance": "insufficient_balance",
    "overloaded_error": "overloaded",
    "request_too_large": "request_too_large",
}


def clamp_retry_after(seconds: float) -> int:
    """Whole seconds, at least 1 and never more than 60 (the contract's bound)."""
    return max(1, min(60, math.ceil(seconds)))


class GatewayError(Exception):
    """A refusal or fault of the gateway itself (not an upstream answer passed through)."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        retry_after: float | None = None,
        param: str | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.retry_after = None if retry_after is None else clamp_retry_after(retry_after)
        self.param = param
        # Answer with ``connection: close``: what is left of the request is not worth reading.
        self.close = close


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request_error", message, param=param)


def authentication_failed(message: str = "invalid x-api-key") -> GatewayError:
    return GatewayError(401, "authentication_error", message)


def not_found(message: str) -> GatewayError:
    return GatewayError(404, "not_found_error", message)


def anthropic_error_body(type_: str, message: str, request_id: str) -> bytes:
    """``{"type":"error","error":{"type","message"},"request_id"}``."""
    return orjson.dumps(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
    )


def openai_error_body_for(error: GatewayError) -> bytes:
    type_ = openai_error_type(error.type, error.status)
    return orjson.dumps(
        openai_error_body(error.message, type_, error.param, _CODE_BY_TYPE.get(type_))
    )


def sse_error_event(type_: str, message: str) -> bytes:
    """An Anthropic ``event: error`` frame, for a failure after the stream has started."""
    data = orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})
    return b"event: error\ndata: " + data + b"\n\n"
