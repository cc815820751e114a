"""What an upstream error answer says about the key that got it (pure).

Only the structured parts of the answer count: its status, ``error.type`` and
``error.details.error_code``. Never its ``message``: the upstream echoes parts of the client's
request there (an unknown ``anthropic-beta`` value comes back as "Unexpected value(s) `…`"), so
a customer could otherwise write any sentence into it, for example the old "credit balance is
too low", and knock keys out of the pool with requests that cost nothing.

The rule, from the Claude API's error reference (platform.claude.com/docs/en/api/errors) and the
error codes its official SDK types (``anthropic`` 2.x, ``types/shared/*_error.py``):

- 401 ``authentication_error``: the key is malformed, revoked or expired → the key.
- 402 ``billing_error`` without an ``error_code``: the organisation's billing or payment → the
  key. A 402 *with* a code (``linked_organization_*``) is about the request's ``billing_policy``.
- 403 ``permission_error`` without an ``error_code``: the key lacks permission → the key. A coded
  403 (``sandbox_egress_restricted``) is about what the request asked for.
- 429 ``rate_limit_error`` with ``enforced_spend_limit_reached`` or
  ``contract_spend_limit_reached``: the organisation's spend cap, no ``retry-after``, lasting
  until the month (or contract) changes → the key. Any other 429 → the key rests for its
  ``retry-after``.
- 400 with ``organization_on_hold``: Anthropic disabled the organisation → the key. Every other
  400, including "Your credit balance is too low" (an ``invalid_request_error``, told apart from
  a client's mistake only by its message), is the customer's answer.
- 529 ``overloaded_error``: the API is busy for everyone, not this key → retried after a
  backoff (:mod:`.backoff`), the key's health unchanged.
- other 5xx → the circuit breaker of :mod:`.pool`.
"""

from __future__ import annotations

from typing import Any

import orjson

from aiapi_edge.pool import Outcome

_SPEND_CAPS = frozenset({"enforced_spend_limit_reached", "contract_spend_limit_reached"})
_ORGANISATION_DISABLED = frozenset({"organization_on_hold"})
# Status → the error type that makes it a verdict on the key (when no error_code narrows it).
_KEY_FAULTS = {401: "authentication_error", 402: "billing_error", 403: "permission_error"}


def error_fields(body: bytes) -> tuple[str | None, str | None]:
    """``(error.type, error.details.error_code)`` of an Anthropic error body, when present."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None, None
    type_ = error.get("type")
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return (
        type_ if isinstance(type_, str) else None,
        code if isinstance(code, str) else None,
    )


def classify(status: int, body: bytes) -> Outcome | None:
    """The key's fault class for a non-200 answer, or None when the answer is the client's."""
    if status == 529:
        return "overloaded"
    if status >= 500:
        return "server_error"
    type_, code = error_fields(body)
    if status == 429:
        return "key_rejected" if code in _SPEND_CAPS else "rate_limited"
    if status in _KEY_FAULTS:
        return "key_rejected" if type_ == _KEY_FAULTS[status] and code is None else None
    if code in _ORGANISATION_DISABLED:
        return "key_rejected"
    return None
