"""Deposit addresses for the customer API and the top-up page: the addresses an account was
given are read from payments on every ask (with the current minimum, confirmations and rate);
only making new ones is budgeted, a few times per account per hour.

Making an address takes payments' per-network allocation lock (shared by all accounts) and
derives an address that payments then watches for good, so an account may not make payments do
that more than ``requests_per_hour`` times an hour. Reading the addresses already given takes no
lock and derives nothing: it is not limited, so the top-up card keeps its payment URI, QR code
and rate however often it is shown. The last answer is also remembered here, for when payments
does not answer (addresses are stable). Operators are not limited (their route asks payments
directly).
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
        """The account's address for each enabled asset, new ones made while the account's
        hourly budget lasts; once it is spent, the addresses given so far (429 when there are
        none). While payments does not answer: the remembered addresses (they stay valid), or
        503 when there are none. 403 while the account's email awaits verification: payments
        derives and watches an address for good, so unverified sign-ups must not be able to
        make it do so."""
        async with self._pool.connection() as conn:
            account = await repository.get_account(conn, account_id)
            if account is None:
                raise NotFound("no such account")
            self._check_verified(account)
            remembered = [
                DepositAddress(asset=asset, network=network, address=address)
                for asset, network, address in await repository.cached_addresses(conn, account_id)
            ]
        try:
            given = await self._peers.given_addresses(account_id, allocate=False)
            if given.missing:
                async with self._pool.connection() as conn:
                    wait = await repository.take_from_window(
                        conn, f"deposit-addresses:{account_id}", self._requests_per_hour, _HOUR_S
                    )
                if wait is not None:
                    if given.addresses:
                        return given.addresses
                    raise TooManyAttempts(
                        "deposit addresses were requested too often; try again later",
                        retry_after_s=wait,
                    )
                given = await self._peers.given_addresses(account_id, allocate=True)
        except PeerUnavailable:
            if remembered:
                return remembered
            raise
        fresh = [(str(a.asset), str(a.network), a.address) for a in given.addresses]
        if sorted(fresh) != [(a.asset, a.network, a.address) for a in remembered]:
            async with self._pool.connection() as conn:
                await repository.replace_addresses(conn, account_id, fresh)
        return given.addresses
