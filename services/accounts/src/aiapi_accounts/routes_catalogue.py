"""The operator's catalogue routes: what is sold, added and repriced without a deploy.

Billing owns the catalogue (models, aliases, the price table); these routes forward to it and
answer with the catalogue as sold afterwards. The edge picks a change up from KV within about a
second, on every replica.
"""

from __future__ import annotations

from aiapi_shared.billing_api import (
    AddPriceCommand,
    CatalogueReply,
    ModelSpec,
    PutAliasCommand,
    PutModelCommand,
)
from aiapi_shared.money import Money
from pydantic import AwareDatetime, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.http import acting, answer, build, context, read_body
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.schemas import Body


class ModelBody(ModelSpec):
    """The operator's description of a model; unknown fields are refused (a typo is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AliasBody(Body):
    target: str = Field(min_length=1, max_length=100)


class PriceBody(Body):
    effective_from: AwareDatetime
    input_usd_per_mtok: Money
    output_usd_per_mtok: Money


async def get_catalogue(request: Request) -> Response:
    acting(request)
    return answer(await context(request).peers.catalogue())


async def put_model(request: Request) -> Response:
    acting(request)
    body = await read_body(request, ModelBody)
    command = build(PutModelCommand, id=request.path_params["model_id"], **body.model_dump())
    return answer(await context(request).peers.change_catalogue(command))


async def add_price(request: Request) -> Response:
    acting(request)
    body = await read_body(request, PriceBody)
    command = build(AddPriceCommand, model=request.path_params["model_id"], **body.model_dump())
    return answer(await context(request).peers.change_catalogue(command), 201)


async def put_alias(request: Request) -> Response:
    acting(request)
    body = await read_body(request, AliasBody)
    command = build(PutAliasCommand, alias=request.path_params["alias"], target=body.target)
    return answer(await context(request).peers.change_catalogue(command))


async def delete_alias(request: Request) -> Response:
    acting(request)
    command = build(PutAliasCommand, alias=request.path_params["alias"], target=None)
    return answer(await context(request).peers.change_catalogue(command))


_C = "/admin/v1/catalogue"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _C, get_catalogue, "The catalogue as sold now", "admin", "operator",
             None, CatalogueReply, errors=(503,)),
    Endpoint("PUT", _C + "/models/{model_id}", put_model,
             "Add a model (with its first price) or change one", "admin", "operator",
             ModelBody, CatalogueReply, errors=(400, 503)),
    Endpoint("POST", _C + "/models/{model_id}/prices", add_price,
             "Add a price from a moment on (requests are priced by their start)", "admin",
             "operator", PriceBody, CatalogueReply, status=201, errors=(400, 404, 503)),
    Endpoint("PUT", _C + "/aliases/{alias}", put_alias,
             "Serve and price a requested id as a sold model", "admin", "operator",
             AliasBody, CatalogueReply, errors=(400, 404, 503)),
    Endpoint("DELETE", _C + "/aliases/{alias}", delete_alias, "Remove an alias", "admin",
             "operator", None, CatalogueReply, errors=(503,)),
)  # fmt: skip
