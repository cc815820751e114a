"""Every SQL statement of the accounts service. Callers own the transaction (one per request or
message); nothing here commits.

Queries are composed only from this module's constant column lists; every value is a parameter.
"""

# ruff: noqa: S608

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiapi_shared.events.base import Event
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from aiapi_accounts.domain import Account, ApiKey, Backoff, Session
from aiapi_accounts.upstream_view import StoredUpstreamKey

Conn = AsyncConnection[Any]


async def ping(conn: Conn) -> None:
    """One trivial statement: the database answers on this connection (the health check)."""
    await conn.execute(b"SELECT 1")


_ACCOUNT_COLUMNS = (
    "id, email, plan, status, created_at, updated_at, password_hash IS NOT NULL AS has_password,"
    " email_verified_at IS NOT NULL AS email_verified"
)
_KEY_COLUMNS = (
    "id, account_id, key_hash, name, hint, created_at, last_used_at, revoked_at, updated_at"
)


async def _one(
    conn: Conn, query: str, params: tuple[Any, ...] | dict[str, Any]
) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), params)
        return await cur.fetchone()


async def _all(conn: Conn, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), params)
        return await cur.fetchall()


# -- accounts -----------------------------------------------------------------------------------


async def insert_account(
    conn: Conn,
    account_id: str,
    email: str,
    password_hash: str | None,
    plan: str,
    *,
    verified: bool = True,
) -> Account | None:
    """The new account, or None when the email is taken."""
    row = await _one(
        conn,
        "INSERT INTO accounts (id, email, password_hash, plan, status, email_verified_at)"
        " VALUES (%s, %s, %s, %s, 'active', CASE WHEN %s THEN now() END)"
        f" ON CONFLICT (email) DO NOTHING RETURNING {_ACCOUNT_COLUMNS}",
        (account_id, email, password_hash, plan, verified),
    )
    return Account(**row) if row else None


async def get_account(conn: Conn, account_id: str, *, for_update: bool = False) -> Account | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await _one(
        conn,
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = %s{lock}",
        (account_id,),
    )
    return Account(**row) if row else None


async def get_credentials(conn: Conn, email: str) -> tuple[Account, str | None] | None:
    row = await _one(
        conn,
        f"SELECT {_ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE email = %s",
        (email,),
    )
    if row is None:
        return None
    password_hash = row.pop("password_hash")
    return Account(**row), password_hash


async def password_hash_of(conn: Conn, account_id: str) -> str | None:
    row = await _one(conn, "SELECT password_hash FROM accounts WHERE id = %s", (account_id,))
    return row["password_hash"] if row else None


async def update_account(conn: Conn, account_id: str, column: str, value: str) -> None:
    if column not in ("plan", "status", "password_hash"):
        raise ValueError(column)
    await conn.execute(
        f"UPDATE accounts SET {column} = %s, updated_at = clock_timestamp() WHERE id = %s".encode(),
        (value, account_id),
    )


# -- the operator console's search --------------------------------------------------------------


def _like(text: str) -> str:
    """``text`` anywhere, its LIKE wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def account_matches(
    conn: Conn, text: str, key_hash: str, limit: int
) -> list[tuple[str, str]]:
    """(account id, what matched) for ``text``: the account id, part of the email, an API key's
    id, hint (``sk-cc-...abcd``, or its last four characters) or the whole key (by its hash)."""
    return [
        (str(row["id"]), str(row["matched"]))
        for row in await _all(
            conn,
            "(SELECT id, 'id' AS matched FROM accounts WHERE id = %s"
            " UNION SELECT id, 'email' FROM accounts WHERE email ILIKE %s"
            " UNION SELECT account_id, 'key' FROM api_keys WHERE id = %s OR key_hash = %s"
            " OR hint = %s OR (length(%s) = 4 AND right(hint, 4) = %s))"
            " ORDER BY id LIMIT %s",
            (text, _like(text), text, key_hash, text, text, text, limit),
        )
    ]


async def list_accounts(
    conn: Conn,
    ids: list[str] | None,
    after: tuple[datetime, str] | None,
    *,
    descending: bool,
    limit: int,
) -> list[Account]:
    """A page of accounts by sign-up time (then id), every account or only ``ids``."""
    where: list[str] = []
    params: list[Any] = []
    if ids is not None:
        where.append("id = ANY(%s)")
        params.append(ids)
    direction, compare = ("DESC", "<") if descending else ("ASC", ">")
    if after is not None:
        where.append(f"(created_at, id) {compare} (%s, %s)")
        params += [after[0], after[1]]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = await _all(
        conn,
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts{clause}"
        f" ORDER BY created_at {direction}, id {direction} LIMIT %s",
        (*params, limit),
    )
    return [Account(**row) for row in rows]


async def accounts_by_ids(conn: Conn, ids: list[str]) -> dict[str, Account]:
    rows = await _all(conn, f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY(%s)", (ids,))
    return {str(row["id"]): Account(**row) for row in rows}


async def signed_up_between(
    conn: Conn, since: datetime, until: datetime, unit: str
) -> dict[str, int]:
    """New accounts per period (``day``, ``week``, ``month``; UTC; keyed by its first day)."""
    if unit not in ("day", "week", "month"):
        raise ValueError(unit)
    rows = await _all(
        conn,
        f"SELECT to_char(date_trunc('{unit}', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS k,"
        " count(*) AS n FROM accounts WHERE created_at >= %s AND created_at < %s GROUP BY k",
        (since, until),
    )
    return {str(row["k"]): int(row["n"]) for row in rows}


# -- API keys -----------------------------------------------------------------------------------


async def insert_key(
    conn: Conn, key_id: str, account_id: str, key_hash: str, name: str, hint: str
) -> ApiKey:
    row = await _one(
        conn,
        "INSERT INTO api_keys (id, account_id, key_hash, name, hint) VALUES (%s, %s, %s, %s, %s)"
        f" RETURNING {_KEY_COLUMNS}",
        (key_id, account_id, key_hash, name, hint),
    )
    assert row is not None
    return ApiKey(**row)


async def list_keys(conn: Conn, account_id: str) -> list[ApiKey]:
    rows = await _all(
        conn,
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE account_id = %s ORDER BY created_at, id",
        (account_id,),
    )
    return [ApiKey(**row) for row in rows]


async def keys_by_hash(conn: Conn, account_id: str, hashes: list[str]) -> list[ApiKey]:
    rows = await _all(
        conn,
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE account_id = %s AND key_hash = ANY(%s)"
        " ORDER BY id",
        (account_id, hashes),
    )
    return [ApiKey(**row) for row in rows]


async def revoke_key(conn: Conn, account_id: str, key_id: str) -> ApiKey | None:
    """Revoke an active key; None when the account has no such key. Revoking twice is a no-op
    that returns the key as it is."""
    row = await _one(
        conn,
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()),"
        " updated_at = CASE WHEN revoked_at IS NULL THEN clock_timestamp() ELSE updated_at END"
        f" WHERE id = %s AND account_id = %s RETURNING {_KEY_COLUMNS}",
        (key_id, account_id),
    )
    return ApiKey(**row) if row else None


async def touch_key(conn: Conn, key_id: str, used_at: datetime, resolution_s: int) -> None:
    """Move last_used_at forward, coarsely: most usage events write nothing."""
    await conn.execute(
        b"UPDATE api_keys SET last_used_at = %s WHERE id = %s AND (last_used_at IS NULL"
        b" OR last_used_at < %s - make_interval(secs => %s))",
        (used_at, key_id, used_at, resolution_s),
    )


async def all_key_hashes_with_accounts(conn: Conn) -> AsyncIterator[tuple[Account, ApiKey]]:
    """Every key with its account (the full resync), streamed with a server-side cursor."""
    prefixed = ", ".join(f"k.{c.strip()}" for c in _KEY_COLUMNS.split(","))
    query = (
        "SELECT a.id AS a_id, a.email AS a_email, a.plan AS a_plan, a.status AS a_status,"
        " a.created_at AS a_created_at, a.updated_at AS a_updated_at,"
        " a.password_hash IS NOT NULL AS a_has_password,"
        " a.email_verified_at IS NOT NULL AS a_email_verified, "
        f"{prefixed} FROM api_keys k JOIN accounts a ON a.id = k.account_id ORDER BY k.id"
    )
    async with conn.cursor(name="resync", row_factory=dict_row) as cur:
        await cur.execute(query.encode())
        async for row in cur:
            account = Account(**{k[2:]: row.pop(k) for k in list(row) if k.startswith("a_")})
            yield account, ApiKey(**row)


async def existing_key_hashes(conn: Conn, hashes: list[str]) -> set[str]:
    cur = await conn.execute(b"SELECT key_hash FROM api_keys WHERE key_hash = ANY(%s)", (hashes,))
    return {str(r[0]) for r in await cur.fetchall()}


# -- sessions -----------------------------------------------------------------------------------


_SESSION_COLUMNS = "id, account_id, csrf_token, user_agent, created_at, last_seen_at, expires_at"


async def insert_session(
    conn: Conn,
    session_id: str,
    token_hash: str,
    account_id: str,
    csrf_token: str,
    user_agent: str,
    ttl_s: int,
) -> Session:
    row = await _one(
        conn,
        "INSERT INTO sessions (id, token_hash, account_id, csrf_token, user_agent, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
        f" RETURNING {_SESSION_COLUMNS}",
        (session_id, token_hash, account_id, csrf_token, user_agent[:300], ttl_s),
    )
    assert row is not None
    return Session(**row)


async def live_session(conn: Conn, token_hash: str) -> Session | None:
    """The unexpired, unrevoked session of a cookie; its last-seen time moves (once a minute)."""
    row = await _one(
        conn,
        "UPDATE sessions SET last_seen_at = CASE WHEN last_seen_at < now() - interval '1 minute'"
        " THEN now() ELSE last_seen_at END"
        " WHERE token_hash = %s AND revoked_at IS NULL AND expires_at > now()"
        f" RETURNING {_SESSION_COLUMNS}",
        (token_hash,),
    )
    return Session(**row) if row else None


async def list_sessions(conn: Conn, account_id: str) -> list[Session]:
    rows = await _all(
        conn,
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE account_id = %s AND revoked_at IS NULL"
        " AND expires_at > now() ORDER BY created_at DESC",
        (account_id,),
    )
    return [Session(**row) for row in rows]


async def revoke_session(conn: Conn, account_id: str, session_id: str) -> bool:
    cur = await conn.execute(
        b"UPDATE sessions SET revoked_at = now() WHERE id = %s AND account_id = %s"
        b" AND revoked_at IS NULL",
        (session_id, account_id),
    )
    return cur.rowcount == 1


async def revoke_sessions_except(conn: Conn, account_id: str, keep_id: str | None) -> None:
    await conn.execute(
        b"UPDATE sessions SET revoked_at = now() WHERE account_id = %s AND revoked_at IS NULL"
        b" AND id IS DISTINCT FROM %s",
        (account_id, keep_id),
    )


# -- invitations ----------------------------------------------------------------------------------


async def insert_invitation(conn: Conn, account_id: str, token_hash: str, ttl_s: int) -> datetime:
    """A new invitation; the account's older unused ones stop working. Returns its expiry."""
    await conn.execute(
        b"UPDATE invitations SET superseded_at = now() WHERE account_id = %s"
        b" AND used_at IS NULL AND superseded_at IS NULL",
        (account_id,),
    )
    row = await _one(
        conn,
        "INSERT INTO invitations (account_id, token_hash, expires_at)"
        " VALUES (%s, %s, now() + make_interval(secs => %s)) RETURNING expires_at",
        (account_id, token_hash, ttl_s),
    )
    assert row is not None
    expires_at: datetime = row["expires_at"]
    return expires_at


async def consume_invitation(conn: Conn, token_hash: str) -> str | None:
    """Mark a live invitation used (once: the row update is atomic); its account id, or None
    when the token is unknown, used, superseded or expired."""
    row = await _one(
        conn,
        "UPDATE invitations SET used_at = now() WHERE token_hash = %s AND used_at IS NULL"
        " AND superseded_at IS NULL AND expires_at > now() RETURNING account_id",
        (token_hash,),
    )
    return str(row["account_id"]) if row else None


# -- sign-in throttling ----------------------------------------------------------------------------

# The wait after ``t.failures`` failures of a scope: none while they are free, then doubling from
# the base delay up to the cap (30 doublings at most, so the arithmetic stays finite).
_WAIT = (
    "make_interval(secs => CASE WHEN t.failures < %(free)s THEN 0"
    " ELSE least(%(cap)s::float8, %(base)s::float8"
    " * power(2::float8, least(t.failures - %(free)s, 30))) END)"
)


def _backoff(scope: str, backoff: Backoff) -> dict[str, Any]:
    return {"scope": scope, "free": backoff.free, "base": backoff.base_s, "cap": backoff.max_s}


async def claim_attempt(conn: Conn, scope: str, backoff: Backoff, forget_s: int) -> bool:
    """Count an attempt of ``scope`` as a failure before it is evaluated, unless the scope must
    still wait; False when it must (nothing is counted then).

    One statement: the upsert locks the scope's row, so parallel attempts queue on it and each
    sees the count the previous one left; none can pass on a stale count. A success gives the
    attempt back (:func:`refund_attempt`, :func:`clear_attempts`). The clock is read when the
    row is reached (``clock_timestamp``), not when the transaction began: an upsert that queued
    behind another must not see a time older than the one that other wrote."""
    row = await _one(
        conn,
        "INSERT INTO sign_in_attempts AS t (scope, failures, last_at) VALUES (%(scope)s, 1, clock_timestamp())"
        " ON CONFLICT (scope) DO UPDATE SET last_at = clock_timestamp(), failures = CASE"
        " WHEN t.last_at < clock_timestamp() - make_interval(secs => %(forget)s) THEN 1"
        " ELSE t.failures + 1 END"
        f" WHERE t.last_at + {_WAIT} <= clock_timestamp()"
        " RETURNING failures",
        {**_backoff(scope, backoff), "forget": forget_s},
    )
    return row is not None


async def attempt_wait_s(conn: Conn, scope: str, backoff: Backoff) -> int:
    """Whole seconds until ``scope`` may try again (at least 1)."""
    row = await _one(
        conn,
        f"SELECT ceil(extract(epoch FROM t.last_at + {_WAIT} - clock_timestamp()))::int AS wait"
        " FROM sign_in_attempts t WHERE t.scope = %(scope)s",
        _backoff(scope, backoff),
    )
    return max(1, int(row["wait"])) if row else 1


async def refund_attempt(conn: Conn, scope: str) -> None:
    """An attempt that succeeded is not a failure of the scope."""
    await conn.execute(
        b"UPDATE sign_in_attempts SET failures = greatest(failures - 1, 0) WHERE scope = %s",
        (scope,),
    )


async def clear_attempts(conn: Conn, scope: str) -> None:
    await conn.execute(b"DELETE FROM sign_in_attempts WHERE scope = %s", (scope,))


async def prune_attempts(conn: Conn, forget_s: int) -> None:
    await conn.execute(
        b"DELETE FROM sign_in_attempts WHERE last_at < now() - make_interval(secs => %s)",
        (forget_s,),
    )


# -- rate windows and cached deposit addresses ------------------------------------------------------


async def take_from_window(conn: Conn, scope: str, limit: int, window_s: int) -> int | None:
    """Use one of the ``limit`` uses ``scope`` has per ``window_s`` window: None when allowed,
    else the whole seconds until its window ends (at least 1).

    One upsert on the scope's row (locked by it), so parallel uses on any replica are counted
    one after the other. ``EXCLUDED.started_at`` is this call's clock reading."""
    params = {"scope": scope, "limit": limit, "window": window_s}
    expired = "w.started_at <= EXCLUDED.started_at - make_interval(secs => %(window)s)"
    row = await _one(
        conn,
        "INSERT INTO rate_windows AS w (scope, started_at, used)"
        " VALUES (%(scope)s, clock_timestamp(), 1)"
        " ON CONFLICT (scope) DO UPDATE SET"
        f" started_at = CASE WHEN {expired} THEN EXCLUDED.started_at ELSE w.started_at END,"
        f" used = CASE WHEN {expired} THEN 1 ELSE w.used + 1 END"
        f" WHERE {expired} OR w.used < %(limit)s"
        " RETURNING used",
        params,
    )
    if row is not None:
        return None
    wait = await _one(
        conn,
        "SELECT ceil(extract(epoch FROM started_at + make_interval(secs => %(window)s)"
        " - clock_timestamp()))::int AS wait FROM rate_windows WHERE scope = %(scope)s",
        params,
    )
    return max(1, int(wait["wait"])) if wait else 1


async def prune_windows(conn: Conn, older_than_s: int) -> None:
    await conn.execute(
        b"DELETE FROM rate_windows WHERE started_at < now() - make_interval(secs => %s)",
        (older_than_s,),
    )


async def count_active_keys(conn: Conn, account_id: str) -> int:
    row = await _one(
        conn,
        "SELECT count(*) AS n FROM api_keys WHERE account_id = %s AND revoked_at IS NULL",
        (account_id,),
    )
    assert row is not None
    return int(row["n"])


async def cached_addresses(conn: Conn, account_id: str) -> list[tuple[str, str, str]]:
    """(asset, network, address) as payments last gave them."""
    cur = await conn.execute(
        b"SELECT asset, network, address FROM deposit_addresses WHERE account_id = %s"
        b" ORDER BY asset, network",
        (account_id,),
    )
    return [(str(r[0]), str(r[1]), str(r[2])) for r in await cur.fetchall()]


async def replace_addresses(
    conn: Conn, account_id: str, addresses: list[tuple[str, str, str]]
) -> None:
    """Remember what payments answered now: an asset it no longer offers is forgotten."""
    await conn.execute(b"DELETE FROM deposit_addresses WHERE account_id = %s", (account_id,))
    for asset, network, address in addresses:
        await conn.execute(
            b"INSERT INTO deposit_addresses (account_id, asset, network, address)"
            b" VALUES (%s, %s, %s, %s) ON CONFLICT (account_id, asset, network)"
            b" DO UPDATE SET address = EXCLUDED.address, fetched_at = now()",
            (account_id, asset, network, address),
        )


async def prune_sessions(conn: Conn) -> None:
    """Sessions that ended (expired or revoked) more than a day ago are of no use any more."""
    await conn.execute(
        b"DELETE FROM sessions WHERE expires_at < now() - interval '1 day'"
        b" OR revoked_at < now() - interval '1 day'"
    )


# -- outbox and KV sync queue -----------------------------------------------------------------------


async def enqueue_event(conn: Conn, event: Event) -> None:
    await conn.execute(
        b"INSERT INTO outbox (event_id, subject, payload) VALUES (%s, %s, %s)",
        (event.event_id, event.subject, event.to_json()),
    )


async def enqueue_key_sync(conn: Conn, account_id: str, key_hash: str | None = None) -> None:
    """Queue a rewrite of one key's record, or (no ``key_hash``) of all the account's records."""
    await conn.execute(
        b"INSERT INTO kv_sync_queue (account_id, key_hash) VALUES (%s, %s)", (account_id, key_hash)
    )


async def claim_key_syncs(conn: Conn, limit: int) -> list[tuple[int, str, str | None]]:
    """The oldest queued syncs: (row id, account id, key hash or None for the whole account)."""
    cur = await conn.execute(
        b"SELECT id, account_id, key_hash FROM kv_sync_queue ORDER BY id LIMIT %s"
        b" FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    return [(int(r[0]), str(r[1]), r[2]) for r in await cur.fetchall()]


async def delete_key_syncs(conn: Conn, ids: list[int]) -> None:
    await conn.execute(b"DELETE FROM kv_sync_queue WHERE id = ANY(%s)", (ids,))


async def account_by_email(conn: Conn, email: str) -> Account | None:
    row = await _one(conn, f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE email = %s", (email,))
    return Account(**row) if row else None


async def mark_email_verified(conn: Conn, account_id: str) -> None:
    await conn.execute(
        b"UPDATE accounts SET email_verified_at = coalesce(email_verified_at, now()),"
        b" updated_at = clock_timestamp() WHERE id = %s",
        (account_id,),
    )


# -- one-time email tokens -------------------------------------------------------------------------


async def insert_email_token(
    conn: Conn, account_id: str, purpose: str, token_hash: str, ttl_s: int
) -> None:
    """A new token; the account's older unused ones of the same purpose stop working."""
    await conn.execute(
        b"UPDATE email_tokens SET used_at = now() WHERE account_id = %s AND purpose = %s"
        b" AND used_at IS NULL",
        (account_id, purpose),
    )
    await conn.execute(
        b"INSERT INTO email_tokens (token_hash, account_id, purpose, expires_at)"
        b" VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
        (token_hash, account_id, purpose, ttl_s),
    )


async def live_email_token(conn: Conn, purpose: str, token_hash: str) -> str | None:
    """The account of a live (unused, unexpired) token, without using it up."""
    row = await _one(
        conn,
        "SELECT account_id FROM email_tokens WHERE token_hash = %s AND purpose = %s"
        " AND used_at IS NULL AND expires_at > now()",
        (token_hash, purpose),
    )
    return str(row["account_id"]) if row else None


async def consume_email_token(conn: Conn, purpose: str, token_hash: str) -> str | None:
    """Use a live token up (once: the row update is atomic); its account id, or None."""
    row = await _one(
        conn,
        "UPDATE email_tokens SET used_at = now() WHERE token_hash = %s AND purpose = %s"
        " AND used_at IS NULL AND expires_at > now() RETURNING account_id",
        (token_hash, purpose),
    )
    return str(row["account_id"]) if row else None


async def prune_email_tokens(conn: Conn) -> None:
    await conn.execute(b"DELETE FROM email_tokens WHERE expires_at < now() - interval '1 day'")


# -- mail outbox -----------------------------------------------------------------------------------


async def enqueue_mail(conn: Conn, recipient: str, subject: str, body: str) -> None:
    await conn.execute(
        b"INSERT INTO mail_outbox (recipient, subject, body) VALUES (%s, %s, %s)",
        (recipient, subject, body),
    )


async def claim_mail(conn: Conn, limit: int, lease_s: float) -> list[dict[str, Any]]:
    """Due mail, leased: its next attempt moves past the send, so another replica (or this one
    after a crash mid-send) takes it only once the lease ran out."""
    return await _all(
        conn,
        "UPDATE mail_outbox SET next_attempt_at = now() + make_interval(secs => %s),"
        " attempts = attempts + 1 WHERE id IN (SELECT id FROM mail_outbox"
        " WHERE given_up_at IS NULL AND next_attempt_at <= now() ORDER BY id LIMIT %s"
        " FOR UPDATE SKIP LOCKED) RETURNING id, recipient, subject, body, attempts",
        (lease_s, limit),
    )


async def delete_mail(conn: Conn, mail_id: int) -> None:
    await conn.execute(b"DELETE FROM mail_outbox WHERE id = %s", (mail_id,))


async def reschedule_mail(
    conn: Conn, mail_id: int, delay_s: float, error: str, *, give_up: bool
) -> None:
    await conn.execute(
        b"UPDATE mail_outbox SET next_attempt_at = now() + make_interval(secs => %s),"
        b" last_error = %s, given_up_at = CASE WHEN %s THEN now() END WHERE id = %s",
        (delay_s, error, give_up, mail_id),
    )


# -- the upstream pool (sealed keys only) ---------------------------------------------------------

_UPSTREAM_COLUMNS = (
    "id, source, sealed_key, fingerprint, hint, base_url, organization, weight, models, enabled,"
    " removed, created_at, updated_at"
)


def _upstream(row: dict[str, Any]) -> StoredUpstreamKey:
    return StoredUpstreamKey(**{**row, "models": tuple(row["models"])})


async def list_upstream_keys(conn: Conn) -> list[StoredUpstreamKey]:
    rows = await _all(
        conn, f"SELECT {_UPSTREAM_COLUMNS} FROM upstream_keys ORDER BY created_at, id", ()
    )
    return [_upstream(row) for row in rows]


async def get_upstream_key(
    conn: Conn, key_id: str, *, for_update: bool = False
) -> StoredUpstreamKey | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await _one(
        conn, f"SELECT {_UPSTREAM_COLUMNS} FROM upstream_keys WHERE id = %s{lock}", (key_id,)
    )
    return _upstream(row) if row is not None else None


async def upstream_key_by_fingerprint(conn: Conn, fingerprint: str) -> StoredUpstreamKey | None:
    row = await _one(
        conn,
        f"SELECT {_UPSTREAM_COLUMNS} FROM upstream_keys WHERE fingerprint = %s",
        (fingerprint,),
    )
    return _upstream(row) if row is not None else None


async def put_upstream_key(conn: Conn, key: StoredUpstreamKey) -> StoredUpstreamKey:
    """Insert the row, or replace every field of the row with the same id; ``updated_at`` is the
    database's clock, so records reach the edges in the order the changes committed."""
    row = await _one(
        conn,
        f"""INSERT INTO upstream_keys ({_UPSTREAM_COLUMNS})
            VALUES (%(id)s, %(source)s, %(sealed_key)s, %(fingerprint)s, %(hint)s, %(base_url)s,
                    %(organization)s, %(weight)s, %(models)s, %(enabled)s, %(removed)s,
                    now(), clock_timestamp())
            ON CONFLICT (id) DO UPDATE SET
                sealed_key = EXCLUDED.sealed_key, fingerprint = EXCLUDED.fingerprint,
                hint = EXCLUDED.hint, base_url = EXCLUDED.base_url,
                organization = EXCLUDED.organization, weight = EXCLUDED.weight,
                models = EXCLUDED.models, enabled = EXCLUDED.enabled,
                removed = EXCLUDED.removed,
                updated_at = greatest(clock_timestamp(), upstream_keys.updated_at)
            RETURNING {_UPSTREAM_COLUMNS}""",
        {
            "id": key.id,
            "source": key.source,
            "sealed_key": key.sealed_key,
            "fingerprint": key.fingerprint,
            "hint": key.hint,
            "base_url": key.base_url,
            "organization": key.organization,
            "weight": key.weight,
            "models": list(key.models),
            "enabled": key.enabled,
            "removed": key.removed,
        },
    )
    assert row is not None
    return _upstream(row)


async def delete_upstream_key(conn: Conn, key_id: str) -> bool:
    cur = await conn.execute(b"DELETE FROM upstream_keys WHERE id = %s", (key_id,))
    return cur.rowcount > 0
