"""The accounts error family and the one table of the customer and operator APIs.

Each error names a shared domain error (:class:`~aiapi_shared.errors.Problem`, which carries its
HTTP status); :data:`ERROR_TYPES` says what it is called in ``{"error": {"type", "message"}}``,
which :mod:`aiapi_accounts.app` writes in one place. A peer's refusal (billing's or payments'
``ApiError``) maps into the same set by its status. Messages never contain secrets.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from aiapi_shared.errors import Problem, problem_for_status

# The one table: each domain error's type on the customer and operator APIs.
ERROR_TYPES: Final = MappingProxyType(
    {
        Problem.INVALID_REQUEST: "invalid_request_error",
        Problem.UNAUTHENTICATED: "authentication_error",
        Problem.INSUFFICIENT_BALANCE: "insufficient_balance",
        Problem.FORBIDDEN: "permission_error",
        Problem.NOT_FOUND: "not_found_error",
        Problem.REQUEST_TIMEOUT: "invalid_request_error",
        Problem.CONFLICT: "conflict_error",
        Problem.TOO_LARGE: "request_too_large",
        Problem.RATE_LIMITED: "rate_limit_error",
        Problem.HEADERS_TOO_LARGE: "invalid_request_error",
        Problem.INTERNAL: "internal_error",
        Problem.BAD_GATEWAY: "api_error",
        Problem.UNAVAILABLE: "api_error",
        Problem.OVERLOADED: "api_error",
    }
)


class AccountsError(Exception):
    problem: Problem = Problem.INTERNAL

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def type(self) -> str:
        return ERROR_TYPES[self.problem]


class InvalidRequest(AccountsError):
    problem = Problem.INVALID_REQUEST


class Unauthenticated(AccountsError):
    problem = Problem.UNAUTHENTICATED


class Forbidden(AccountsError):
    problem = Problem.FORBIDDEN


class NotFound(AccountsError):
    problem = Problem.NOT_FOUND


class TooLarge(AccountsError):
    problem = Problem.TOO_LARGE


class Conflict(AccountsError):
    problem = Problem.CONFLICT


class TooManyAttempts(AccountsError):
    problem = Problem.RATE_LIMITED

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"retry-after": str(max(1, retry_after_s))})


class PeerUnavailable(AccountsError):
    """Billing or payments did not answer (not running, or too slow)."""

    problem = Problem.UNAVAILABLE


class PeerRefused(AccountsError):
    """Billing or payments refused; its status says which domain error (the peers name their
    error types each their own way, so only the status is taken)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.problem = problem_for_status(status)
