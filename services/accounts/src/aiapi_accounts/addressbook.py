"""Deposit addresses for the customer API: asked of payments at most a few times per account per
hour, and remembered in between.

Each request to payments for an account's addresses takes payments' per-network allocation lock
(shared by all accounts) and, the first time, derives a new address that payments then watches
for good. Addresses are stable per account, so beyond a small budget nothing is gained by asking
again: the remembered answer is given instead. Operators are not limited (their route asks
payments directly).
"""

from __future__ import annotations

from collections.abc import Callable

from aiapi_shared.payments_api import DepositAddress
from psycopg_pool import AsyncConnectionPool

from aiapi_accounts import repository
from aiapi_accounts.domain import Account
from aiapi_accounts.errors import NotFound, PeerUnavailable, TooManyAttempts
from aiapi_accounts.peers import Peers

_HOUR_S = 3600


class AddressBook:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        peers: Peers,
        *,
        requests_per_hour: int,
        check_verified: Callable[[Account], None] = lambda account: None,
    ) -> None:
        self._pool = pool
        self._check_verified = check_verified
        self._peers = peers
        self._requests_per_hour = requests_per_hour

    async def addresses(self, account_id: str) -> list[DepositAddress]:
        """Payments' answer while the account's hourly budget lasts, then the last answer
        remembered; 429 when the budget is spent and nothing is remembered yet. While payments
        does not answer: the remembered addresses (they stay valid), or 503 when there are none.
        403 while the account's email awaits verification: payments derives and watches an
        address for good, so unverified sign-ups must not be able to make it do so."""
        async with self._pool.connection() as conn:
            account = await repository.get_account(conn, account_id)
            if account is None:
                raise NotFound("no such account")
            self._check_verified(account)
            wait = await repository.take_from_window(
                conn, f"deposit-addresses:{account_id}", self._requests_per_hour, _HOUR_S
            )
            remembered = [
                DepositAddress(asset=asset, network=network, address=address)
                for asset, network, address in await repository.cached_addresses(conn, account_id)
            ]
        if wait is not None:
            if remembered:
                return remembered
            raise TooManyAttempts(
                "deposit addresses were requested too often; try again later", retry_after_s=wait
            )
        try:
            fresh = await self._peers.deposit_addresses(account_id)
        except PeerUnavailable:
            if remembered:
                return remembered
            raise
        async with self._pool.connection() as conn:
            await repository.replace_addresses(
                conn, account_id, [(a.asset, a.network, a.address) for a in fresh]
            )
        return fresh
