"""The operator console's reads of the accounts table: matches of a search text, pages by
sign-up time, accounts by id, sign-ups per period (I/O: the repository behind it)."""

from __future__ import annotations

from datetime import datetime

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from aiapi_accounts import repository
from aiapi_accounts.domain import Account


class Directory:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def matches(self, text: str, key_hash: str, limit: int) -> list[tuple[str, str]]:
        async with self._pool.connection() as conn:
            return await repository.account_matches(conn, text, key_hash, limit)

    async def page(
        self,
        ids: list[str] | None,
        after: tuple[datetime, str] | None,
        *,
        descending: bool,
        limit: int,
    ) -> list[Account]:
        async with self._pool.connection() as conn:
            return await repository.list_accounts(
                conn, ids, after, descending=descending, limit=limit
            )

    async def by_ids(self, ids: list[str]) -> dict[str, Account]:
        async with self._pool.connection() as conn:
            return await repository.accounts_by_ids(conn, ids)

    async def sign_ups(self, since: datetime, until: datetime, unit: str) -> dict[str, int]:
        async with self._pool.connection() as conn:
            return await repository.signed_up_between(conn, since, until, unit)


def directory(request: Request) -> Directory:
    """The directory on the running service's pool (set by its start, before any listener)."""
    pool: AsyncConnectionPool | None = request.app.state.service.pool
    assert pool is not None, "Service.start() first"
    return Directory(pool)
