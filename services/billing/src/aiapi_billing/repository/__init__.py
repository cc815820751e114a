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
document per statement (:func:`json_rows`, read back with ``json_to_recordset``): psycopg dumps
an array parameter element by element in Python (~0.1 ms per usage record for ``unnest`` over
27 arrays), orjson the whole document in a few microseconds per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from psycopg import AsyncConnection

Conn = AsyncConnection[tuple[Any, ...]]


def json_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one JSON array of objects keyed by ``columns``, for ``json_to_recordset(%s)``.

    Exact for what settlement writes: integers (to 64 bits) as JSON integers, timestamps as
    RFC 3339 with microseconds and their offset, strings and ``None`` (SQL NULL) as themselves.
    """
    return orjson.dumps([dict(zip(columns, row, strict=True)) for row in rows]).decode()


def insert_rows(table: str, columns: Sequence[tuple[str, str]], tail: str = "") -> str:
    """``INSERT INTO table (columns) SELECT columns FROM json_to_recordset(%s::json) ... tail``:
    the rows of one :func:`json_rows` document (``columns``: each name and SQL type)."""
    names = ", ".join(name for name, _ in columns)
    record = ", ".join(f"{name} {type_}" for name, type_ in columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names}"  # noqa: S608 (fixed names, no values)
        f" FROM json_to_recordset(%s::json) AS r({record}) {tail}"
    )


async def ping(conn: Conn) -> None:
    """One trivial statement: the database answers on this connection."""
    await conn.execute("SELECT 1")
