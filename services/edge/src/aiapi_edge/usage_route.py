"""``GET /v1/usage/requests/{id}``: the priced record of one of the caller's own requests.

Billing owns the record; the edge asks it over NATS with the caller's account id, so another
account's request id answers 404 exactly like an unknown one.
"""

from __future__ import annotations

from aiapi_shared.billing_api import (
    REQUEST_RECORD_SUBJECT,
    RequestRecordQuery,
    RequestRecordReply,
)
from aiapi_shared.bus import Bus, BusUnavailable, ErrorReply, InvalidReply
from aiapi_shared.errors import Problem, problem_for_status

from aiapi_edge.errors import GatewayError, not_found


async def request_record(bus: Bus, account_id: str, request_id: str, timeout_s: float) -> bytes:
    query = RequestRecordQuery(account_id=account_id, request_id=request_id)
    try:
        reply = await bus.call(
            REQUEST_RECORD_SUBJECT, query, RequestRecordReply, timeout_s=timeout_s
        )
    except BusUnavailable:
        raise GatewayError(
            Problem.UNAVAILABLE, "Usage records are unavailable.", retry_after=5
        ) from None
    except InvalidReply:
        raise GatewayError(Problem.BAD_GATEWAY, "Billing answered oddly.") from None
    except ErrorReply as exc:
        if exc.error.status == 404:
            raise not_found(f"No request {request_id!r} for this account.") from None
        # Billing's refusal maps into the shared domain errors by its status.
        raise GatewayError(problem_for_status(exc.error.status), exc.error.message) from None
    return reply.model_dump_json().encode()
