"""The accounts error family: each error carries its HTTP status and error type.

Routes raise these; :mod:`aiapi_accounts.app` turns every one into
``{"error": {"type": ..., "message": ...}}`` in one place. Messages never contain secrets.
"""

from __future__ import annotations


class AccountsError(Exception):
    status: int = 500
    type: str = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(AccountsError):
    status = 400
    type = "invalid_request_error"


class Unauthenticated(AccountsError):
    status = 401
    type = "authentication_error"


class Forbidden(AccountsError):
    status = 403
    type = "permission_error"


class NotFound(AccountsError):
    status = 404
    type = "not_found_error"


class TooLarge(AccountsError):
    status = 413
    type = "request_too_large"


class Conflict(AccountsError):
    status = 409
    type = "conflict_error"


class TooManyAttempts(AccountsError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"retry-after": str(max(1, retry_after_s))})


class PeerUnavailable(AccountsError):
    """Billing or payments did not answer (not running, or too slow)."""

    status = 503
    type = "api_error"


class PeerRefused(AccountsError):
    """Billing or payments answered with an error; its status and type are passed on."""

    def __init__(self, message: str, *, status: int, error_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = error_type
