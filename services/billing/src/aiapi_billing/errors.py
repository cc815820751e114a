"""Billing's error family: each refusal carries the HTTP status the caller answers with."""

from __future__ import annotations

from aiapi_shared.billing_api import ApiError


class BillingError(Exception):
    status = 400
    code = "invalid_request_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_api_error(self) -> ApiError:
        return ApiError(error=self.code, message=self.message, status=self.status)


class NotFound(BillingError):
    status = 404
    code = "not_found_error"


class InsufficientBalance(BillingError):
    status = 402
    code = "insufficient_balance"


class Unavailable(BillingError):
    """The database cannot be reached: the caller may retry."""

    status = 503
    code = "api_error"


class UnpricedModel(Exception):
    """No price is in force for a model at a request's start: wait for the operator to add one."""
