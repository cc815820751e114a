"""Asking billing a question over NATS, its refusals mapped to the customer's errors: billing
unreachable is a 503 (retry-after set), a 404 says what is missing, any other refusal keeps its
status. The usage record route and the Message Batches routes use it."""

from __future__ import annotations

from typing import TypeVar

from aiapi_shared.bus import Bus, BusUnavailable, ErrorReply, InvalidReply
from aiapi_shared.errors import Problem, problem_for_status
from aiapi_shared.events.base import Record

from aiapi_edge.errors import GatewayError, not_found

R = TypeVar("R", bound=Record)


async def ask_billing(
    bus: Bus,
    subject: str,
    request: Record,
    reply: type[R],
    *,
    timeout_s: float,
    unavailable: str,
    missing: str,
) -> R:
    """Ask billing; its refusals become the customer's errors (a 404 says ``missing``)."""
    try:
        return await bus.call(subject, request, reply, timeout_s=timeout_s)
    except BusUnavailable:
        raise GatewayError(Problem.UNAVAILABLE, unavailable, retry_after=5) from None
    except InvalidReply:
        raise GatewayError(Problem.BAD_GATEWAY, "Billing answered oddly.") from None
    except ErrorReply as exc:
        if exc.error.status == 404:
            raise not_found(missing) from None
        # Billing's refusal maps into the shared domain errors by its status.
        raise GatewayError(problem_for_status(exc.error.status), exc.error.message) from None
