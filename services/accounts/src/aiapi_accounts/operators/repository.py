"""Every SQL statement about operators, their tokens and sessions, and the audit log. Callers
own the transaction; nothing here commits. Values are always parameters."""

# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from aiapi_accounts.operators.domain import (
    AuditEntry,
    AuditRecord,
    Operator,
    OperatorSession,
    OperatorToken,
    Role,
)
from aiapi_accounts.repository import Conn, _all, _one

_OPERATOR_COLUMNS = (
    "o.id, o.name, o.email, o.role, o.created_at, o.created_by, o.disabled_at,"
    " o.password_hash IS NOT NULL AS has_password"
)
_TOKEN_COLUMNS = "id, operator_id, name, hint, created_at, last_used_at, revoked_at"  # noqa: S105
_SESSION_COLUMNS = "s.id, s.operator_id, s.csrf_token, s.expires_at"
_AUDIT_COLUMNS = (
    "id, at, operator_id, operator_name, source, method, route, target, account_id, status,"
    " summary, reason"
)


# -- operators -----------------------------------------------------------------------------------


async def insert_operator(
    conn: Conn,
    operator_id: str,
    name: str,
    email: str,
    role: Role,
    password_hash: str | None,
    created_by: str,
) -> Operator | None:
    """The new operator, or None when the email is taken."""
    row = await _one(
        conn,
        "WITH o AS (INSERT INTO operators (id, name, email, role, password_hash, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (email) DO NOTHING RETURNING *)"
        f" SELECT {_OPERATOR_COLUMNS} FROM o",
        (operator_id, name, email, role, password_hash, created_by),
    )
    return Operator(**row) if row else None


async def get_operator(conn: Conn, operator_id: str) -> Operator | None:
    row = await _one(
        conn, f"SELECT {_OPERATOR_COLUMNS} FROM operators o WHERE o.id = %s", (operator_id,)
    )
    return Operator(**row) if row else None


async def list_operators(conn: Conn) -> list[Operator]:
    rows = await _all(
        conn, f"SELECT {_OPERATOR_COLUMNS} FROM operators o ORDER BY o.created_at", ()
    )
    return [Operator(**row) for row in rows]


async def operator_credentials(conn: Conn, email: str) -> tuple[Operator, str | None] | None:
    """The enabled operator of an email, with its password hash."""
    row = await _one(
        conn,
        f"SELECT {_OPERATOR_COLUMNS}, o.password_hash FROM operators o"
        " WHERE o.email = %s AND o.disabled_at IS NULL",
        (email,),
    )
    if row is None:
        return None
    password_hash = row.pop("password_hash")
    return Operator(**row), password_hash


async def set_disabled(conn: Conn, operator_id: str, disabled: bool) -> None:
    """Disabling keeps the first moment; it also ends the operator's console sessions."""
    await conn.execute(
        b"UPDATE operators SET disabled_at = CASE WHEN %s THEN coalesce(disabled_at, now()) END"
        b" WHERE id = %s",
        (disabled, operator_id),
    )
    if disabled:
        await conn.execute(
            b"UPDATE operator_sessions SET revoked_at = now()"
            b" WHERE operator_id = %s AND revoked_at IS NULL",
            (operator_id,),
        )


async def set_role(conn: Conn, operator_id: str, role: Role) -> None:
    await conn.execute(b"UPDATE operators SET role = %s WHERE id = %s", (role, operator_id))


async def set_password_hash(conn: Conn, operator_id: str, password_hash: str) -> None:
    await conn.execute(
        b"UPDATE operators SET password_hash = %s WHERE id = %s", (password_hash, operator_id)
    )


# -- tokens --------------------------------------------------------------------------------------


async def insert_token(
    conn: Conn, token_id: str, operator_id: str, token_hash: str, name: str, hint: str
) -> OperatorToken:
    row = await _one(
        conn,
        "INSERT INTO operator_tokens (id, operator_id, token_hash, name, hint)"
        f" VALUES (%s, %s, %s, %s, %s) RETURNING {_TOKEN_COLUMNS}",
        (token_id, operator_id, token_hash, name, hint),
    )
    assert row is not None
    return OperatorToken(**row)


async def list_tokens(conn: Conn, operator_id: str) -> list[OperatorToken]:
    rows = await _all(
        conn,
        f"SELECT {_TOKEN_COLUMNS} FROM operator_tokens WHERE operator_id = %s"
        " ORDER BY created_at DESC",
        (operator_id,),
    )
    return [OperatorToken(**row) for row in rows]


async def revoke_token(conn: Conn, operator_id: str, token_id: str) -> bool:
    """False when the operator has no such token (a revoked one is revoked again: no change)."""
    row = await _one(
        conn,
        "UPDATE operator_tokens SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = %s AND operator_id = %s RETURNING id",
        (token_id, operator_id),
    )
    return row is not None


async def operator_by_token(conn: Conn, token_hash: str) -> Operator | None:
    """The enabled operator of a live token; its last-used time moves (once a minute)."""
    row = await _one(
        conn,
        "WITH t AS (UPDATE operator_tokens SET last_used_at = CASE WHEN last_used_at IS NULL"
        " OR last_used_at < now() - interval '1 minute' THEN now() ELSE last_used_at END"
        " WHERE token_hash = %s AND revoked_at IS NULL RETURNING operator_id)"
        f" SELECT {_OPERATOR_COLUMNS} FROM operators o JOIN t ON t.operator_id = o.id"
        " WHERE o.disabled_at IS NULL",
        (token_hash,),
    )
    return Operator(**row) if row else None


# -- console sessions ----------------------------------------------------------------------------


async def insert_session(
    conn: Conn,
    session_id: str,
    token_hash: str,
    operator_id: str,
    csrf_token: str,
    user_agent: str,
    ttl_s: int,
) -> OperatorSession:
    row = await _one(
        conn,
        "INSERT INTO operator_sessions AS s"
        " (id, token_hash, operator_id, csrf_token, user_agent, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
        f" RETURNING {_SESSION_COLUMNS}",
        (session_id, token_hash, operator_id, csrf_token, user_agent[:300], ttl_s),
    )
    assert row is not None
    return OperatorSession(**row)


async def live_session(conn: Conn, token_hash: str) -> tuple[Operator, OperatorSession] | None:
    """The live session of a cookie and its enabled operator; last-seen moves once a minute."""
    row = await _one(
        conn,
        "WITH s AS (UPDATE operator_sessions SET last_seen_at = CASE"
        " WHEN last_seen_at < now() - interval '1 minute' THEN now() ELSE last_seen_at END"
        " WHERE token_hash = %s AND revoked_at IS NULL AND expires_at > now() RETURNING *)"
        f" SELECT {_OPERATOR_COLUMNS}, s.id AS session_id, s.csrf_token, s.expires_at FROM s"
        " JOIN operators o ON o.id = s.operator_id WHERE o.disabled_at IS NULL",
        (token_hash,),
    )
    if row is None:
        return None
    return _operator_and_session(row)


def _operator_and_session(row: dict[str, Any]) -> tuple[Operator, OperatorSession]:
    session = OperatorSession(
        id=row["session_id"],
        operator_id=row["id"],
        csrf_token=row["csrf_token"],
        expires_at=row["expires_at"],
    )
    operator_fields = {k: row[k] for k in Operator.__dataclass_fields__}
    return Operator(**operator_fields), session


async def revoke_session(conn: Conn, session_id: str) -> None:
    await conn.execute(
        b"UPDATE operator_sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
        (session_id,),
    )


async def prune_sessions(conn: Conn) -> None:
    await conn.execute(
        b"DELETE FROM operator_sessions WHERE expires_at < now() - interval '1 day'"
        b" OR revoked_at < now() - interval '1 day'"
    )


# -- the audit log -------------------------------------------------------------------------------


async def append_audit(conn: Conn, entry: AuditRecord) -> int:
    row = await _one(
        conn,
        "INSERT INTO audit_log (operator_id, operator_name, source, method, route, target,"
        " account_id, status, summary, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            entry.operator_id,
            entry.operator_name,
            entry.source,
            entry.method,
            entry.route,
            Jsonb(entry.target),
            entry.account_id,
            entry.status,
            Jsonb(entry.summary),
            entry.reason,
        ),
    )
    assert row is not None
    return int(row["id"])


@dataclass(frozen=True)
class AuditFilter:
    account_id: str | None = None
    operator: str | None = None  # an operator id or name
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 100


async def list_audit(conn: Conn, where: AuditFilter) -> list[AuditEntry]:
    """Newest first, ``limit`` entries older than ``before_id`` (the cursor)."""
    rows = await _all(
        conn,
        f"SELECT {_AUDIT_COLUMNS} FROM audit_log"
        " WHERE (%s::text IS NULL OR account_id = %s)"
        " AND (%s::text IS NULL OR operator_id = %s OR operator_name = %s)"
        " AND (%s::timestamptz IS NULL OR at >= %s)"
        " AND (%s::timestamptz IS NULL OR at < %s)"
        " AND (%s::bigint IS NULL OR id < %s)"
        " ORDER BY id DESC LIMIT %s",
        (
            where.account_id,
            where.account_id,
            where.operator,
            where.operator,
            where.operator,
            where.since,
            where.since,
            where.until,
            where.until,
            where.before_id,
            where.before_id,
            where.limit,
        ),
    )
    return [AuditEntry(**row) for row in rows]
