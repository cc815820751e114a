"""The operator's terms of sale: plans, meter and model prices, and an account's own terms.

Billing owns them as effective-dated data; these routes forward to it. A change starts at the
``effective_from`` given (never in the past: no admitted request is re-priced) or at once, and
reaches admission and every edge within a second (billing publishes the catalogue to KV).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiapi_shared.billing_api import (
    AddPriceCommand,
    CatalogueReply,
    PutAccountTermsCommand,
    PutMeterPriceCommand,
    PutPlanCommand,
)
from aiapi_shared.catalogue import Catalogue, MeterPoint, Plan, PricePoint
from aiapi_shared.events.base import Record
from aiapi_shared.money import Money
from pydantic import AwareDatetime, Field
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.context import Context
from aiapi_accounts.domain import Account
from aiapi_accounts.errors import InvalidRequest, PeerUnavailable
from aiapi_accounts.http import acting, answer, build, context, read_body
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.schemas import Answer, Body, PatchAccountBody


class PlanBody(Body):
    """A new version of the plan; a field left out keeps the value in force at
    ``effective_from`` (a new plan needs the price, both limits and the discount)."""

    effective_from: AwareDatetime | None = Field(
        default=None, description="when it starts (default: now; never in the past)"
    )
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    price_usd: Money | None = Field(default=None, description="one-time price when chosen")
    requests_per_minute: int | None = Field(default=None, gt=0, le=10_000_000)
    tokens_per_minute: int | None = Field(default=None, gt=0, le=10_000_000_000)
    discount_bps: int | None = Field(default=None, ge=0, le=10_000, description="7000 = 70% off")
    choosable: bool | None = Field(
        default=None, description="customers may choose it (a new plan: false unless given)"
    )


class PlanVersionAnswer(Plan):
    state: str = Field(description="past | current | scheduled")


class PlansAnswer(Answer):
    plans: list[Plan] = Field(description="every plan as it is now")
    versions: list[PlanVersionAnswer] = Field(description="every version, past and scheduled")


class MeterPriceBody(Body):
    """A unit price (server tools) or multipliers of the token price (tiers, regions, speeds)."""

    effective_from: AwareDatetime | None = Field(
        default=None, description="when it starts (default: now; never in the past)"
    )
    usd_per_unit: Money = Field(default=0)
    input_bps: int = Field(default=10_000, ge=0, le=1_000_000, description="10000 = 1x")
    output_bps: int = Field(default=10_000, ge=0, le=1_000_000, description="10000 = 1x")


class ModelPriceBody(Body):
    effective_from: AwareDatetime | None = Field(
        default=None, description="when it starts (default: now; never in the past)"
    )
    input_usd_per_mtok: Money
    output_usd_per_mtok: Money


class PricesAnswer(Answer):
    models: dict[str, list[PricePoint]]
    meters: dict[str, list[MeterPoint]]


def _plans(catalogue: Catalogue) -> PlansAnswer:
    now = datetime.now(UTC)
    current = catalogue.plans_at(now)

    def state(version: Plan) -> str:
        if version.effective_from > now:
            return "scheduled"
        return "current" if version in current else "past"

    return PlansAnswer(
        plans=list(current),
        versions=[PlanVersionAnswer(**v.model_dump(), state=state(v)) for v in catalogue.plans],
    )


def _prices(catalogue: Catalogue) -> PricesAnswer:
    return PricesAnswer(
        models={m.id: list(m.prices) for m in catalogue.models},
        meters={meter: list(points) for meter, points in catalogue.meters.items()},
    )


async def _catalogue(request: Request, command: Record | None = None) -> Catalogue:
    """The catalogue billing sells: now, or after ``command`` (an operator's change)."""
    acting(request)
    peers = context(request).peers
    reply = await (peers.catalogue() if command is None else peers.change_catalogue(command))
    return reply.catalogue


async def list_plans(request: Request) -> Response:
    return answer(_plans(await _catalogue(request)))


async def put_plan(request: Request) -> Response:
    acting(request)
    body = await read_body(request, PlanBody)
    command = build(PutPlanCommand, id=request.path_params["name"], **body.model_dump())
    return answer(_plans(await _catalogue(request, command)))


async def list_prices(request: Request) -> Response:
    return answer(_prices(await _catalogue(request)))


async def put_meter_price(request: Request) -> Response:
    acting(request)
    body = await read_body(request, MeterPriceBody)
    command = build(PutMeterPriceCommand, meter=request.path_params["meter"], **body.model_dump())
    return answer(_prices(await _catalogue(request, command)))


async def put_model_price(request: Request) -> Response:
    acting(request)
    body = await read_body(request, ModelPriceBody)
    fields, now = body.model_dump(), datetime.now(UTC)
    if body.effective_from is not None and body.effective_from < now:
        raise InvalidRequest("effective_from is in the past; a price starts now or later")
    fields["effective_from"] = body.effective_from or now
    command = build(AddPriceCommand, model=request.path_params["model"], **fields)
    return answer(_prices(await _catalogue(request, command)))


def terms_now(catalogue: Catalogue, account: Account) -> dict[str, int]:
    """The account's limits and discount now, as the answer's fields (none for a plan this copy
    of the catalogue has not heard of yet)."""
    try:
        terms = catalogue.terms(account.plan, account.id, datetime.now(UTC))
    except KeyError:
        return {}
    return {
        "requests_per_minute": terms.requests_per_minute,
        "tokens_per_minute": terms.tokens_per_minute,
        "discount_bps": terms.discount_bps,
    }


async def known_plan(ctx: Context, name: str) -> None:
    """400 unless ``name`` is a plan: this copy of the catalogue knows it, or billing does (a
    plan created a moment ago); a billing that cannot be asked knows of no more plans."""
    if ctx.catalogue.plan(name) is not None:
        return
    try:
        (await ctx.peers.catalogue()).catalogue.plan(name)
    except (KeyError, PeerUnavailable):
        raise InvalidRequest(f"plan: there is no {name!r} plan (GET /admin/v1/plans)") from None


async def change_account_terms(
    ctx: Context, account_id: str, body: PatchAccountBody
) -> CatalogueReply | None:
    """The PATCH's ``limits`` and ``discount_bps`` as a new version of the account's own terms
    (None when it names neither)."""
    set_discount = "discount_bps" in body.model_fields_set
    if body.limits is None and not set_discount:
        return None
    limits = body.limits
    command = build(
        PutAccountTermsCommand,
        account_id=account_id,
        effective_from=body.effective_from,
        set_limits=limits is not None,
        requests_per_minute=limits.requests_per_minute if limits else None,
        tokens_per_minute=limits.tokens_per_minute if limits else None,
        set_discount=set_discount,
        discount_bps=body.discount_bps,
    )
    return await ctx.peers.change_catalogue(command)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/admin/v1/plans", list_plans, "The plans now, and every version",
             "admin", "operator", None, PlansAnswer, errors=(503,)),
    Endpoint("PUT", "/admin/v1/plans/{name}", put_plan,
             "Add a plan or a new version of one, from a moment on (default: now)", "admin",
             "operator", PlanBody, PlansAnswer, errors=(400, 503)),
    Endpoint("GET", "/admin/v1/prices", list_prices, "Every model's and meter's prices",
             "admin", "operator", None, PricesAnswer, errors=(503,)),
    Endpoint("PUT", "/admin/v1/prices/meters/{meter}", put_meter_price,
             "Price a meter (a server tool, tier, region, speed) from a moment on", "admin",
             "operator", MeterPriceBody, PricesAnswer, errors=(400, 503)),
    Endpoint("PUT", "/admin/v1/prices/models/{model}", put_model_price,
             "Price a model from a moment on (default: now)", "admin", "operator",
             ModelPriceBody, PricesAnswer, errors=(400, 404, 503)),
)  # fmt: skip
