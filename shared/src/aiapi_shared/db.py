"""PostgreSQL helpers (psycopg 3): connection pools and the migration mechanism.

Each service owns one schema (``billing``, ``accounts``, ``payments``) and ships its migrations
as numbered SQL files in its package (``aiapi_billing/migrations/0001_ledger.sql``). :func:`migrate`
applies the missing ones in order, each in its own transaction, under an advisory lock so that
replicas starting together do not race, and records them in ``<schema>.schema_migrations`` with a
checksum: an applied migration that was edited afterwards stops the service instead of drifting.
"""

from __future__ import annotations

import hashlib
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql_text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql_text.encode()).hexdigest()


def load_migrations(package: str) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``package`` (e.g. ``aiapi_billing.migrations``), in order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {package}")
    return found


async def migrate(database_url: str, *, schema: str, package: str) -> list[str]:
    """Apply ``package``'s pending migrations inside ``schema``; return the names applied."""
    migrations = load_migrations(package)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        if await _up_to_date(conn, schema, migrations):
            # Nothing to do, and no DDL done: a service whose role has no DDL rights starts
            # once a migrations job (``python -m aiapi_shared.dbadmin``) has run before it.
            return []
    try:
        return await _apply(database_url, schema, migrations)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise MigrationError(
            f"schema {schema} has migrations pending and this database role may not apply "
            "them: run the migrations job (python -m aiapi_shared.dbadmin migrate) first"
        ) from exc


async def _up_to_date(
    conn: psycopg.AsyncConnection[tuple[object, ...]], schema: str, migrations: list[Migration]
) -> bool:
    """Every migration applied, unchanged (an edited one is an error, as in :func:`migrate`)."""
    cur = await conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return False
    table = sql.Identifier(schema, "schema_migrations")
    cur = await conn.execute(sql.SQL("SELECT version, checksum FROM {}").format(table))
    done = {int(str(v)): str(c) for v, c in await cur.fetchall()}
    for migration in migrations:
        if migration.version not in done:
            return False
        if done[migration.version] != migration.checksum:
            raise MigrationError(f"{schema}/{migration.name} changed after it was applied")
    return True


async def _apply(database_url: str, schema: str, migrations: list[Migration]) -> list[str]:
    applied_now: list[str] = []
    lock_id = int.from_bytes(hashlib.sha256(f"aiapi:{schema}".encode()).digest()[:8], "big") >> 1
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (lock_id,))
        try:
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
            table = sql.Identifier(schema, "schema_migrations")
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (version int PRIMARY KEY, name text NOT NULL,"
                    " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(table)
            )
            cur = await conn.execute(sql.SQL("SELECT version, checksum FROM {}").format(table))
            done = {int(v): str(c) for v, c in await cur.fetchall()}
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"{schema}/{migration.name} changed after it was applied"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(
                        sql.SQL("SET LOCAL search_path TO {}, public").format(
                            sql.Identifier(schema)
                        )
                    )
                    await conn.execute(migration.sql_text.encode())
                    await conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)"
                        ).format(table),
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
    return applied_now


async def grant_service_role(database_url: str, *, schema: str, role: str) -> None:
    """Give ``role`` (a service's login role) the rights to use ``schema``'s data and nothing
    more: no DDL, so a compromised service cannot change or drop its tables. Run as the schema's
    owner (the migrations role), after :func:`migrate`; default privileges cover later tables."""
    s, r = sql.Identifier(schema), sql.Identifier(role)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}"),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}"),
        sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {} TO {}"),
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}"),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {} "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}"
        ),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT EXECUTE ON FUNCTIONS TO {}"),
    ]
    # One transaction: the connection's block commits at its end, or rolls back on an error.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for statement in statements:
            await conn.execute(statement.format(s, r))


# A connection checked out less than this long ago is not probed again: it worked then.
PROBE_IDLE_S = 1.0

Probe = Callable[[psycopg.AsyncConnection[tuple[object, ...]]], Awaitable[None]]


def idle_probe(idle_s: float = PROBE_IDLE_S, clock: Callable[[], float] = time.monotonic) -> Probe:
    """A pool ``check`` that probes (one round trip) only connections idle for ``idle_s`` or more.

    A busy pool hands out connections used a moment ago: probing each of them on every checkout
    cost one round trip per transaction. A connection that broke since (PostgreSQL restarted)
    fails its next statement instead; psycopg marks it broken and the pool drops it when it comes
    back, so one transaction per connection in use at that moment fails (the callers answer
    "unavailable" and are retried), and idle ones are still probed and replaced before use.
    """
    last_use: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()

    async def check(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        if conn.broken or conn.closed:
            raise psycopg.OperationalError("the connection is broken")
        now = clock()
        if now - last_use.get(conn, float("-inf")) >= idle_s:
            await AsyncConnectionPool.check_connection(conn)
        last_use[conn] = now

    return check


class LastUsedFirstPool(AsyncConnectionPool):
    """A pool that hands out the connection returned last (psycopg_pool's own takes the one
    returned longest ago, so it cycles through every connection it holds).

    Under light traffic a few connections then do all the work and stay warm: a connection used
    a moment ago is not probed (:func:`idle_probe`), its statements reach the count at which
    psycopg prepares them, and one PostgreSQL backend runs them with its caches warm. Cycling
    through ten connections at ten transactions a second made every checkout an idle one: a
    probe round trip each, statements parsed again on each connection, ten backends woken in
    turn. The connections left unused are the ones the pool closes first when it shrinks
    (``max_idle``). Busy, every connection is in use either way.
    """

    async def _get_ready_connection(
        self,
        timeout: float | None,  # noqa: ASYNC109 (psycopg_pool's signature)
    ) -> psycopg.AsyncConnection[Any] | None:
        # psycopg_pool takes from the left and returns to the right (under its lock, as here):
        # the newest connection moved to the left is the one it takes; the others keep order.
        if self._pool:
            self._pool.rotate(1)
        return await super()._get_ready_connection(timeout)


def open_pool(
    database_url: str,
    *,
    schema: str,
    min_size: int = 1,
    max_size: int = 10,
    autocommit: bool = False,
    check_on_checkout: bool = True,
) -> AsyncConnectionPool:
    """A pool whose connections resolve unqualified names in the service's own schema first.

    The pool is returned unopened: ``await pool.open()`` in the service's start-up, ``close`` at stop.
    Connections that sat idle (and may have broken while PostgreSQL was away) are checked and
    replaced on checkout (:func:`idle_probe`); the connection used last is handed out first
    (:class:`LastUsedFirstPool`). A hot path whose one statement is safe to retry
    may skip even that check (``check_on_checkout=False``) and retry once on a broken connection
    instead; ``autocommit=True`` runs each statement as its own transaction (no BEGIN and COMMIT
    round trips).
    """
    options = f"-c search_path={schema},public"
    return LastUsedFirstPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"options": options, "autocommit": autocommit},
        check=idle_probe() if check_on_checkout else None,
        open=False,
        reconnect_timeout=3600.0,
    )
