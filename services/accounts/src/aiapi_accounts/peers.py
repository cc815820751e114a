"""Billing and payments, reached over NATS request/reply (never their tables)."""

from __future__ import annotations

from typing import TypeVar

from aiapi_shared import billing_api, console_api, payments_api
from aiapi_shared.billing_api import ApiError
from aiapi_shared.bus import Bus, BusUnavailable, ErrorReply, InvalidReply
from aiapi_shared.events.base import Record
from pydantic import BaseModel

from aiapi_accounts.errors import PeerRefused, PeerUnavailable

R = TypeVar("R", bound=BaseModel)
SWEEP_PLAN_TIMEOUT_S = 60.0
REPORT_TIMEOUT_S = 30.0


class Peers:
    def __init__(self, bus: Bus, *, timeout_s: float, payments_enabled: bool = True) -> None:
        self._bus = bus
        self._timeout_s = timeout_s
        self._payments_enabled = payments_enabled

    async def _call(
        self,
        peer: str,
        subject: str,
        command: Record,
        answer: type[R],
        timeout_s: float | None = None,
    ) -> R:
        try:
            return await self._bus.call(
                subject, command, answer, timeout_s=timeout_s or self._timeout_s
            )
        except BusUnavailable as exc:
            raise PeerUnavailable(f"{peer} is not reachable; try again later") from exc
        except InvalidReply as exc:
            raise PeerUnavailable(f"{peer} {exc.detail}") from exc
        except ErrorReply as exc:
            raise _refusal(peer, exc.error) from exc

    # -- billing ----------------------------------------------------------------------------

    async def catalogue(self) -> billing_api.CatalogueReply:
        return await self._call(
            "billing",
            billing_api.CATALOGUE_GET_SUBJECT,
            billing_api.CatalogueQuery(),
            billing_api.CatalogueReply,
        )

    async def change_catalogue(self, command: Record) -> billing_api.CatalogueReply:
        """A change of the catalogue (a model, alias, price, plan, meter price or an account's
        own terms); billing answers with the catalogue it now sells."""
        subjects = {
            billing_api.PutModelCommand: billing_api.CATALOGUE_MODEL_SUBJECT,
            billing_api.PutAliasCommand: billing_api.CATALOGUE_ALIAS_SUBJECT,
            billing_api.AddPriceCommand: billing_api.CATALOGUE_PRICE_SUBJECT,
            billing_api.PutPlanCommand: billing_api.CATALOGUE_PLAN_SUBJECT,
            billing_api.PutMeterPriceCommand: billing_api.CATALOGUE_METER_SUBJECT,
            billing_api.PutAccountTermsCommand: billing_api.ACCOUNT_TERMS_SUBJECT,
        }
        subject = subjects[type(command)]
        return await self._call("billing", subject, command, billing_api.CatalogueReply)

    async def balance(self, account_id: str) -> billing_api.AccountBalanceReply:
        query = billing_api.AccountQuery(account_id=account_id)
        return await self._call(
            "billing", billing_api.ACCOUNT_SUBJECT, query, billing_api.AccountBalanceReply
        )

    async def adjust(self, command: billing_api.AdjustCommand) -> billing_api.AdjustReply:
        return await self._call(
            "billing", billing_api.ADJUST_SUBJECT, command, billing_api.AdjustReply
        )

    async def purchase_plan(self, account_id: str, plan: str) -> billing_api.PurchasePlanReply:
        command = billing_api.PurchasePlanCommand(account_id=account_id, plan=plan)
        return await self._call(
            "billing", billing_api.PURCHASE_PLAN_SUBJECT, command, billing_api.PurchasePlanReply
        )

    async def ledger(self, query: billing_api.LedgerQuery) -> billing_api.LedgerReply:
        return await self._call(
            "billing", billing_api.LEDGER_SUBJECT, query, billing_api.LedgerReply
        )

    async def daily_usage(self, query: billing_api.DailyUsageQuery) -> billing_api.DailyUsageReply:
        return await self._call(
            "billing", billing_api.DAILY_USAGE_SUBJECT, query, billing_api.DailyUsageReply
        )

    async def request_list(
        self, query: billing_api.RequestListQuery
    ) -> billing_api.RequestListReply:
        return await self._call(
            "billing", billing_api.REQUEST_LIST_SUBJECT, query, billing_api.RequestListReply
        )

    async def request_record(
        self, account_id: str, request_id: str
    ) -> billing_api.RequestRecordReply:
        query = billing_api.RequestRecordQuery(account_id=account_id, request_id=request_id)
        return await self._call(
            "billing", billing_api.REQUEST_RECORD_SUBJECT, query, billing_api.RequestRecordReply
        )

    async def daily_key_usage(
        self, query: billing_api.DailyUsageQuery
    ) -> billing_api.DailyKeyUsageReply:
        return await self._call(
            "billing", billing_api.DAILY_KEY_USAGE_SUBJECT, query, billing_api.DailyKeyUsageReply
        )

    async def usage_series(
        self, query: billing_api.DailyUsageQuery
    ) -> billing_api.UsageSeriesReply:
        return await self._call(
            "billing", billing_api.USAGE_SERIES_SUBJECT, query, billing_api.UsageSeriesReply
        )

    # -- the operator console (aiapi_shared.console_api) --------------------------------------

    async def account_figures(
        self, query: console_api.AccountListQuery
    ) -> console_api.AccountListReply:
        return await self._call(
            "billing", console_api.ACCOUNT_LIST_SUBJECT, query, console_api.AccountListReply
        )

    async def request_owner(self, request_id: str) -> str | None:
        query = console_api.RequestOwnerQuery(request_id=request_id)
        reply = await self._call(
            "billing", console_api.REQUEST_OWNER_SUBJECT, query, console_api.RequestOwnerReply
        )
        return reply.account_id

    async def usage_report(
        self, query: console_api.UsageReportQuery
    ) -> console_api.UsageReportReply:
        """A long period groups many records: billing is given more time than a page read."""
        return await self._call(
            "billing",
            console_api.USAGE_REPORT_SUBJECT,
            query,
            console_api.UsageReportReply,
            timeout_s=max(self._timeout_s, REPORT_TIMEOUT_S),
        )

    async def live(self, query: console_api.LiveQuery) -> console_api.LiveReply:
        return await self._call("billing", console_api.LIVE_SUBJECT, query, console_api.LiveReply)

    async def deposit_owners(self, text: str) -> list[console_api.DepositOwner]:
        if not self._payments_enabled:
            return []
        query = console_api.DepositOwnersQuery(text=text)
        reply = await self._call(
            "payments",
            console_api.DEPOSIT_OWNERS_SUBJECT,
            query,
            console_api.DepositOwnersReply,
        )
        return reply.owners

    # -- payments -----------------------------------------------------------------------------
    # A deployment without payments (AIAPI_PAYMENTS_ENABLED=false) has no addresses and no
    # deposits. Otherwise a payments that does not answer is an error (503): a customer must
    # never read "no deposits" for money they sent while payments is down.

    async def deposit_addresses(self, account_id: str) -> list[payments_api.DepositAddress]:
        """Every enabled asset's address, a new one derived where the account has none yet."""
        return (await self.given_addresses(account_id, allocate=True)).addresses

    async def given_addresses(
        self, account_id: str, *, allocate: bool
    ) -> payments_api.AddressesReply:
        """With ``allocate`` false, only the addresses given before (and how many are missing)."""
        if not self._payments_enabled:
            return payments_api.AddressesReply(addresses=[])
        query = payments_api.AddressesQuery(account_id=account_id, allocate=allocate)
        return await self._call(
            "payments", payments_api.ADDRESSES_SUBJECT, query, payments_api.AddressesReply
        )

    async def deposits(self, account_id: str) -> list[payments_api.Deposit]:
        if not self._payments_enabled:
            return []
        query = payments_api.AccountQuery(account_id=account_id)
        reply = await self._call(
            "payments", payments_api.DEPOSITS_SUBJECT, query, payments_api.DepositsReply
        )
        return reply.deposits

    async def sweep_plan(self, query: payments_api.SweepPlanQuery) -> payments_api.SweepPlanReply:
        """Payments asks every node for balances: slower than the other calls."""
        return await self._call(
            "payments",
            payments_api.SWEEP_PLAN_SUBJECT,
            query,
            payments_api.SweepPlanReply,
            timeout_s=max(self._timeout_s, SWEEP_PLAN_TIMEOUT_S),
        )

    async def set_rate(self, command: payments_api.SetRateCommand) -> payments_api.SetRateReply:
        return await self._call(
            "payments", payments_api.SET_RATE_SUBJECT, command, payments_api.SetRateReply
        )


def _refusal(peer: str, error: ApiError) -> PeerRefused | PeerUnavailable:
    # A peer's 5xx is its own fault; the caller sees 503 with the peer's message.
    if error.status >= 500:
        return PeerUnavailable(f"{peer}: {error.message}")
    return PeerRefused(error.message, status=error.status)
