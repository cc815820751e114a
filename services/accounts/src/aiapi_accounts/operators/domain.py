"""Operators without I/O: identities, roles, what a role may do, token and id formats.

Two roles: ``admin`` reads and writes, ``support`` only reads. What counts as a read is the HTTP
method (GET, HEAD), decided in one place (:func:`may`), so a new route cannot be writable by
support by mistake.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Role = Literal["admin", "support"]
Via = Literal["bootstrap", "token", "session"]

READ_METHODS = frozenset({"GET", "HEAD"})
TOKEN_PREFIX = "aiapi_op_"  # noqa: S105 (a prefix, not a secret)
HINT_LENGTH = 4
BOOTSTRAP_ID = "bootstrap"


def may(role: Role, method: str) -> bool:
    """Whether an operator of ``role`` may send a request of ``method`` at all."""
    return role == "admin" or method.upper() in READ_METHODS


def new_operator_id() -> str:
    return f"op_{uuid.uuid4().hex}"


def new_token_id() -> str:
    return f"opt_{uuid.uuid4().hex}"


def new_session_id() -> str:
    return f"ops_{uuid.uuid4().hex}"


def new_operator_token() -> str:
    """An operator API token: a recognisable prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hint(token: str) -> str:
    return f"{TOKEN_PREFIX}...{token[-HINT_LENGTH:]}"


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    email: str | None  # None for the bootstrap identity only
    role: Role
    created_at: datetime | None
    created_by: str | None
    disabled_at: datetime | None
    has_password: bool

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


# The identity of AIAPI_ADMIN_TOKEN: an admin that exists in no table, so it works before any
# operator does (it creates the first one) and after every operator was disabled.
BOOTSTRAP = Operator(
    id=BOOTSTRAP_ID,
    name="bootstrap",
    email=None,
    role="admin",
    created_at=None,
    created_by=None,
    disabled_at=None,
    has_password=False,
)


@dataclass(frozen=True)
class OperatorToken:
    id: str
    operator_id: str
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class OperatorSession:
    id: str
    operator_id: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Acting:
    """Who is behind a request on the operator listener, and by which credential."""

    operator: Operator
    via: Via
    session: OperatorSession | None = None


@dataclass(frozen=True)
class AuditRecord:
    """What the gate appends for one write through the operator listener."""

    operator_id: str
    operator_name: str
    source: str  # the client address
    method: str
    route: str  # the route template
    target: dict[str, str]  # the path parameters, and the id of what a 201 created
    account_id: str | None
    status: int  # the answer's HTTP status
    summary: dict[str, Any]  # the body with every secret replaced
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class AuditEntry(AuditRecord):
    """An entry of the log: the record, its place and its time."""

    id: int
    at: datetime
