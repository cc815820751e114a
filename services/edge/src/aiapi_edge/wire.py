"""The JSON the edge itself writes on the hot path, built with orjson from plain values (pure).

The documents are the shared contract's (:class:`~aiapi_shared.admission.AdmissionRequest`,
:class:`~aiapi_shared.events.usage_v1.UsageRecorded`); building them here skips pydantic's model
construction and validation (about 0.1 ms per request) for values the edge produced itself. A
test validates every document built here against the contract's models, field for field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from aiapi_shared.money import format_usd, parse_usd

_OPTIONS = orjson.OPT_UTC_Z

DECISIONS = frozenset(
    {"admit", "insufficient_balance", "rate_limited", "account_inactive", "unknown_model"}
)


def admission_request(
    *,
    request_id: str,
    account_id: str,
    key_id: str,
    plan: str,
    model: str,
    estimated_input_tokens: int,
    max_tokens: int,
    started_at: datetime,
    server_tools_nano: int = 0,
    input_premium_bps: int = 10_000,
    output_premium_bps: int = 10_000,
) -> bytes:
    return orjson.dumps(
        {
            "input_premium_bps": input_premium_bps,
            "output_premium_bps": output_premium_bps,
            # Money in the contract's JSON form (a decimal USD string), as billing's model dumps it.
            "server_tools_nano": format_usd(server_tools_nano),
            "request_id": request_id,
            "account_id": account_id,
            "key_id": key_id,
            "plan": plan,
            "model": model,
            "estimated_input_tokens": estimated_input_tokens,
            "max_tokens": max_tokens,
            "started_at": started_at,
        },
        option=_OPTIONS,
    )


class MalformedReply(ValueError):
    """Billing's answer is not the contract's shape."""


def admission_reply(raw: bytes) -> dict[str, Any]:
    """Billing's reply as a dict with ``decision``, ``hold_id``, ``hold_amount`` (nano-USD),
    ``retry_after_s`` and ``message``; :class:`MalformedReply` when it is not one."""
    try:
        reply = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedReply("not JSON") from exc
    if not isinstance(reply, dict) or reply.get("decision") not in DECISIONS:
        raise MalformedReply("no known decision")
    hold_id = reply.get("hold_id")
    retry_after = reply.get("retry_after_s")
    amount = reply.get("hold_amount", "0")
    message = reply.get("message", "")
    try:
        return {
            "decision": reply["decision"],
            "hold_id": hold_id if isinstance(hold_id, str) else None,
            "hold_amount": parse_usd(amount) if isinstance(amount, str) else 0,
            "retry_after_s": retry_after if isinstance(retry_after, int) else None,
            "message": message if isinstance(message, str) else "",
        }
    except ValueError as exc:
        raise MalformedReply("hold_amount") from exc


def usage_event(
    *,
    request_id: str,
    account_id: str,
    key_id: str,
    model: str,
    requested_model: str,
    plan: str,
    route: str,
    started_at: datetime,
    finished_at: datetime,
    outcome: str,
    status_code: int,
    client_disconnected: bool,
    usage: Mapping[str, int | str],
    hold_id: str | None,
    admission: str,
    edge_id: str,
    lease_id: str | None = None,
    lease_reserved: int = 0,
    lease_tokens: int = 0,
) -> bytes:
    """A ``UsageRecorded`` (``event_id`` = ``request_id``, ``occurred_at`` = ``finished_at``)."""
    return orjson.dumps(
        {
            "event_id": request_id,
            "occurred_at": finished_at,
            "request_id": request_id,
            "account_id": account_id,
            "key_id": key_id,
            "model": model,
            "requested_model": requested_model,
            "plan": plan,
            "route": route,
            "started_at": started_at,
            "finished_at": finished_at,
            "outcome": outcome,
            "status_code": status_code,
            "client_disconnected": client_disconnected,
            "usage": usage,
            "hold_id": hold_id,
            "admission": admission,
            "edge_id": edge_id,
            "lease_id": lease_id,
            "lease_reserved": format_usd(lease_reserved),
            "lease_tokens": lease_tokens,
        },
        option=_OPTIONS,
    )
