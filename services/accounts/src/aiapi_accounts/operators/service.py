"""The operators' use cases: who a credential belongs to, operators and their tokens, console
sign-in, the audit log. Nothing here speaks HTTP (the gate and the routes do)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from aiapi_accounts import repository as attempts
from aiapi_accounts.clientaddr import throttle_key
from aiapi_accounts.commands import BAD_CREDENTIALS, admit_attempt
from aiapi_accounts.domain import (
    Throttle,
    check_password_rules,
    email_scope,
    new_secret_token,
    normalise_email,
    token_hash,
)
from aiapi_accounts.errors import Conflict, NotFound, Unauthenticated
from aiapi_accounts.operators import repository
from aiapi_accounts.operators.domain import (
    BOOTSTRAP,
    TOKEN_PREFIX,
    Acting,
    AuditEntry,
    AuditRecord,
    Operator,
    OperatorSession,
    OperatorToken,
    Role,
    new_operator_id,
    new_operator_token,
    new_session_id,
    new_token_id,
    token_hint,
)
from aiapi_accounts.operators.repository import AuditFilter
from aiapi_accounts.passwords import Passwords
from aiapi_accounts.repository import Conn


@dataclass(frozen=True)
class IssuedToken:
    token: OperatorToken
    secret: str  # shown once, to the operator who asked; only its hash is stored, never logged


@dataclass(frozen=True)
class ConsoleSignIn:
    operator: Operator
    session: OperatorSession
    cookie: str  # the session cookie's value; only its hash is stored


class Operators:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        passwords: Passwords,
        throttle: Throttle,
        *,
        bootstrap_token: str,
        session_ttl_s: int,
    ) -> None:
        self._pool = pool
        self._passwords = passwords
        self._throttle = throttle
        self._bootstrap = bootstrap_token.encode()
        self.session_ttl_s = session_ttl_s

    # -- who is acting -------------------------------------------------------------------------

    async def by_bearer(self, token: str) -> Acting | None:
        """The bootstrap identity or the enabled operator of a live token; None otherwise."""
        if hmac.compare_digest(token.encode(), self._bootstrap):
            return Acting(BOOTSTRAP, "bootstrap")
        if not token.startswith(TOKEN_PREFIX):
            return None
        async with self._pool.connection() as conn:
            operator = await repository.operator_by_token(conn, token_hash(token))
        return Acting(operator, "token") if operator else None

    async def by_session(self, cookie: str) -> Acting | None:
        async with self._pool.connection() as conn:
            found = await repository.live_session(conn, token_hash(cookie))
        return Acting(found[0], "session", found[1]) if found else None

    # -- operators -----------------------------------------------------------------------------

    async def create(
        self, name: str, email: str, role: Role, password: str | None, by: Operator
    ) -> Operator:
        normalised = normalise_email(email)
        password_hash = None
        if password is not None:
            check_password_rules(password)
            password_hash = await self._passwords.hash(password)
        async with self._pool.connection() as conn:
            created = await repository.insert_operator(
                conn, new_operator_id(), name.strip(), normalised, role, password_hash, by.id
            )
        if created is None:
            raise Conflict("an operator with this email exists")
        return created

    async def all(self) -> list[Operator]:
        async with self._pool.connection() as conn:
            return await repository.list_operators(conn)

    async def get(self, operator_id: str) -> Operator:
        async with self._pool.connection() as conn:
            return await _existing(conn, operator_id)

    async def change(
        self,
        operator_id: str,
        *,
        disabled: bool | None,
        role: Role | None,
        password: str | None,
    ) -> Operator:
        """Disable or enable (disabling ends the console sessions; the tokens stop working
        while it lasts), change the role, set a new console password."""
        if password is not None:
            check_password_rules(password)
        new_hash = await self._passwords.hash(password) if password is not None else None
        async with self._pool.connection() as conn:
            await _existing(conn, operator_id)
            if disabled is not None:
                await repository.set_disabled(conn, operator_id, disabled)
            if role is not None:
                await repository.set_role(conn, operator_id, role)
            if new_hash is not None:
                await repository.set_password_hash(conn, operator_id, new_hash)
            return await _existing(conn, operator_id)

    # -- tokens --------------------------------------------------------------------------------

    async def issue_token(self, operator_id: str, name: str) -> IssuedToken:
        secret = new_operator_token()
        async with self._pool.connection() as conn:
            await _existing(conn, operator_id)
            token = await repository.insert_token(
                conn, new_token_id(), operator_id, token_hash(secret), name, token_hint(secret)
            )
        return IssuedToken(token, secret)

    async def tokens(self, operator_id: str) -> list[OperatorToken]:
        async with self._pool.connection() as conn:
            await _existing(conn, operator_id)
            return await repository.list_tokens(conn, operator_id)

    async def revoke_token(self, operator_id: str, token_id: str) -> None:
        async with self._pool.connection() as conn:
            if not await repository.revoke_token(conn, operator_id, token_id):
                raise NotFound("no such token")

    # -- console sign-in ----------------------------------------------------------------------

    async def sign_in(self, email: str, password: str, ip: str, user_agent: str) -> ConsoleSignIn:
        """Throttled like customer sign-in (the client address's budget is the same one; the
        email's is the operator's own), one argon2 verification whatever the email."""
        normalised = email.strip().lower()
        address = f"ip:{throttle_key(ip)}"
        scope = "operator-" + email_scope(normalised)
        forget = self._throttle.forget_s
        await admit_attempt(self._pool, address, self._throttle.per_address, forget)
        await admit_attempt(self._pool, scope, self._throttle.per_email, forget)
        async with self._pool.connection() as conn:
            found = await repository.operator_credentials(conn, normalised)
        operator, stored = found if found else (None, None)
        if not await self._passwords.verify(stored, password) or operator is None:
            raise Unauthenticated(BAD_CREDENTIALS)
        cookie = new_secret_token()
        async with self._pool.connection() as conn:
            await attempts.clear_attempts(conn, scope)
            await attempts.refund_attempt(conn, address)
            if stored and self._passwords.needs_rehash(stored):
                rehashed = await self._passwords.hash(password)
                await repository.set_password_hash(conn, operator.id, rehashed)
            session = await repository.insert_session(
                conn,
                new_session_id(),
                token_hash(cookie),
                operator.id,
                new_secret_token(),
                user_agent,
                self.session_ttl_s,
            )
        return ConsoleSignIn(operator, session, cookie)

    async def sign_out(self, session_id: str) -> None:
        async with self._pool.connection() as conn:
            await repository.revoke_session(conn, session_id)

    # -- the audit log -------------------------------------------------------------------------

    async def record(self, entry: AuditRecord) -> int:
        async with self._pool.connection() as conn:
            return await repository.append_audit(conn, entry)

    async def audit(self, where: AuditFilter) -> list[AuditEntry]:
        async with self._pool.connection() as conn:
            return await repository.list_audit(conn, where)

    async def prune(self) -> None:
        async with self._pool.connection() as conn:
            await repository.prune_sessions(conn)


async def _existing(conn: Conn, operator_id: str) -> Operator:
    operator = await repository.get_operator(conn, operator_id)
    if operator is None:
        raise NotFound("no such operator")
    return operator
