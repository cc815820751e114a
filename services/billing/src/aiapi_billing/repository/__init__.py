"""Every SQL statement of the billing service, one module per table or concern.

* ``accounts``: the account rows (locks, running totals, plan, GCRA state, the accounts mirror);
* ``transfers``: the ledger's transfers (posting one or a batch, finding one by its key);
* ``holds``: admission (``admit_request``), hold extension, release at settlement, expiry;
* ``leases``: admission leases (grant, top-up, close, release at settlement, expiry);
* ``usage``: usage records and the conflicts set aside;
* ``prices`` and ``catalogue``: the price table and the live catalogue;
* ``outbox``: events queued in the transaction that made them true;
* ``queries``: the read side (balance, ledger page, one request, daily totals);
* ``request_log``: the customer's request log (keyset pages) and per-key daily totals;
* ``audit``: the ledger's invariants as queries.

Every function takes the caller's connection and runs inside the caller's transaction: the
handler that owns the request or message (``rpc.py``, ``consumers.py``, ``catalogue_rpc.py``,
``lease_commands.py``, ``admission.py``, ``sweeper.py``) opens it and commits; nothing here
commits, rolls back or opens a connection. Functions read rows into the domain's types
(``ledger.AccountRow``, ``lease_rules.Tally``, ``pricing.Price``) and take them back to write.
The hot statements (admission, a settlement batch) are hand-written and batched: a batch costs
the same handful of statements whatever its size. A settlement batch's rows travel as one JSON
document per statement (:func:`json_rows`, read back by :func:`rows_of`): psycopg dumps
an array parameter element by element in Python (~0.1 ms per usage record for ``unnest`` over
27 arrays), orjson the whole document in a few microseconds per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from psycopg import AsyncConnection

Conn = AsyncConnection[tuple[Any, ...]]


def json_rows(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one JSON array of arrays, for :func:`rows_of`.

    Exact for what settlement writes: integers (to 64 bits) as JSON integers, timestamps as
    RFC 3339 with microseconds and their offset, strings and ``None`` (SQL NULL) as themselves.
    """
    return orjson.dumps(list(rows)).decode()


def rows_of(columns: Sequence[tuple[str, str]]) -> str:
    """``SELECT (r->>0)::type AS name, ... FROM jsonb_array_elements(%s::jsonb) AS r``: the rows
    of one :func:`json_rows` document, in its order (``columns``: each name and SQL type).
    Field by position costs PostgreSQL what ``unnest`` of arrays did; ``json_to_recordset``
    (field by name) ~20% more."""
    fields = ", ".join(
        f"(r->>{place})::{type_} AS {name}" for place, (name, type_) in enumerate(columns)
    )
    return f"SELECT {fields} FROM jsonb_array_elements(%s::jsonb) AS r"  # noqa: S608 (no values)


def insert_rows(table: str, columns: Sequence[tuple[str, str]], tail: str = "") -> str:
    """``INSERT INTO table (columns)`` the rows of one :func:`json_rows` document, then
    ``tail`` (``ON CONFLICT ...``, ``RETURNING ...``)."""
    names = ", ".join(name for name, _ in columns)
    return f"INSERT INTO {table} ({names}) {rows_of(columns)} {tail}"


async def ping(conn: Conn) -> None:
    """One trivial statement: the database answers on this connection."""
    await conn.execute("SELECT 1")
