"""The parts of an inference request every route uses: authenticate, resolve the model, admit,
watch the hold while streaming, spool the usage event.

The request skeleton that calls them in order is :mod:`.inference`; the routes
(:mod:`.anthropic_route`, :mod:`.openai_route`) differ only in how they read the request and
write the answer, so an OpenAI request is admitted, metered and billed exactly like the same
request on the Anthropic route (only ``route`` differs in its usage event).
"""

from __future__ import annotations

import logging
import random
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiapi_shared.catalogue import Catalogue, ModelEntry, PricePoint, Terms
from aiapi_shared.errors import Problem
from aiapi_shared.events.records_v1 import KeyRecord
from aiapi_shared.events.usage_v1 import Outcome, Route, UsageRecorded
from aiapi_shared.pricing import BPS, OPTION_METERS, discounted, premium_bps

from aiapi_edge import priced_options, wire
from aiapi_edge.admission import AdmissionAsk, Admitter, Ticket
from aiapi_edge.allowance import estimate_input_tokens
from aiapi_edge.asgi import Scope, header
from aiapi_edge.beta_policy import BetaPolicy, refusal_message, requested_betas
from aiapi_edge.body import parse_json_object
from aiapi_edge.budget import HoldBudget, input_of, worst_case
from aiapi_edge.errors import GatewayError, authentication_failed, invalid_request
from aiapi_edge.estimate import (
    estimate_input,
    hold_premium,
    server_tool_prices,
    server_tools_worst,
)
from aiapi_edge.extension import HoldGuard
from aiapi_edge.lease_math import UNCOVERABLE, Demand
from aiapi_edge.metering import UsageMeter
from aiapi_edge.mirrors import BalanceMirror, KeyMirror, key_digest
from aiapi_edge.peek import mentions
from aiapi_edge.spool import Spool, SpoolFull

log = logging.getLogger("aiapi.edge")

KEY_PREFIX = "sk-cc-"
_MAX_KEY_LENGTH = 128


# Request ids must be unique, not secret: a PRNG seeded from the OS once per process gives 96
# random bits per id without a getrandom() system call on every request.
_ids = random.Random(secrets.token_bytes(32))


def new_request_id() -> str:
    return f"req_{_ids.getrandbits(96):024x}"


def presented_key(scope: Scope) -> str | None:
    """``x-api-key``, else an ``Authorization: Bearer`` token."""
    value = header(scope, b"x-api-key")
    if value is None:
        authorization = header(scope, b"authorization")
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return None
        value = authorization[7:].strip()
    return value.decode("latin-1").strip() or None


def well_shaped(key: str) -> bool:
    body = key[len(KEY_PREFIX) :]
    return key.startswith(KEY_PREFIX) and 0 < len(key) <= _MAX_KEY_LENGTH and body.isalnum()


@dataclass(slots=True)
class Exchange:
    """One admitted inference request, from admission to its usage event."""

    request_id: str
    route: Route
    caller: KeyRecord
    requested_model: str
    model: ModelEntry
    started_at: datetime
    ticket: Ticket
    meter: UsageMeter = field(default_factory=UsageMeter)
    status_code: int = 200
    outcome: Outcome = "ok"
    client_disconnected: bool = False
    max_tokens: int = 0
    # The factors (bps) the hold was taken at on input and output tokens (long context, options).
    premium: tuple[int, int] = (BPS, BPS)
    # The model's price and the account's terms in force at ``started_at``, looked up once at
    # admission and used by everything that prices the request after it (the demand, the hold
    # guard, the cost headers, the pool's served cost). None: no price / a plan not heard of.
    price: PricePoint | None = None
    terms: Terms | None = None


def _lease_fields(ticket: Ticket) -> dict[str, Any]:
    share = ticket.lease
    if share is None:
        return {}
    return {
        "lease_id": share.lease_id,
        "lease_reserved": share.reserved,
        "lease_tokens": share.tokens,
    }


class Gateway:
    def __init__(
        self,
        *,
        keys: KeyMirror,
        catalogue: Catalogue,
        admitter: Admitter,
        spool: Spool,
        edge_id: str,
        betas: BetaPolicy | None = None,
        unpriced_allowed: frozenset[str] = frozenset(),
        balances: BalanceMirror | None = None,
    ) -> None:
        self.keys = keys
        # Billing's balance snapshots, for the balance-left header (:mod:`.quote`).
        self.balances = balances or BalanceMirror()
        self.catalogue = catalogue
        self.admitter = admitter
        self.spool = spool
        self.edge_id = edge_id
        self.betas = betas or BetaPolicy()
        self.unpriced_allowed = unpriced_allowed
        # Admitted requests whose usage event is not recorded yet: with none but the one being
        # recorded, its spool append has nothing to wait for (Spool.append's ``alone``).
        self._unrecorded = 0

    def authenticate(self, scope: Scope) -> KeyRecord:
        key = presented_key(scope)
        if key is None:
            raise authentication_failed("x-api-key header is required")
        if not well_shaped(key):
            raise authentication_failed()
        record = self.keys.lookup(key_digest(key))
        if record is None:
            raise authentication_failed()
        if record.key_status != "active":
            raise authentication_failed("This API key has been revoked.")
        if record.account_status != "active":
            raise authentication_failed("This account is suspended.")
        return record

    def check_betas(self, scope: Scope) -> None:
        """Refuse a request naming an ``anthropic-beta`` value the operator does not pass
        (:mod:`.beta_policy`), before admission and before anything goes upstream."""
        refused = self.betas.refused(scope["headers"])
        if refused is not None:
            raise invalid_request(refusal_message(refused))

    def check_priced(
        self,
        scope: Scope,
        raw: bytes,
        body: Mapping[str, Any] | None = None,
        *,
        parsed: Mapping[str, Any] | None = None,
    ) -> None:
        """Refuse a request asking for a tool, beta or option the catalogue cannot price
        (:mod:`.priced_options`), before admission and before anything goes upstream. Without
        ``body``, ``raw`` is checked only when it names one (``parsed``: ``raw`` already parsed)."""
        if body is None:
            if not mentions(raw, priced_options.MARKERS):
                return
            body = parse_json_object(raw) if parsed is None else parsed
        meter = priced_options.unpriced(
            body,
            requested_betas(scope["headers"]),
            self.catalogue,
            datetime.now(UTC),
            self.unpriced_allowed,
        )
        if meter is not None:
            raise invalid_request(priced_options.refusal(meter))

    def resolve_model(self, requested: str) -> ModelEntry:
        entry = self.catalogue.model(requested)
        if entry is None:
            on_sale = ", ".join(m.id for m in self.catalogue.models)
            raise invalid_request(f"model: {requested!r} is not available; use one of {on_sale}")
        return entry

    async def admit(
        self,
        *,
        request_id: str,
        route: Route,
        caller: KeyRecord,
        requested_model: str,
        model: ModelEntry,
        body_size: int,
        max_tokens: int,
        body: Mapping[str, Any] | None = None,
    ) -> Exchange:
        """Admit a request for ``model`` (the route resolved ``requested_model`` to it);
        ``body`` (when the route parsed it, or it holds images or documents) lets the input be
        estimated per content block (:mod:`.estimate`)."""
        if not self.spool.has_room:
            raise GatewayError(Problem.UNAVAILABLE, "Usage cannot be recorded now.", retry_after=5)
        started_at = datetime.now(UTC)
        estimated_input = (
            estimate_input_tokens(body_size)
            if body is None
            else estimate_input(body, body_size, model.context_window)
        )
        input_premium, output_premium = hold_premium(
            body,
            self.catalogue,
            started_at,
            context_window=model.context_window,
            input_tokens=estimated_input,
        )
        request = AdmissionAsk(
            request_id=request_id,
            account_id=caller.account_id,
            key_id=caller.key_id,
            plan=caller.plan,
            model=model.id,
            estimated_input_tokens=estimated_input,
            max_tokens=max_tokens,
            started_at=started_at,
            server_tools_nano=(
                0 if body is None else server_tools_worst(body, self.catalogue, started_at)
            ),
            input_premium_bps=input_premium,
            output_premium_bps=output_premium,
        )
        price = model.price_at(started_at)
        terms = self._terms(caller, started_at)
        ticket = await self.admitter.admit(request, model, self._demand(request, price, terms))
        exchange = Exchange(request_id, route, caller, requested_model, model, started_at, ticket)
        exchange.max_tokens = max_tokens
        exchange.premium = (input_premium, output_premium)
        exchange.price, exchange.terms = price, terms
        self._unrecorded += 1  # record() is owed now, once (Inference.serve)
        return exchange

    def _terms(self, caller: KeyRecord, moment: datetime) -> Terms | None:
        try:
            return self.catalogue.terms(caller.plan, caller.account_id, moment)
        except KeyError:  # a plan this edge has not heard of yet
            return None

    def _demand(
        self, request: AdmissionAsk, price: PricePoint | None, terms: Terms | None
    ) -> Demand:
        """What billing would hold and count for this request (a lease must cover the same);
        a model without a price now gets a demand no lease covers: billing decides."""
        if terms is None:  # a plan this edge has not heard of yet: billing decides
            return Demand(cost=UNCOVERABLE, tokens=0)
        basis = (terms.requests_per_minute, terms.tokens_per_minute, terms.discount_bps)
        tokens = min(request.estimated_input_tokens + request.max_tokens, terms.tokens_per_minute)
        if price is None:
            return Demand(cost=UNCOVERABLE, tokens=tokens, terms=basis)
        cost = worst_case(
            price,
            terms.discount_bps,
            self.catalogue.cache_multipliers_bps,
            input_tokens=request.estimated_input_tokens,
            max_tokens=request.max_tokens,
            input_premium_bps=request.input_premium_bps,
            output_premium_bps=request.output_premium_bps,
        ) + discounted(request.server_tools_nano, terms.discount_bps)
        return Demand(cost=cost, tokens=tokens, terms=basis)

    def hold_guard(self, exchange: Exchange) -> HoldGuard | None:
        """The hold extension watch of a stream with a known hold (billing's, or its share of a
        lease); the offline allowance holds nothing to extend."""
        ticket = exchange.ticket
        if ticket.hold_amount <= 0 or (ticket.hold_id is None and ticket.lease is None):
            return None
        price = exchange.price
        if price is None:
            return None
        catalogue, started_at = self.catalogue, exchange.started_at
        window = exchange.model.context_window
        caller, terms = exchange.caller, exchange.terms

        def reported_premium(meters: Mapping[str, int | str]) -> tuple[int, int]:
            return premium_bps(
                catalogue,
                started_at,
                context_window=window,
                input_tokens=input_of(meters),
                options={o: v for o in OPTION_METERS if isinstance(v := meters.get(o), str)},
            )

        budget = HoldBudget(
            held=ticket.hold_amount,
            price=price,
            discount_bps=(
                terms or catalogue.terms(caller.plan, caller.account_id, started_at)
            ).discount_bps,
            multipliers=catalogue.cache_multipliers_bps,
            max_tokens=exchange.max_tokens,
            premium=exchange.premium,
            reported_premium=reported_premium,
            tool_prices=server_tool_prices(catalogue, started_at),
        )
        account_id = exchange.caller.account_id
        share, hold_id = ticket.lease, ticket.hold_id
        if share is not None:
            leases = self.admitter.leases
            assert leases is not None  # a lease ticket comes from them

            async def top_up(tokens: int) -> int | None:
                granted = await leases.top_up(share, budget.chunk_cost(tokens))
                return share.reserved if granted else None

            return HoldGuard(top_up, budget, exchange.meter, hold_id=share.lease_id)
        assert hold_id is not None

        async def extend(tokens: int) -> int | None:
            return await self.admitter.extend(hold_id, account_id, tokens)

        return HoldGuard(extend, budget, exchange.meter, hold_id=hold_id)

    async def record(self, exchange: Exchange) -> None:
        """Spool the usage event (durably); it is published by the relay. Called once per
        admitted request, by :meth:`.inference.Inference.serve`."""
        self._unrecorded -= 1
        payload = wire.usage_event(
            request_id=exchange.request_id,
            account_id=exchange.caller.account_id,
            key_id=exchange.caller.key_id,
            model=exchange.model.id,
            requested_model=exchange.requested_model,
            plan=exchange.caller.plan,
            route=exchange.route,
            started_at=exchange.started_at,
            finished_at=datetime.now(UTC),
            outcome=exchange.outcome,
            status_code=exchange.status_code,
            client_disconnected=exchange.client_disconnected,
            usage=exchange.meter.meters(),
            hold_id=exchange.ticket.hold_id,
            admission=exchange.ticket.admission,
            edge_id=self.edge_id,
            **_lease_fields(exchange.ticket),
        )
        try:
            await self.spool.append(
                exchange.request_id,
                UsageRecorded.subject,
                payload,
                alone=self._unrecorded == 0,
            )
        except (SpoolFull, OSError, sqlite3.Error) as exc:
            # Logged with everything billing would need; the customer's answer is not withheld.
            log.error(
                "usage event not spooled",
                extra={"event": payload.decode(), "detail": type(exc).__name__},
            )
