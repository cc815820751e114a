"""The live catalogue's tables: ``catalogue_models``, ``catalogue_aliases``, ``catalogue_version``.

The version is bumped by triggers on these tables and on ``prices`` (migration 0010).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from aiapi_shared.catalogue import ModelEntry
from psycopg.types.json import Jsonb

from aiapi_billing.repository import Conn


async def insert_model_if_new(conn: Conn, model: ModelEntry) -> None:
    """Add a shipped model unless the table has it (an operator's edits are kept)."""
    await conn.execute(
        "INSERT INTO catalogue_models"
        " (id, display_name, created_at, context_window, max_output_tokens, traits)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (
            model.id,
            model.display_name,
            model.created_at,
            model.context_window,
            model.max_output_tokens,
            Jsonb(model.traits.model_dump()),
        ),
    )


async def insert_alias_if_new(conn: Conn, alias: str, target: str) -> None:
    await conn.execute(
        "INSERT INTO catalogue_aliases (alias, target) VALUES (%s, %s)"
        " ON CONFLICT (alias) DO NOTHING",
        (alias, target),
    )


async def version(conn: Conn) -> int:
    cur = await conn.execute("SELECT version FROM catalogue_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


class ModelRow(NamedTuple):
    id: str
    display_name: str
    created_at: datetime
    context_window: int
    max_output_tokens: int
    traits: dict[str, Any]


async def models_on_sale(conn: Conn) -> list[ModelRow]:
    """The models marked on sale, newest first."""
    cur = await conn.execute(
        "SELECT id, display_name, created_at, context_window, max_output_tokens, traits"
        " FROM catalogue_models WHERE on_sale ORDER BY created_at DESC, id"
    )
    return [ModelRow(*row) for row in await cur.fetchall()]


async def aliases(conn: Conn) -> dict[str, str]:
    """Every alias and its target, by alias."""
    cur = await conn.execute("SELECT alias, target FROM catalogue_aliases ORDER BY alias")
    return {str(a): str(t) for a, t in await cur.fetchall()}


async def model_exists(conn: Conn, model_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM catalogue_models WHERE id = %s", (model_id,))
    return await cur.fetchone() is not None


async def upsert_model(
    conn: Conn,
    model_id: str,
    *,
    display_name: str,
    context_window: int,
    max_output_tokens: int,
    traits: dict[str, Any],
    on_sale: bool,
) -> None:
    await conn.execute(
        "INSERT INTO catalogue_models"
        " (id, display_name, context_window, max_output_tokens, traits, on_sale)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
        " display_name = excluded.display_name, context_window = excluded.context_window,"
        " max_output_tokens = excluded.max_output_tokens, traits = excluded.traits,"
        " on_sale = excluded.on_sale",
        (model_id, display_name, context_window, max_output_tokens, Jsonb(traits), on_sale),
    )


async def delete_alias(conn: Conn, alias: str) -> None:
    await conn.execute("DELETE FROM catalogue_aliases WHERE alias = %s", (alias,))


async def put_alias(conn: Conn, alias: str, target: str) -> None:
    await conn.execute(
        "INSERT INTO catalogue_aliases (alias, target) VALUES (%s, %s)"
        " ON CONFLICT (alias) DO UPDATE SET target = excluded.target",
        (alias, target),
    )


CHANGE_CHANNEL = "aiapi_billing_catalogue"  # NOTIFYed by the version triggers (migration 0035)


async def listen_for_changes(conn: Conn) -> None:
    """Subscribe ``conn`` (autocommit) to the catalogue's change notifications."""
    await conn.execute(f"LISTEN {CHANGE_CHANNEL}")
