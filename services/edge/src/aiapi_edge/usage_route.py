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
from aiapi_shared.bus import Bus

from aiapi_edge.billing_ask import ask_billing


async def request_record(bus: Bus, account_id: str, request_id: str, timeout_s: float) -> bytes:
    query = RequestRecordQuery(account_id=account_id, request_id=request_id)
    reply = await ask_billing(
        bus,
        REQUEST_RECORD_SUBJECT,
        query,
        RequestRecordReply,
        timeout_s=timeout_s,
        unavailable="Usage records are unavailable.",
        missing=f"No request {request_id!r} for this account.",
    )
    return reply.model_dump_json().encode()
