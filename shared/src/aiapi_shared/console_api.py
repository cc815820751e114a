"""The operator console's questions to billing and payments over NATS (request/reply).

Accounts owns the operator API; the figures behind it live where the money and the chains are:
* billing ranks accounts by balance or spend (``ACCOUNT_LIST_SUBJECT``), says whose a
  ``request-id`` is (``REQUEST_OWNER_SUBJECT``), totals usage and ledger movements for the
  business report (``USAGE_REPORT_SUBJECT``) and describes the last minute (``LIVE_SUBJECT``);
* payments says whose a deposit address or transaction is (``DEPOSIT_OWNERS_SUBJECT``).

Replies are the ``*Reply`` types or :class:`aiapi_shared.billing_api.ApiError`. Money is
nano-USD in Python and decimal USD strings on the wire.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from aiapi_shared.events.base import Record
from aiapi_shared.money import Money

ACCOUNT_LIST_SUBJECT = "rpc.billing.v1.console.accounts"
REQUEST_OWNER_SUBJECT = "rpc.billing.v1.console.request_owner"
USAGE_REPORT_SUBJECT = "rpc.billing.v1.console.report"
LIVE_SUBJECT = "rpc.billing.v1.console.live"
DEPOSIT_OWNERS_SUBJECT = "rpc.payments.v1.console.owners"

SPEND_DAYS = 30  # "spend" is the usage cost of the last 30 UTC days, today included
MAX_LISTED_IDS = 5000  # the most account ids one AccountListQuery may name

AccountSort = Literal["balance", "spend"]
Order = Literal["asc", "desc"]
Grouping = Literal["day", "week", "month", "model", "plan", "account"]
TIME_GROUPINGS: tuple[Grouping, ...] = ("day", "week", "month")


class AccountListQuery(Record):
    """Accounts with their figures. ``account_ids`` None: every account billing knows; else only
    those. With ``sort``, a page ordered by that figure then by id (``after_value`` and
    ``after_id`` are the last row of the previous page); without, the named accounts' figures."""

    account_ids: list[str] | None = Field(default=None, max_length=MAX_LISTED_IDS)
    sort: AccountSort | None = None
    order: Order = "desc"
    after_value: int | None = None
    after_id: str | None = None
    limit: int = Field(default=50, ge=1, le=MAX_LISTED_IDS)


class AccountFigures(Record):
    account_id: str
    balance: Money  # settled
    available: Money  # balance less open holds and leases
    holds: Money
    spend: Money  # usage cost over SPEND_DAYS


class AccountListReply(Record):
    rows: list[AccountFigures]
    more: bool = False


class RequestOwnerQuery(Record):
    request_id: str = Field(min_length=1, max_length=200)


class RequestOwnerReply(Record):
    """The account of a settled request, or of one admitted and not settled yet; None: unknown."""

    account_id: str | None


class DepositOwnersQuery(Record):
    """A deposit address or a transaction hash, as the operator pasted it."""

    text: str = Field(min_length=1, max_length=200)


class DepositOwner(Record):
    account_id: str
    matched: Literal["address", "tx_hash"]


class DepositOwnersReply(Record):
    owners: list[DepositOwner]


class UsageReportQuery(Record):
    since: AwareDatetime = Field(description="from this moment on")
    until: AwareDatetime = Field(description="before this moment")
    group_by: Grouping


class Meters(Record):
    """Sums of the usage meters."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    thinking_tokens: int = 0
    web_search_requests: int = 0
    web_fetch_requests: int = 0


class UsageReportRow(Record):
    """One group: a period's first day (``YYYY-MM-DD``, UTC; weeks start on Monday), a model, a
    plan or an account id. Usage counts by the request's start; ledger movements (plan sales,
    deposits) by the moment they were booked."""

    key: str
    requests: int = 0
    meters: Meters = Meters()
    revenue: Money = 0  # what customers paid for the usage (the ledger's usage debits)
    upstream_cost: Money = 0  # the upstream's list price of the same usage
    unpriced_requests: int = 0  # settled before list costs were recorded: not in upstream_cost
    active_accounts: int = 0  # accounts with at least one request in the group
    plan_sales: Money = 0  # plan purchases (time and account groupings)
    deposits: dict[str, Money] = Field(default_factory=dict)  # credited less reversed, by asset


class UsageReportReply(Record):
    rows: list[UsageReportRow]


class LiveQuery(Record):
    window_s: int = Field(default=60, ge=5, le=3600)


class LiveReply(Record):
    """The last ``window_s`` seconds as billing saw them settle, and its settlement backlog."""

    window_s: int
    requests: int  # settled requests that started in the window
    by_outcome: dict[str, int]  # the usage records' outcome
    by_status_class: dict[str, int]  # "2xx", "4xx", "5xx", ...
    revenue: Money
    settlement_lag_s: float | None  # the longest finish-to-settlement delay in the window
    pending_usage_events: int | None  # in the USAGE stream, not yet acknowledged by billing
    open_holds: int
    open_leases: int
