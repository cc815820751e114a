"""The accounts domain without I/O: identifiers, validation rules, key records, throttling."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.events.accounts_v1 import AccountStatus, PlanName
from aiapi_shared.events.records_v1 import KeyRecord

from aiapi_accounts.errors import InvalidRequest

# Deliberately loose: one "@", no spaces, a dot in the domain. Deliverability is not ours to judge.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


def new_account_id() -> str:
    return f"acc_{uuid.uuid4().hex}"


def new_key_id() -> str:
    return f"key_{uuid.uuid4().hex}"


def new_session_id() -> str:
    return f"ses_{uuid.uuid4().hex}"


def new_secret_token() -> str:
    """256 random bits, URL-safe: session cookies and CSRF tokens."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidRequest("email is not a valid address")
    return email


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(
            f"password must be between {MIN_PASSWORD} and {MAX_PASSWORD} characters"
        )


def email_scope(email: str) -> str:
    """The throttling scope of an email; hashed so the table holds no addresses."""
    return "email:" + hashlib.sha256(email.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    plan: PlanName
    status: AccountStatus
    created_at: datetime
    updated_at: datetime
    has_password: bool
    # False only for a sign-up still waiting for its verification link to be followed.
    email_verified: bool = True


@dataclass(frozen=True)
class ApiKey:
    id: str
    account_id: str
    key_hash: str
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    updated_at: datetime

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at else "active"


DEFAULT_PLAN = "basic"  # every new account starts on it; another plan is chosen (and paid) after


def key_record(account: Account, key: ApiKey, catalogue: Catalogue) -> KeyRecord:
    """What the edge needs to authenticate and limit a key; newer ``updated_at`` wins in KV.
    The limits are the account's terms now, for the operator's eye: billing enforces the terms
    in force when each request starts."""
    now = datetime.now(UTC)
    try:
        terms = catalogue.terms(account.plan, account.id, now)
        rpm, tpm = terms.requests_per_minute, terms.tokens_per_minute
    except KeyError:  # a plan created a moment ago, not yet in this copy: the first plan's
        first = catalogue.plans_at(now)[0]
        rpm, tpm = first.requests_per_minute, first.tokens_per_minute
    return KeyRecord(
        key_id=key.id,
        account_id=account.id,
        plan=account.plan,
        key_status="revoked" if key.revoked_at else "active",
        account_status=account.status,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        updated_at=max(account.updated_at, key.updated_at),
    )


@dataclass(frozen=True)
class Session:
    """A signed-in browser session (the cookie holds its token; the table holds its hash)."""

    id: str
    account_id: str
    csrf_token: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Backoff:
    """``free`` failures cost nothing; after ``n >= free`` failures the next attempt waits
    ``base_s * 2 ** (n - free)`` seconds, at most ``max_s``. Counted and enforced in one SQL
    statement (:func:`aiapi_accounts.repository.claim_attempt`), so replicas and parallel
    requests cannot slip past it."""

    free: int
    base_s: int
    max_s: int


@dataclass(frozen=True)
class Throttle:
    """Sign-in throttling: a backoff per email and one per client address; a scope with no
    attempt for ``forget_s`` starts again from zero."""

    per_email: Backoff
    per_address: Backoff
    forget_s: int


@dataclass(frozen=True)
class Limits:
    """Abuse caps of the customer API (operators are not held to them)."""

    max_keys_per_account: int
    writes_per_minute: int
