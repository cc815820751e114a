"""The error families every service shares: domain errors (:class:`Problem`) mapped to each route
family's wire format in one table per family, and the consumer outcomes (ack/nak/term)."""

from __future__ import annotations

from enum import StrEnum


class RetryableError(Exception):
    """The work may succeed later (a database or peer outage): redeliver after a delay."""

    def __init__(self, message: str, *, delay_s: float = 2.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PoisonMessage(Exception):
    """The message can never be handled (undecodable, contradicts the contract): terminate it."""


class Problem(StrEnum):
    """The domain errors every service names the same way.

    A service raises its own exception carrying one of these; each route family (the edge's
    Anthropic and OpenAI routes, the customer and operator APIs) maps them to its wire format
    (HTTP status, error type, code) in one table of its own. A peer's error reply (billing's
    ``ApiError`` over NATS) maps into this set on the caller's side, by its status.
    """

    INVALID_REQUEST = "invalid_request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    HEADERS_TOO_LARGE = "headers_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"  # a dependency cannot be reached now: retry later
    BAD_GATEWAY = "bad_gateway"  # a dependency answered, but not usefully
    INTERNAL = "internal"
