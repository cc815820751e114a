"""Admission: the one place in the request path that asks billing whether a request may go.

One NATS request (``ADMIT_SUBJECT``) per inference request, with a short timeout; billing checks
the account, counts the plan's limits across replicas and takes a hold. Its reply maps to the
contract's errors here and nowhere else. When billing cannot be reached the request may still go
on the offline allowance (:mod:`.allowance`); its usage event then says ``admission="allowance"``.
Before all that, a request is admitted with no round trip when its account has a lease here that
covers it (:mod:`.lease_client`); its usage event then says ``admission="lease"``. A request that
finds its account's lease on its way (the first of a burst, a renewal) waits for it, one round
trip, instead of making one of its own.

Hold extension for long streams (``EXTEND_SUBJECT``) is :meth:`Admitter.extend`, called by
:mod:`.extension` while a stream runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiapi_shared.admission import (
    ADMIT_SUBJECT,
    EXTEND_SUBJECT,
    HoldExtensionReply,
    HoldExtensionRequest,
)
from aiapi_shared.bus import Bus, BusError
from aiapi_shared.catalogue import ModelEntry
from aiapi_shared.errors import Problem
from aiapi_shared.pricing import BPS

from aiapi_edge import wire
from aiapi_edge.allowance import OfflineAllowance, estimated_cost
from aiapi_edge.errors import GatewayError
from aiapi_edge.lease_client import Leases, LeaseShare
from aiapi_edge.lease_math import Demand
from aiapi_edge.metrics import Metrics
from aiapi_edge.mirrors import BalanceMirror

log = logging.getLogger("aiapi.edge.admission")

OFFLINE_RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class AdmissionAsk:
    """What the edge asks billing (the contract's ``AdmissionRequest``, built without pydantic)."""

    request_id: str
    account_id: str
    key_id: str
    plan: str
    model: str
    estimated_input_tokens: int
    max_tokens: int
    started_at: datetime
    server_tools_nano: int = 0  # list price of the server tools' worst case
    # The factors (bps) the long-context premium and the requested options put on tokens.
    input_premium_bps: int = BPS
    output_premium_bps: int = BPS

    def to_json(self) -> bytes:
        return wire.admission_request(
            request_id=self.request_id,
            account_id=self.account_id,
            key_id=self.key_id,
            plan=self.plan,
            model=self.model,
            estimated_input_tokens=self.estimated_input_tokens,
            max_tokens=self.max_tokens,
            started_at=self.started_at,
            server_tools_nano=self.server_tools_nano,
            input_premium_bps=self.input_premium_bps,
            output_premium_bps=self.output_premium_bps,
        )


@dataclass(frozen=True, slots=True)
class Ticket:
    hold_id: str | None
    admission: Literal["billing", "allowance", "lease"]
    hold_amount: int = 0  # nano-USD held for the request (0 when unknown)
    lease: LeaseShare | None = None


def _cannot_admit() -> GatewayError:
    return GatewayError(
        Problem.UNAVAILABLE,
        "The gateway cannot admit requests safely right now.",
        retry_after=OFFLINE_RETRY_AFTER_S,
    )


def insufficient_balance(message: str = "") -> GatewayError:
    return GatewayError(
        Problem.INSUFFICIENT_BALANCE, message or "Your balance is too low for this request."
    )


def refusal(reply: dict[str, Any]) -> GatewayError:
    """The contract's error for a billing decision other than ``admit``."""
    decision, message = reply["decision"], reply["message"]
    if decision == "insufficient_balance":
        return insufficient_balance(message)
    if decision == "rate_limited":
        return GatewayError(
            Problem.RATE_LIMITED,
            message or "Your plan's rate limit is spent.",
            retry_after=min(reply["retry_after_s"] or 1, 60),
        )
    if decision == "account_inactive":
        return GatewayError(Problem.UNAUTHENTICATED, message or "account suspended")
    if decision == "unknown_model":
        return GatewayError(Problem.INVALID_REQUEST, message or "unknown model")
    return GatewayError(Problem.INTERNAL, "unexpected admission decision")


class Admitter:
    def __init__(
        self,
        bus: Bus,
        balances: BalanceMirror,
        allowance: OfflineAllowance,
        metrics: Metrics,
        *,
        timeout_s: float,
        leases: Leases | None = None,
    ) -> None:
        self.leases = leases
        self._bus = bus
        self._balances = balances
        self._allowance = allowance
        self._metrics = metrics
        self._timeout_s = timeout_s

    async def admit(self, request: AdmissionAsk, model: ModelEntry, demand: Demand) -> Ticket:
        """``demand`` is the request's worst case at its plan's price and the tokens billing
        would count for it: what a lease must cover."""
        if self.leases is not None:
            share = self.leases.admit(request.account_id, request.plan, demand)
            if share is None and self.leases.granting(request.account_id):
                share = await self.leases.admit_after_grant(
                    request.account_id, request.plan, demand
                )
            if share is not None:
                self._metrics.admitted("lease")
                return Ticket(None, "lease", demand.cost, share)
        snapshot = self._balances.get(request.account_id)
        if snapshot is not None and snapshot.available <= 0:
            self._metrics.admissions.labels("insufficient_balance_snapshot").inc()
            raise insufficient_balance()
        if not self._bus.is_connected:
            # NATS is away: do not make every request wait out the timeout to learn it.
            return self._offline(request, model)
        try:
            reply = await self._bus.call(
                ADMIT_SUBJECT, request.to_json(), wire.admission_reply, timeout_s=self._timeout_s
            )
        except BusError as exc:
            log.warning("billing unreachable; offline allowance", extra={"detail": str(exc)})
            return self._offline(request, model)
        decision = reply["decision"]
        self._metrics.admitted(decision)
        if decision != "admit":
            if decision == "account_inactive" and self.leases is not None:
                self.leases.forget(request.account_id)
            raise refusal(reply)
        return Ticket(reply["hold_id"], "billing", reply["hold_amount"])

    def _offline(self, request: AdmissionAsk, model: ModelEntry) -> Ticket:
        snapshot = self._balances.get(request.account_id)
        if snapshot is None:  # nothing known of what the account can pay: no allowance
            self._metrics.admissions.labels("offline_no_snapshot").inc()
            raise _cannot_admit()
        cost = request.server_tools_nano + estimated_cost(
            model,
            request.started_at,
            request.estimated_input_tokens,
            request.max_tokens,
            (request.input_premium_bps, request.output_premium_bps),
        )
        if snapshot.available < cost:
            self._metrics.admissions.labels("offline_insufficient_balance").inc()
            raise insufficient_balance()
        if not self._allowance.try_spend(
            request.account_id, request.request_id, cost, snapshot.available
        ):
            self._metrics.admissions.labels("offline_refused").inc()
            raise _cannot_admit()
        self._metrics.admissions.labels("offline_allowance").inc()
        return Ticket(None, "allowance")

    async def extend(
        self, hold_id: str, account_id: str, additional_output_tokens: int
    ) -> int | None:
        """Ask billing to grow a hold; the new held amount (nano-USD), or None when refused or
        billing cannot be reached."""
        request = HoldExtensionRequest(
            hold_id=hold_id,
            account_id=account_id,
            additional_output_tokens=additional_output_tokens,
        )
        try:
            reply = await self._bus.call(
                EXTEND_SUBJECT, request, HoldExtensionReply, timeout_s=self._timeout_s
            )
        except BusError:
            self._metrics.admissions.labels("extension_unreachable").inc()
            return None
        self._metrics.admissions.labels("extended" if reply.granted else "extension_refused").inc()
        return reply.hold_amount if reply.granted else None
