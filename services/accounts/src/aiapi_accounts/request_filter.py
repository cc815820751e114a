"""The request log's query string: filters, the opaque page cursor, the CSV columns (pure)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

from aiapi_shared.billing_api import RequestListQuery, RequestLogRow
from aiapi_shared.money import format_usd

from aiapi_accounts.errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

CSV_COLUMNS = (
    "request_id", "created_at", "key_id", "model", "route", "status", "status_code",
    "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens", "thinking_tokens", "cost_usd",
)  # fmt: skip


def moment(raw: str, name: str, *, end_of_day: bool) -> datetime:
    """ISO 8601 date or date-time; a date alone is that whole day (UTC) and a time without an
    offset is UTC."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(row: RequestLogRow) -> str:
    raw = json.dumps({"t": row.created_at.isoformat(), "id": row.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw)
        return datetime.fromisoformat(found["t"]), str(found["id"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidRequest("cursor is not one this API gave") from None


def list_query(
    account_id: str, params: Mapping[str, str], *, limit: int | None = None
) -> RequestListQuery:
    """The billing query of ``?key_id=&model=&from=&to=&cursor=&limit=``."""
    since = moment(params["from"], "from", end_of_day=False) if params.get("from") else None
    until = moment(params["to"], "to", end_of_day=True) if params.get("to") else None
    before = _decode_cursor(params["cursor"]) if params.get("cursor") else (None, None)
    if limit is None:
        raw = params.get("limit", str(DEFAULT_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
        limit = int(raw)
    return RequestListQuery(
        account_id=account_id,
        key_id=params.get("key_id") or None,
        model=params.get("model") or None,
        since=since,
        until=until,
        before_started_at=before[0],
        before_request_id=before[1],
        limit=limit,
    )


def csv_row(row: RequestLogRow) -> list[str]:
    u = row.usage
    return [
        row.id, row.created_at.isoformat(), row.key_id, row.model, row.route, row.status,
        str(row.status_code), str(u.input_tokens), str(u.output_tokens),
        str(u.cache_read_input_tokens), str(u.cache_creation_5m_input_tokens),
        str(u.cache_creation_1h_input_tokens), str(u.thinking_tokens), format_usd(row.cost_usd),
    ]  # fmt: skip
