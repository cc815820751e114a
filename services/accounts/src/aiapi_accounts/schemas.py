"""The JSON bodies of the accounts HTTP API (requests and answers). USD amounts are decimal
strings; incoming amounts must be strings (a JSON number is refused: floats never carry money)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aiapi_shared.events.accounts_v1 import AccountStatus, PlanName
from aiapi_shared.money import Money, format_usd, parse_usd
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from aiapi_accounts.domain import Account, ApiKey, Session


def _usd_from_string(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError('a USD amount is a decimal string such as "10.00"')
    return parse_usd(value)


# Incoming amounts: strings only. Answers use the shared ``Money`` (an int rendered as a string).
UsdIn = Annotated[
    int,
    BeforeValidator(_usd_from_string),
    PlainSerializer(format_usd, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d{1,9})?$", "examples": ["10.00"]}),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- operator -----------------------------------------------------------------------------------


class CreateAccountBody(Body):
    email: str = Field(max_length=254)
    plan: PlanName = "basic"


class LimitsBody(Body):
    """An account's own limits; a limit left out (or null) follows its plan's."""

    requests_per_minute: int | None = Field(default=None, gt=0, le=10_000_000)
    tokens_per_minute: int | None = Field(default=None, gt=0, le=10_000_000_000)


class PatchAccountBody(Body):
    plan: PlanName | None = None
    status: AccountStatus | None = None
    limits: LimitsBody | None = Field(
        default=None, description="the account's own limits over its plan's ({} drops them)"
    )
    discount_bps: int | None = Field(
        default=None, ge=0, le=10_000, description="the account's own discount (10000 = 100% off)"
    )
    plan_discount: bool = Field(
        default=False, description="true drops the account's own discount (back to its plan's)"
    )
    effective_from: AwareDatetime | None = Field(
        default=None, description="when the limits and discount start (default: now; not past)"
    )


class AdjustmentBody(Body):
    amount_usd: UsdIn
    reason: str = Field(min_length=1, max_length=500)


class KeyCreateBody(Body):
    name: str = Field(min_length=1, max_length=100)


class RateBody(Body):
    asset: Literal["ETH", "BTC"]
    usd: UsdIn


class SweepPlanBody(Body):
    """Where swept funds go, per account key (each optional): `evm` serves every EVM network."""

    destinations: dict[Literal["evm", "tron", "bitcoin"], str] = Field(default_factory=dict)


class AccountAnswer(Answer):
    id: str
    email: str
    plan: PlanName
    status: AccountStatus
    created_at: datetime
    email_verified: bool = Field(
        description="false while a sign-up's verification link has not been followed"
    )

    @classmethod
    def of(cls, account: Account) -> AccountAnswer:
        return cls(
            id=account.id,
            email=account.email,
            plan=account.plan,
            status=account.status,
            created_at=account.created_at,
            email_verified=account.email_verified,
        )


class AccountWithBalanceAnswer(AccountAnswer):
    balance_usd: Money = Field(description="settled balance")
    available_usd: Money = Field(description="balance less open holds")
    owed_usd: Money = Field(
        description="what the account owes: minus the settled balance when it is below zero,"
        ' else "0.00"; its requests are refused (402) until a top-up covers it'
    )
    requests_per_minute: int | None = Field(
        default=None, description="the account's limit now: its plan's or its own"
    )
    tokens_per_minute: int | None = Field(
        default=None, description="the account's limit now: its plan's or its own"
    )
    discount_bps: int | None = Field(
        default=None, description="the account's discount now: its plan's or its own"
    )


class AdjustmentAnswer(Answer):
    account_id: str
    transfer_id: str
    balance_usd: Money
    available_usd: Money
    replayed: bool = Field(description="true when the Idempotency-Key was seen before")


class KeyCreatedAnswer(Answer):
    id: str
    key: str = Field(description="the API key; shown only in this answer")
    name: str
    created_at: datetime


class InvitationAnswer(Answer):
    token: str = Field(description="one-time token for the customer; shown only in this answer")
    expires_at: datetime


class RateAnswer(Answer):
    asset: Literal["ETH", "BTC"]
    usd: Money
    set_at: datetime


# -- customer -----------------------------------------------------------------------------------


class CredentialsBody(Body):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class PasswordChangeBody(Body):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class AcceptInvitationBody(Body):
    token: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class TokenBody(Body):
    token: str = Field(max_length=200)


class EmailBody(Body):
    email: str = Field(max_length=254)


class MailAcceptedAnswer(Answer):
    status: Literal["accepted"] = "accepted"
    message: str


class UpgradeBody(Body):
    plan: PlanName = Field(description="a plan customers may choose (GET /api/v1/plans)")


class SignUpAnswer(Answer):
    status: Literal["accepted"] = "accepted"
    message: str = (
        "If this email was free, its account exists now: sign in to use it (and follow the"
        " verification link mailed to it, when this deployment asks for one)."
    )


class SignInAnswer(Answer):
    account: AccountAnswer
    session_id: str
    csrf_token: str = Field(description="send it back as X-CSRF-Token on every write")
    expires_at: datetime


class SessionAnswer(Answer):
    id: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool

    @classmethod
    def of(cls, session: Session, current_id: str) -> SessionAnswer:
        return cls(
            id=session.id,
            user_agent=session.user_agent,
            created_at=session.created_at,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
            current=session.id == current_id,
        )


class KeyAnswer(Answer):
    id: str
    name: str
    hint: str = Field(description="the prefix and the last four characters")
    status: Literal["active", "revoked"]
    created_at: datetime
    last_used_at: datetime | None = Field(description="approximate (about a minute)")
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyAnswer:
        return cls(
            id=key.id,
            name=key.name,
            hint=key.hint,
            status="revoked" if key.revoked_at else "active",
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class BalanceAnswer(Answer):
    balance_usd: Money
    available_usd: Money


class UpgradeAnswer(Answer):
    account: AccountAnswer
    price_usd: Money
    balance_usd: Money
    already_owned: bool


class PlanAnswer(Answer):
    id: PlanName
    display_name: str
    price_usd: Money
    requests_per_minute: int
    tokens_per_minute: int
    discount_bps: int


class ErrorDetail(Answer):
    type: str
    message: str


class ErrorAnswer(Answer):
    error: ErrorDetail
