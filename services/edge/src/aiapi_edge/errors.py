"""The edge's own error family and its one table: each domain error's type in the Anthropic
and the OpenAI error shapes (pure).

Every refusal the gateway itself makes is a :class:`GatewayError` naming a
:class:`~aiapi_shared.errors.Problem` (which carries its HTTP status); :data:`WIRE` says what
it is called on each route family, and :func:`anthropic_error_body` /
:func:`openai_error_body_for` write it in the route's shape. An upstream or peer answer that
carries only a status maps into the same set (:func:`~aiapi_shared.errors.problem_for_status`).
``retry-after`` is whole seconds, between 1 and 60.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import orjson
from aiapi_shared.errors import Problem


@dataclass(frozen=True, slots=True)
class Wire:
    """One domain error on the wire (its status is :attr:`Problem.status`): the Anthropic
    ``error.type``, the OpenAI ``error.type`` and ``error.code`` (which some OpenAI clients
    switch on)."""

    anthropic: str
    openai: str
    code: str | None = None


_INVALID = "invalid_request_error"

# The one table. The OpenAI type names equal the Anthropic ones on purpose: the contract keeps
# ``insufficient_balance`` as it is on both routes (never a 429 type).
WIRE: Final = MappingProxyType(
    {
        Problem.INVALID_REQUEST: Wire(_INVALID, _INVALID),
        Problem.UNAUTHENTICATED: Wire(
            "authentication_error", "authentication_error", "invalid_api_key"
        ),
        Problem.INSUFFICIENT_BALANCE: Wire(
            "insufficient_balance", "insufficient_balance", "insufficient_balance"
        ),
        Problem.FORBIDDEN: Wire("permission_error", "permission_error"),
        # OpenAI's API calls its 404s (an unknown model, say) ``invalid_request_error``.
        Problem.NOT_FOUND: Wire("not_found_error", _INVALID),
        Problem.REQUEST_TIMEOUT: Wire(_INVALID, _INVALID),
        Problem.CONFLICT: Wire(_INVALID, _INVALID),
        Problem.TOO_LARGE: Wire("request_too_large", "request_too_large", "request_too_large"),
        Problem.RATE_LIMITED: Wire("rate_limit_error", "rate_limit_error", "rate_limit_exceeded"),
        Problem.HEADERS_TOO_LARGE: Wire(_INVALID, _INVALID),
        Problem.INTERNAL: Wire("internal_error", "internal_error"),
        Problem.BAD_GATEWAY: Wire("api_error", "api_error"),
        Problem.UNAVAILABLE: Wire("api_error", "api_error"),
        Problem.OVERLOADED: Wire("overloaded_error", "overloaded_error", "overloaded"),
    }
)
# OpenAI codes by OpenAI type, for an upstream error that names its type.
_CODE_BY_OPENAI_TYPE: Final = MappingProxyType(
    {wire.openai: wire.code for wire in WIRE.values() if wire.code is not None}
)


def openai_code(openai_type: str) -> str | None:
    return _CODE_BY_OPENAI_TYPE.get(openai_type)


def clamp_retry_after(seconds: float) -> int:
    """Whole seconds, at least 1 and never more than 60 (the contract's bound)."""
    return max(1, min(60, math.ceil(seconds)))


class GatewayError(Exception):
    """A refusal or fault of the gateway itself (not an upstream answer passed through)."""

    def __init__(
        self,
        problem: Problem,
        message: str,
        *,
        retry_after: float | None = None,
        param: str | None = None,
        code: str | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.wire = WIRE[problem]
        self.message = message
        self.retry_after = None if retry_after is None else clamp_retry_after(retry_after)
        self.param = param
        self.code = code  # the OpenAI code, when more precise than the problem's
        # Answer with ``connection: close``: what is left of the request is not worth reading.
        self.close = close

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def type(self) -> str:
        """The Anthropic error type."""
        return self.wire.anthropic


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(Problem.INVALID_REQUEST, message, param=param)


def authentication_failed(message: str = "invalid x-api-key") -> GatewayError:
    return GatewayError(Problem.UNAUTHENTICATED, message)


def not_found(message: str) -> GatewayError:
    return GatewayError(Problem.NOT_FOUND, message)


def upstream_failed(message: str = "The upstream connection failed.") -> GatewayError:
    return GatewayError(Problem.BAD_GATEWAY, message)


def anthropic_error_body(type_: str, message: str, request_id: str) -> bytes:
    """``{"type":"error","error":{"type","message"},"request_id"}``."""
    return orjson.dumps(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
    )


def openai_error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, the OpenAI error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_error_body_for(error: GatewayError) -> bytes:
    wire = error.wire
    return orjson.dumps(
        openai_error_body(error.message, wire.openai, error.param, error.code or wire.code)
    )


def sse_error_event(type_: str, message: str) -> bytes:
    """An Anthropic ``event: error`` frame, for a failure after the stream has started."""
    data = orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})
    return b"event: error\ndata: " + data + b"\n\n"
