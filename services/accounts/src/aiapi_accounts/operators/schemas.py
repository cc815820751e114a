"""The JSON bodies of the operator API's operator, token and audit routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from aiapi_accounts.operators.domain import AuditEntry, Operator, OperatorToken, Role
from aiapi_accounts.schemas import Answer, Body

_REASON = Field(default=None, max_length=1000, description="why (kept in the audit log)")


class CreateOperatorBody(Body):
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(max_length=254)
    role: Role
    password: str | None = Field(
        default=None, max_length=1024, description="for the web console; omit for tokens only"
    )
    reason: str | None = _REASON


class PatchOperatorBody(Body):
    disabled: bool | None = Field(
        default=None, description="true ends its console sessions and stops its tokens"
    )
    role: Role | None = None
    password: str | None = Field(default=None, max_length=1024)
    reason: str | None = _REASON


class CreateTokenBody(Body):
    name: str = Field(min_length=1, max_length=100)
    reason: str | None = _REASON


class OperatorAnswer(Answer):
    id: str
    name: str
    email: str | None
    role: Role
    disabled: bool
    console: bool = Field(description="whether it has a console password")
    created_at: datetime | None
    created_by: str | None

    @classmethod
    def of(cls, operator: Operator) -> OperatorAnswer:
        return cls(
            id=operator.id,
            name=operator.name,
            email=operator.email,
            role=operator.role,
            disabled=operator.disabled,
            console=operator.has_password,
            created_at=operator.created_at,
            created_by=operator.created_by,
        )


class OperatorListAnswer(Answer):
    data: list[OperatorAnswer]


class WhoAmIAnswer(Answer):
    operator: OperatorAnswer
    via: str = Field(description="bootstrap, token or session")


class TokenAnswer(Answer):
    id: str
    operator_id: str
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: OperatorToken) -> TokenAnswer:
        return cls(
            id=token.id,
            operator_id=token.operator_id,
            name=token.name,
            hint=token.hint,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokenCreatedAnswer(TokenAnswer):
    token: str = Field(description="the operator token; shown only in this answer")


class TokenListAnswer(Answer):
    data: list[TokenAnswer]


class AuditPageAnswer(Answer):
    data: list[AuditEntry]
    next_cursor: str | None = Field(description="pass as cursor for older entries; null at the end")
