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
    """The domain errors every service names the same way, each with its HTTP status.

    A service raises its own exception carrying one of these; each route family (the edge's
    Anthropic and OpenAI routes, the customer and operator APIs) maps them to its wire names
    (error type, code) in one table of its own. A peer's error reply (billing's or payments'
    ``ApiError`` over NATS) maps into this set on the caller's side: :func:`problem_for_status`.
    """

    INVALID_REQUEST = "invalid_request"
    UNAUTHENTICATED = "unauthenticated"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    REQUEST_TIMEOUT = "request_timeout"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    HEADERS_TOO_LARGE = "headers_too_large"
    INTERNAL = "internal"
    BAD_GATEWAY = "bad_gateway"  # a dependency answered, but not usefully
    UNAVAILABLE = "unavailable"  # a dependency cannot be reached now: retry later
    OVERLOADED = "overloaded"  # the upstream API is busy for everyone

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: dict[Problem, int] = {
    Problem.INVALID_REQUEST: 400,
    Problem.UNAUTHENTICATED: 401,
    Problem.INSUFFICIENT_BALANCE: 402,
    Problem.FORBIDDEN: 403,
    Problem.NOT_FOUND: 404,
    Problem.REQUEST_TIMEOUT: 408,
    Problem.CONFLICT: 409,
    Problem.TOO_LARGE: 413,
    Problem.RATE_LIMITED: 429,
    Problem.HEADERS_TOO_LARGE: 431,
    Problem.INTERNAL: 500,
    Problem.BAD_GATEWAY: 502,
    Problem.UNAVAILABLE: 503,
    Problem.OVERLOADED: 529,
}
# A bare status names the problem whose status it is; a 500 from elsewhere is that party's
# fault, not this service's own (``INTERNAL``), so it falls back like any other 5xx.
_BY_STATUS = {
    status: problem for problem, status in _STATUS.items() if problem is not Problem.INTERNAL
}


def problem_for_status(status: int) -> Problem:
    """The domain error a bare status stands for (a peer's reply, an upstream body without a
    type): its own, else by class (a 4xx is the request's, anything else the peer's)."""
    problem = _BY_STATUS.get(status)
    if problem is not None:
        return problem
    return Problem.INVALID_REQUEST if 400 <= status < 500 else Problem.BAD_GATEWAY
