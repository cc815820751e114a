"""Billing's request/reply API on NATS, for accounts (operator and customer routes) and the edge.

Every request is a JSON document of the ``*Query``/``*Command`` type below on its subject (queue
group ``billing``); every reply is the matching ``*Reply`` or an :class:`ApiError`. Money is
nano-USD in Python and decimal USD strings on the wire.
"""

from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, Field

from aiapi_shared.catalogue import Catalogue, ModelTraits, PlanId
from aiapi_shared.events.base import Record
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.money import Money

ACCOUNT_SUBJECT = "rpc.billing.v1.account.get"
ADJUST_SUBJECT = "rpc.billing.v1.adjust"
PURCHASE_PLAN_SUBJECT = "rpc.billing.v1.plan.purchase"
REQUEST_RECORD_SUBJECT = "rpc.billing.v1.request.get"
LEDGER_SUBJECT = "rpc.billing.v1.ledger.list"
DAILY_USAGE_SUBJECT = "rpc.billing.v1.usage.daily"
REQUEST_LIST_SUBJECT = "rpc.billing.v1.request.list"
DAILY_KEY_USAGE_SUBJECT = "rpc.billing.v1.usage.daily_by_key"
USAGE_SERIES_SUBJECT = "rpc.billing.v1.usage.series"


class ApiError(Record):
    """A refusal: ``status`` is the HTTP status the caller should answer with."""

    error: str
    message: str
    status: int = 400


class AccountQuery(Record):
    account_id: str


class AccountBalanceReply(Record):
    account_id: str
    balance: Money
    available: Money
    open_holds: Money
    version: int


class AdjustCommand(Record):
    """An operator's credit (positive) or debit (negative); the key makes a retry safe."""

    account_id: str
    amount: Money
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: str = Field(min_length=1, max_length=200)
    actor: str = "operator"


class AdjustReply(Record):
    transfer_id: str
    balance: Money
    available: Money
    replayed: bool = False


class PurchasePlanCommand(Record):
    """A customer's choice of a plan marked choosable, debited its one-time price once."""

    account_id: str
    plan: PlanId


class PurchasePlanReply(Record):
    plan: PlanId
    price: Money
    balance: Money
    already_owned: bool = False


class RequestRecordQuery(Record):
    account_id: str
    request_id: str


class RequestRecordReply(Record):
    """The priced record of one request (``GET /v1/usage/requests/{id}``)."""

    id: str
    model: str
    route: str
    created_at: AwareDatetime
    status: str
    usage: Usage
    cost_usd: Money


class RequestListQuery(Record):
    """An account's priced requests, newest first (``started_at``, then ``request_id``, both
    descending), filtered; ``before`` is the position after which the next page starts."""

    account_id: str
    key_id: str | None = None
    model: str | None = None
    since: AwareDatetime | None = Field(default=None, description="started at or after")
    until: AwareDatetime | None = Field(default=None, description="started before")
    before_started_at: AwareDatetime | None = None
    before_request_id: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class RequestLogRow(RequestRecordReply):
    key_id: str
    status_code: int


class RequestListReply(Record):
    records: list[RequestLogRow]
    more: bool = Field(description="another page follows the last record")


class LedgerQuery(Record):
    account_id: str
    limit: int = Field(default=50, ge=1, le=500)
    before_id: int | None = None


class LedgerEntry(Record):
    id: int
    kind: str
    amount: Money
    balance_after: Money | None = None
    reference: str
    created_at: AwareDatetime
    memo: str = ""


class LedgerReply(Record):
    entries: list[LedgerEntry]


class DailyUsageQuery(Record):
    account_id: str
    days: int = Field(default=30, ge=1, le=366)


class DailyUsageRow(Record):
    day: date
    model: str
    requests: int
    usage: Usage
    cost: Money


class DailyUsageReply(Record):
    rows: list[DailyUsageRow]


class DailyKeyUsageRow(DailyUsageRow):
    key_id: str


class DailyKeyUsageReply(Record):
    """Like ``DailyUsageReply``, one row per day, model and key."""

    rows: list[DailyKeyUsageRow]


class UsageSeries(Record):
    """One model's or one key's usage per UTC day, a value per day of the reply's span (oldest
    first; 0 on a day without usage)."""

    name: str = Field(description="the model id, or the key id")
    requests: list[int]
    tokens: list[int] = Field(description="every metered token (thinking is part of output)")
    cost: list[Money]


class UsageSeriesReply(Record):
    """The dashboard's charts: usage per day grouped by model and, separately, by key. Arrays,
    not a row per day, model and key: a year of a busy account stays a small message (the rows
    of ``DailyKeyUsageReply`` for 366 days outgrow NATS's 1 MiB payload)."""

    first_day: date
    days: int
    by_model: list[UsageSeries]
    by_key: list[UsageSeries]


CATALOGUE_GET_SUBJECT = "rpc.billing.v1.catalogue.get"
CATALOGUE_MODEL_SUBJECT = "rpc.billing.v1.catalogue.model.put"
CATALOGUE_ALIAS_SUBJECT = "rpc.billing.v1.catalogue.alias.put"
CATALOGUE_PRICE_SUBJECT = "rpc.billing.v1.catalogue.price.add"
CATALOGUE_PLAN_SUBJECT = "rpc.billing.v1.catalogue.plan.put"
CATALOGUE_METER_SUBJECT = "rpc.billing.v1.catalogue.meter.put"
ACCOUNT_TERMS_SUBJECT = "rpc.billing.v1.catalogue.account_terms.put"


class CatalogueQuery(Record):
    pass


class ModelSpec(Record):
    """A model as the operator describes it; a new model needs its first price (it is sold from
    ``effective_from``, or now)."""

    display_name: str = Field(min_length=1, max_length=200)
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    traits: ModelTraits = ModelTraits()
    on_sale: bool = True
    input_usd_per_mtok: Money | None = None
    output_usd_per_mtok: Money | None = None
    effective_from: AwareDatetime | None = None


class PutModelCommand(ModelSpec):
    """Add or change the model ``id``."""

    id: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")


class PutAliasCommand(Record):
    """Serve and price ``alias`` as ``target``; ``target`` None removes the alias."""

    alias: str = Field(min_length=1, max_length=100)
    target: str | None = None


class AddPriceCommand(Record):
    model: str
    effective_from: AwareDatetime
    input_usd_per_mtok: Money
    output_usd_per_mtok: Money


class PutPlanCommand(Record):
    """A new version of plan ``id`` from ``effective_from`` (billing's now when None; never in
    the past, so no admitted request is re-priced). A field left None keeps the value of the
    version in force then; a new plan needs them all but ``display_name`` and ``choosable``."""

    id: PlanId
    effective_from: AwareDatetime | None = None
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    price_usd: Money | None = Field(default=None, ge=0)
    requests_per_minute: int | None = Field(default=None, gt=0, le=10_000_000)
    tokens_per_minute: int | None = Field(default=None, gt=0, le=10_000_000_000)
    discount_bps: int | None = Field(default=None, ge=0, le=10_000)
    choosable: bool | None = None


class PutMeterPriceCommand(Record):
    """A price of ``meter`` (a server tool's unit price, or a tier's multipliers) from
    ``effective_from`` (billing's now when None; never in the past)."""

    meter: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+(:[a-z0-9_.-]+)?$")
    effective_from: AwareDatetime | None = None
    usd_per_unit: Money = Field(default=0, ge=0)
    input_bps: int = Field(default=10_000, ge=0, le=1_000_000)
    output_bps: int = Field(default=10_000, ge=0, le=1_000_000)


class PutAccountTermsCommand(Record):
    """An account's own limits and discount from ``effective_from`` (billing's now when None;
    never in the past). ``set_limits``: both limits become these (null: the plan's);
    ``set_discount``: the discount becomes this (null: the plan's); what is not set is kept."""

    account_id: str = Field(min_length=1, max_length=100)
    effective_from: AwareDatetime | None = None
    set_limits: bool = False
    requests_per_minute: int | None = Field(default=None, gt=0, le=10_000_000)
    tokens_per_minute: int | None = Field(default=None, gt=0, le=10_000_000_000)
    set_discount: bool = False
    discount_bps: int | None = Field(default=None, ge=0, le=10_000)


class CatalogueReply(Record):
    version: int
    catalogue: Catalogue
