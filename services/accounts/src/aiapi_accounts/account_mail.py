"""The use cases that send account mail: sign-up verification (and its resend), password reset,
and the notices of a credited deposit and of a low balance. Each writes its mail into the outbox
table in the same transaction as the change it reports; the sender delivers it later."""

from __future__ import annotations

from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from aiapi_accounts import repository
from aiapi_accounts.clientaddr import throttle_key
from aiapi_accounts.commands import Accounts, SignedIn
from aiapi_accounts.domain import (
    check_password_rules,
    email_scope,
    new_secret_token,
    normalise_email,
    token_hash,
)
from aiapi_accounts.errors import Conflict, TooManyAttempts, Unauthenticated
from aiapi_accounts.mail_text import (
    Mail,
    balance_low_mail,
    deposit_credited_mail,
    password_reset_mail,
    verification_mail,
)
from aiapi_accounts.repository import Conn

_HOUR_S = 3600
BAD_LINK = "this link is invalid, used or expired"


class AccountMail:
    """``enabled`` is false without SMTP: then nothing is queued and nothing waits for a mail."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        accounts: Accounts,
        *,
        enabled: bool,
        verification_required: bool,
        base_url: str,
        verify_ttl_s: int,
        reset_ttl_s: int,
        requests_per_hour: int,
        kick: Callable[[], None],
    ) -> None:
        self._pool = pool
        self._accounts = accounts
        self.enabled = enabled
        self.verification_required = enabled and verification_required
        self._base_url = base_url
        self._verify_ttl_s = verify_ttl_s
        self._reset_ttl_s = reset_ttl_s
        self._per_hour = requests_per_hour
        self._kick = kick

    async def sign_up(self, email: str, password: str, ip: str) -> None:
        """The sign-up use case with its verification mail (when verification is required)."""
        account = await self._accounts.sign_up(
            email, password, ip, verified=not self.verification_required
        )
        if account is None or account.email_verified:
            return
        async with self._pool.connection() as conn:
            await self._queue_verification(conn, account.id, account.email)
        self._kick()

    async def resend_verification(self, account_id: str) -> None:
        """A new verification link (the older one stops working); a few per hour."""
        account = await self._accounts.get(account_id)
        if account.email_verified:
            raise Conflict("this email address is verified already")
        async with self._pool.connection() as conn:
            await self._take(conn, f"verify-mail:{account_id}")
            await self._queue_verification(conn, account.id, account.email)
        self._kick()

    async def verify(self, token: str) -> None:
        async with self._pool.connection() as conn:
            account_id = await repository.consume_email_token(conn, "verify", token_hash(token))
            if account_id is None:
                raise Unauthenticated(BAD_LINK)
            await repository.mark_email_verified(conn, account_id)

    async def request_password_reset(self, email: str, ip: str) -> None:
        """Queue a reset link when the email has an account; the caller answers the same either
        way. Limited per client address and per email (silently: no enumeration)."""
        async with self._pool.connection() as conn:
            await self._take(conn, f"reset-ip:{throttle_key(ip)}", limit=self._per_hour * 10)
        try:
            normalised = normalise_email(email)
        except Exception:  # noqa: BLE001 (an invalid address has no account either)
            return
        async with self._pool.connection() as conn:
            account = await repository.account_by_email(conn, normalised)
            if account is None or account.status != "active" or not self.enabled:
                return
            scope = f"reset-mail:{email_scope(normalised)}"
            if await repository.take_from_window(conn, scope, self._per_hour, _HOUR_S):
                return
            token = new_secret_token()
            await repository.insert_email_token(
                conn, account.id, "reset", token_hash(token), self._reset_ttl_s
            )
            await _queue(
                conn, account.email, password_reset_mail(self._base_url, token, self._reset_ttl_s)
            )
        self._kick()

    async def reset_link_valid(self, token: str) -> bool:
        async with self._pool.connection() as conn:
            return await repository.live_email_token(conn, "reset", token_hash(token)) is not None

    async def reset_password(self, token: str, password: str, ip: str, user_agent: str) -> SignedIn:
        """Set the new password, use the token up, end every other session and sign in. A
        followed reset link also proves the address: the account counts as verified."""
        check_password_rules(password)
        return await self._accounts.set_password_by_token(
            lambda conn: repository.consume_email_token(conn, "reset", token_hash(token)),
            password,
            ip,
            user_agent,
            bad_token=BAD_LINK,
        )

    async def notify_deposit(self, account_id: str, amount: int) -> None:
        await self._notify(account_id, deposit_credited_mail(self._base_url, amount))

    async def notify_balance_low(self, account_id: str, available: int) -> None:
        await self._notify(account_id, balance_low_mail(self._base_url, available))

    async def _notify(self, account_id: str, mail: Mail) -> None:
        if not self.enabled:
            return
        async with self._pool.connection() as conn:
            account = await repository.get_account(conn, account_id)
            if account is None:
                return
            await _queue(conn, account.email, mail)
        self._kick()

    async def _queue_verification(self, conn: Conn, account_id: str, email: str) -> None:
        token = new_secret_token()
        await repository.insert_email_token(
            conn, account_id, "verify", token_hash(token), self._verify_ttl_s
        )
        await _queue(conn, email, verification_mail(self._base_url, token, self._verify_ttl_s))

    async def _take(self, conn: Conn, scope: str, limit: int | None = None) -> None:
        wait = await repository.take_from_window(conn, scope, limit or self._per_hour, _HOUR_S)
        if wait is not None:
            raise TooManyAttempts("too many mails asked for; try again later", retry_after_s=wait)


async def _queue(conn: Conn, recipient: str, mail: Mail) -> None:
    await repository.enqueue_mail(conn, recipient, mail.subject, mail.body)
