"""The use cases: load, decide, write, enqueue (events and key-record syncs) in one transaction;
then let the relay deliver. Routes and consumers call these; nothing here speaks HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiapi_shared import apikeys
from aiapi_shared.events.accounts_v1 import (
    AccountCreated,
    AccountStatus,
    AccountStatusChanged,
    KeyIssued,
    KeyRevoked,
    PlanChanged,
    PlanName,
)
from psycopg_pool import AsyncConnectionPool

from aiapi_accounts import repository
from aiapi_accounts.clientaddr import throttle_key
from aiapi_accounts.domain import (
    DEFAULT_PLAN,
    Account,
    ApiKey,
    Backoff,
    Limits,
    Session,
    Throttle,
    check_password_rules,
    email_scope,
    new_account_id,
    new_key_id,
    new_secret_token,
    new_session_id,
    normalise_email,
    token_hash,
)
from aiapi_accounts.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
)
from aiapi_accounts.passwords import Passwords
from aiapi_accounts.relay import Relay
from aiapi_accounts.repository import Conn

# Rate windows are at most an hour long; older ones are of no use any more.
WINDOWS_KEPT_S = 2 * 3600
# The only sign-in failure message: the same for an unknown email and a wrong password.
BAD_CREDENTIALS = "invalid email or password"
# The only failure of accepting an invitation: unknown, used, superseded and expired alike.
BAD_INVITATION = "invalid or expired invitation"
UNVERIFIED = (
    "verify your email address first: follow the link in the mail sent at sign-up "
    "(the account page sends a new one)"
)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once, to the caller that asked for it; never stored, never logged


@dataclass(frozen=True)
class Invitation:
    token: str  # shown once, to the operator; only its hash is stored, never logged
    expires_at: datetime


@dataclass(frozen=True)
class SignedIn:
    account: Account
    session: Session
    token: str  # the cookie value; only its hash is stored


class Accounts:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        relay: Relay,
        passwords: Passwords,
        throttle: Throttle,
        limits: Limits,
        *,
        session_ttl_s: int,
        invitation_ttl_s: int = 7 * 24 * 3600,
        verification_required: bool = False,
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._passwords = passwords
        self._throttle = throttle
        self._limits = limits
        self._session_ttl_s = session_ttl_s
        self._invitation_ttl_s = invitation_ttl_s
        self._verification_required = verification_required

    # -- accounts -------------------------------------------------------------------------------

    async def create(
        self, email: str, plan: PlanName, password: str | None = None, *, verified: bool = True
    ) -> Account:
        """A new account (operator, or sign-up); Conflict when the email is taken. Operators'
        accounts are verified (their owners come in through an invitation sent to the address)."""
        normalised = normalise_email(email)
        password_hash = None
        if password is not None:
            check_password_rules(password)
            password_hash = await self._passwords.hash(password)
        async with self._pool.connection() as conn:
            account = await repository.insert_account(
                conn, new_account_id(), normalised, password_hash, plan, verified=verified
            )
            if account is None:
                raise Conflict("an account with this email exists")
            await repository.enqueue_event(conn, AccountCreated(account_id=account.id, plan=plan))
        self._relay.kick()
        return account

    async def get(self, account_id: str) -> Account:
        async with self._pool.connection() as conn:
            return await _existing(conn, account_id)

    async def set_plan(self, account_id: str, plan: PlanName) -> Account:
        async with self._pool.connection() as conn:
            account = await _existing(conn, account_id, for_update=True)
            if account.plan != plan:
                await repository.update_account(conn, account_id, "plan", plan)
                await repository.enqueue_event(
                    conn, PlanChanged(account_id=account_id, plan=plan, previous_plan=account.plan)
                )
                await repository.enqueue_key_sync(conn, account_id)
            account = await _existing(conn, account_id)
        await self._relay.settle()
        return account

    async def set_status(self, account_id: str, status: AccountStatus) -> Account:
        async with self._pool.connection() as conn:
            account = await _existing(conn, account_id, for_update=True)
            if account.status != status:
                await repository.update_account(conn, account_id, "status", status)
                await repository.enqueue_event(
                    conn, AccountStatusChanged(account_id=account_id, status=status)
                )
                await repository.enqueue_key_sync(conn, account_id)
            account = await _existing(conn, account_id)
        await self._relay.settle()
        return account

    # -- API keys -------------------------------------------------------------------------------

    async def issue_key(self, account_id: str, name: str, *, capped: bool = True) -> IssuedKey:
        """A new key; ``capped`` (the customer API) refuses one beyond the account's active-key
        cap. The account row is locked first, so parallel requests cannot overshoot it."""
        secret = apikeys.generate_key()
        async with self._pool.connection() as conn:
            account = await _existing(conn, account_id, for_update=True)
            if capped:
                self.check_verified(account)
            cap = self._limits.max_keys_per_account
            if capped and await repository.count_active_keys(conn, account_id) >= cap:
                raise Conflict(
                    f"an account has at most {cap} active API keys; revoke one to create another"
                )
            key = await repository.insert_key(
                conn,
                new_key_id(),
                account_id,
                apikeys.key_hash(secret),
                name,
                apikeys.key_hint(secret),
            )
            await repository.enqueue_event(
                conn, KeyIssued(account_id=account_id, key_id=key.id, name=name)
            )
            await repository.enqueue_key_sync(conn, account_id, key.key_hash)
        # The key should work as soon as its creator sees it.
        await self._relay.settle()
        return IssuedKey(key, secret)

    async def list_keys(self, account_id: str) -> list[ApiKey]:
        async with self._pool.connection() as conn:
            await _existing(conn, account_id)
            return await repository.list_keys(conn, account_id)

    async def revoke_key(self, account_id: str, key_id: str) -> None:
        async with self._pool.connection() as conn:
            await _existing(conn, account_id, for_update=True)
            before = [k for k in await repository.list_keys(conn, account_id) if k.id == key_id]
            if not before:
                raise NotFound("no such key")
            if before[0].revoked_at is None:
                await repository.revoke_key(conn, account_id, key_id)
                await repository.enqueue_event(
                    conn, KeyRevoked(account_id=account_id, key_id=key_id)
                )
                await repository.enqueue_key_sync(conn, account_id, before[0].key_hash)
        await self._relay.settle()

    async def count_write(self, account_id: str) -> None:
        """One change through the customer API; 429 beyond the account's writes per minute
        (counted in PostgreSQL, so the limit holds across replicas)."""
        limit = self._limits.writes_per_minute
        async with self._pool.connection() as conn:
            wait = await repository.take_from_window(conn, f"writes:{account_id}", limit, 60)
        if wait is not None:
            raise TooManyAttempts(
                f"at most {limit} account changes per minute; try again later",
                retry_after_s=wait,
            )

    async def note_key_used(self, key_id: str, used_at: datetime, resolution_s: int) -> None:
        async with self._pool.connection() as conn:
            await repository.touch_key(conn, key_id, used_at, resolution_s)

    # -- sign-up, sign-in, sessions ---------------------------------------------------------------

    def check_verified(self, account: Account) -> None:
        """403 while the account's email awaits verification (when this deployment requires it)."""
        if self._verification_required and not account.email_verified:
            raise Forbidden(UNVERIFIED)

    async def sign_up(
        self, email: str, password: str, ip: str, *, verified: bool = True
    ) -> Account | None:
        """Create a Basic account, or do nothing when the email is taken: the caller answers the
        same either way, so sign-up cannot be used to learn which emails have accounts. Each
        attempt costs a password hash, so each counts against the address's sign-up budget."""
        await self._admit(f"sign-up:{throttle_key(ip)}", self._throttle.per_address)
        try:
            return await self.create(email, DEFAULT_PLAN, password, verified=verified)
        except Conflict:
            return None

    async def sign_in(self, email: str, password: str, ip: str, user_agent: str) -> SignedIn:
        """Throttled before anything is evaluated: the client address first (an attempt at a
        throttled email still costs the address), then the email. Each admitted attempt counts
        as a failure until it succeeds; a success clears the email and gives the address its
        attempt back."""
        normalised = email.strip().lower()
        address = f"ip:{throttle_key(ip)}"
        await self._admit(address, self._throttle.per_address)
        await self._admit(email_scope(normalised), self._throttle.per_email)
        async with self._pool.connection() as conn:
            found = await repository.get_credentials(conn, normalised)
        account, stored = found if found else (None, None)
        # Always one argon2 verification, so an unknown email takes as long as a wrong password.
        if not await self._passwords.verify(stored, password) or account is None:
            raise Unauthenticated(BAD_CREDENTIALS)
        async with self._pool.connection() as conn:
            await repository.clear_attempts(conn, email_scope(normalised))
            await repository.refund_attempt(conn, address)
            if stored and self._passwords.needs_rehash(stored):
                rehashed = await self._passwords.hash(password)
                await repository.update_account(conn, account.id, "password_hash", rehashed)
            return await self._open_session(conn, account, user_agent)

    async def _admit(self, scope: str, backoff: Backoff) -> None:
        await admit_attempt(self._pool, scope, backoff, self._throttle.forget_s)

    async def _open_session(self, conn: Conn, account: Account, user_agent: str) -> SignedIn:
        token = new_secret_token()
        session = await repository.insert_session(
            conn,
            new_session_id(),
            token_hash(token),
            account.id,
            new_secret_token(),
            user_agent,
            self._session_ttl_s,
        )
        return SignedIn(account, session, token)

    # -- invitations ----------------------------------------------------------------------------

    async def invite(self, account_id: str) -> Invitation:
        """A one-time token that lets the account's owner set a password; older unused
        invitations of the account stop working."""
        token = new_secret_token()
        async with self._pool.connection() as conn:
            await _existing(conn, account_id, for_update=True)
            expires_at = await repository.insert_invitation(
                conn, account_id, token_hash(token), self._invitation_ttl_s
            )
        return Invitation(token, expires_at)

    async def accept_invitation(
        self, token: str, password: str, ip: str, user_agent: str
    ) -> SignedIn:
        """Set the password, consume the token, end every other session and sign in. Throttled
        per client address like sign-in (a bad token is a failure); every bad token gets the
        same 401."""
        check_password_rules(password)
        return await self.set_password_by_token(
            lambda conn: repository.consume_invitation(conn, token_hash(token)),
            password,
            ip,
            user_agent,
            bad_token=BAD_INVITATION,
        )

    async def set_password_by_token(
        self,
        consume: Callable[[Conn], Awaitable[str | None]],
        password: str,
        ip: str,
        user_agent: str,
        *,
        bad_token: str,
    ) -> SignedIn:
        """A one-time mailed token (invitation, password reset) sets the password: the token is
        used up, every other session ends, the address counts as verified (the link reached it)
        and a new session opens. Throttled per client address like sign-in."""
        scope = f"ip:{throttle_key(ip)}"
        await self._admit(scope, self._throttle.per_address)
        # Hashed before the lookup, so a bad token costs as much time as a good one.
        new_hash = await self._passwords.hash(password)
        async with self._pool.connection() as conn:
            account_id = await consume(conn)
            account = await repository.get_account(conn, account_id) if account_id else None
            if account is None:
                raise Unauthenticated(bad_token)
            await repository.refund_attempt(conn, scope)
            await repository.update_account(conn, account.id, "password_hash", new_hash)
            await repository.mark_email_verified(conn, account.id)
            await repository.revoke_sessions_except(conn, account.id, None)
            account = await _existing(conn, account.id)
            return await self._open_session(conn, account, user_agent)

    async def session(self, token: str) -> tuple[Account, Session] | None:
        async with self._pool.connection() as conn:
            session = await repository.live_session(conn, token_hash(token))
            if session is None:
                return None
            account = await repository.get_account(conn, session.account_id)
        return (account, session) if account else None

    async def sessions(self, account_id: str) -> list[Session]:
        async with self._pool.connection() as conn:
            return await repository.list_sessions(conn, account_id)

    async def end_session(self, account_id: str, session_id: str) -> None:
        async with self._pool.connection() as conn:
            if not await repository.revoke_session(conn, account_id, session_id):
                raise NotFound("no such session")

    async def change_password(
        self, account_id: str, session_id: str, current: str, new: str
    ) -> None:
        """Change the password and end every other session (a stolen cookie stops working).
        A wrong current password is a failed sign-in of the account's email: a stolen session
        cannot guess the password here faster than at the sign-in page."""
        check_password_rules(new)
        async with self._pool.connection() as conn:
            account = await _existing(conn, account_id)
            stored = await repository.password_hash_of(conn, account_id)
        scope = email_scope(account.email)
        await self._admit(scope, self._throttle.per_email)
        if not await self._passwords.verify(stored, current):
            raise InvalidRequest("the current password is wrong")
        new_hash = await self._passwords.hash(new)
        async with self._pool.connection() as conn:
            await repository.clear_attempts(conn, scope)
            await repository.update_account(conn, account_id, "password_hash", new_hash)
            await repository.revoke_sessions_except(conn, account_id, session_id)

    async def prune(self) -> None:
        async with self._pool.connection() as conn:
            await repository.prune_attempts(conn, self._throttle.forget_s)
            await repository.prune_windows(conn, WINDOWS_KEPT_S)
            await repository.prune_sessions(conn)
            await repository.prune_email_tokens(conn)


async def admit_attempt(
    pool: AsyncConnectionPool, scope: str, backoff: Backoff, forget_s: int
) -> None:
    """Count an attempt of ``scope``, or refuse it (429) while the scope must wait. Each scope in
    its own transaction: a refusal by a later scope keeps the earlier count. Customer and
    operator sign-in share it (and the client address's scope)."""
    async with pool.connection() as conn:
        admitted = await repository.claim_attempt(conn, scope, backoff, forget_s)
        wait = 0 if admitted else await repository.attempt_wait_s(conn, scope, backoff)
    if not admitted:
        raise TooManyAttempts("too many attempts; try again later", retry_after_s=wait)


async def _existing(conn: Conn, account_id: str, *, for_update: bool = False) -> Account:
    account = await repository.get_account(conn, account_id, for_update=for_update)
    if account is None:
        raise NotFound("no such account")
    return account
