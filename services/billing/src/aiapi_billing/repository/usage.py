"""The ``usage_records`` table (one row per settled request id) and ``usage_conflicts``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aiapi_shared.events import UsageRecorded

from aiapi_billing.pricing import Price
from aiapi_billing.repository import Conn, insert_rows, json_rows


class PricedUsage(Protocol):
    """A usage event with its cost, the price it was costed at and the digest of its content."""

    @property
    def event(self) -> UsageRecorded: ...
    @property
    def cost(self) -> int: ...
    @property
    def price(self) -> Price: ...
    @property
    def digest(self) -> str: ...
    @property
    def list_cost(self) -> int: ...


# Each column of a record and its type, in the statement's order.
_RECORD_COLUMNS = (
    ("request_id", "text"), ("account_id", "text"), ("key_id", "text"), ("model", "text"),
    ("plan", "text"), ("route", "text"), ("outcome", "text"), ("status_code", "int"),
    ("started_at", "timestamptz"), ("finished_at", "timestamptz"), ("input_tokens", "bigint"),
    ("output_tokens", "bigint"), ("cache_read_tokens", "bigint"),
    ("cache_write_5m_tokens", "bigint"), ("cache_write_1h_tokens", "bigint"),
    ("thinking_tokens", "bigint"), ("cost", "bigint"), ("price_id", "bigint"),
    ("price_effective_from", "timestamptz"), ("hold_id", "text"), ("content_hash", "text"),
    ("web_search_requests", "bigint"), ("web_fetch_requests", "bigint"),
    ("service_tier", "text"), ("inference_geo", "text"), ("speed", "text"),
    ("list_cost", "bigint"),
)  # fmt: skip
_INSERT_RECORDS = insert_rows(
    "usage_records", _RECORD_COLUMNS, "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
)


def _record_row(item: PricedUsage) -> tuple[object, ...]:
    e, u = item.event, item.event.usage
    return (e.request_id, e.account_id, e.key_id, e.model, e.plan, e.route, e.outcome,
            e.status_code, e.started_at, e.finished_at, u.input_tokens, u.output_tokens,
            u.cache_read_input_tokens, u.cache_creation_5m_input_tokens,
            u.cache_creation_1h_input_tokens, u.thinking_tokens, item.cost, item.price.price_id,
            item.price.effective_from, e.hold_id, item.digest, u.web_search_requests,
            u.web_fetch_requests, u.service_tier, u.inference_geo, u.speed,
            item.list_cost)  # fmt: skip


async def insert_records(conn: Conn, items: Sequence[PricedUsage]) -> set[str]:
    """Insert every record in one statement; the request ids that were new (the rest existed)."""
    cur = await conn.execute(_INSERT_RECORDS, (json_rows(_record_row(item) for item in items),))
    return {str(r[0]) for r in await cur.fetchall()}


async def stored_digests(conn: Conn, request_ids: Sequence[str]) -> dict[str, str]:
    """The content digest of each of these request ids' records that exists."""
    if not request_ids:
        return {}
    cur = await conn.execute(
        "SELECT request_id, content_hash FROM usage_records WHERE request_id = ANY(%s)",
        (list(request_ids),),
    )
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


async def set_aside(conn: Conn, conflicts: Sequence[PricedUsage]) -> None:
    """Keep events that contradict their settled record, for an operator (never billed)."""
    if not conflicts:
        return
    await conn.execute(
        "INSERT INTO usage_conflicts (request_id, content_hash, payload)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[]) ON CONFLICT DO NOTHING",
        (
            [c.event.request_id for c in conflicts],
            [c.digest for c in conflicts],
            [c.event.model_dump_json() for c in conflicts],
        ),
    )


async def cost_under(conn: Conn, prefix: str) -> tuple[int, int]:
    """How many records have ids starting with ``prefix`` (a batch's requests) and their cost."""
    cur = await conn.execute(
        "SELECT count(*), COALESCE(sum(cost), 0) FROM usage_records"
        " WHERE left(request_id, %s) = %s",
        (len(prefix), prefix),
    )
    row = await cur.fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))
