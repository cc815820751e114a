"""Errors in OpenAI form.

``TranslationError`` is what the request translation raises for a body it cannot express in the
Anthropic API; the caller answers it with status 400 and :meth:`TranslationError.to_openai`.
``openai_error_from_anthropic`` rewrites an Anthropic error body (from the upstream or from the
gateway's own error family) into the body an OpenAI client expects, keeping the type names the
contract promises (``insufficient_balance`` stays ``insufficient_balance``, never a 429 type):
types and codes come from the edge's one error table (:data:`aiapi_edge.errors.WIRE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiapi_shared.errors import problem_for_status

from aiapi_edge.errors import WIRE, openai_code
from aiapi_edge.errors import openai_error_body as openai_error_body

OpenAIErrorBody = dict[str, Any]

# Anthropic error types whose OpenAI name differs. An upstream ``billing_error`` is about the
# gateway's own upstream account, not the customer's balance, so the customer sees a server fault.
_RENAMED_TYPES: Final[Mapping[str, str]] = {
    "billing_error": "api_error",
    "timeout_error": "api_error",
}


class TranslationError(ValueError):
    """A Chat Completions request that cannot be expressed as an Anthropic request (a 400).

    ``param`` names the offending field the way OpenAI does (``messages[2].tool_calls[0]...``).
    """

    status: Final = 400

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_openai(self) -> OpenAIErrorBody:
        return openai_error_body(self.message, "invalid_request_error", self.param, self.code)


def openai_error_type(anthropic_type: str | None, status: int) -> str:
    """The OpenAI ``error.type`` for an Anthropic error type (or, lacking one, an HTTP status)."""
    if anthropic_type:
        return _RENAMED_TYPES.get(anthropic_type, anthropic_type)
    return WIRE[problem_for_status(status)].openai


def openai_error_from_anthropic(status: int, body: object) -> OpenAIErrorBody:
    """Rewrite an Anthropic error body ``{"type": "error", "error": {"type", "message"}}``.

    ``body`` may be anything the upstream sent (a non-JSON or oddly shaped body included); the
    status is kept by the caller. Used for non-stream errors and for an SSE ``error`` event.
    """
    anthropic_type: str | None = None
    message: str | None = None
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            if isinstance(inner.get("type"), str):
                anthropic_type = inner["type"]
            if isinstance(inner.get("message"), str):
                message = inner["message"]
    type_ = openai_error_type(anthropic_type, status)
    if not message:
        message = f"The upstream API returned an error ({type_}, status {status})."
    return openai_error_body(message, type_, None, openai_code(type_))
