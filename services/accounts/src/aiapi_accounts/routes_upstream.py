"""The upstream pool at runtime, on the operator API (CONTRACT.md §3, ``/admin/v1/upstream-keys``).

Answers never hold a key, only its hint (the last four characters). What the routes do is
:mod:`aiapi_accounts.upstream_pool`'s; the bodies and answers are here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from aiapi_shared.events.records_v1 import UpstreamKeySource
from aiapi_shared.money import Money
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request
from starlette.responses import Response

from aiapi_accounts.http import acting, answer, no_content, read_body
from aiapi_accounts.openapi import Endpoint
from aiapi_accounts.upstream_pool import KeyChange, UpstreamPool
from aiapi_accounts.upstream_view import PoolEntry

_ORGANISATION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63})?$")
_KEY = re.compile(r"^[\x21-\x7e]{8,512}$")  # printable, no space or comma: one credential


def _base_url(value: str | None) -> str | None:
    if value and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
        raise ValueError("base_url must be an http(s) URL such as https://api.anthropic.com")
    return value.rstrip("/") if value else value


def _organization(value: str | None) -> str | None:
    if value is not None and not _ORGANISATION.match(value):
        raise ValueError("organization: letters, digits, '.', '_', '-', at most 64")
    return value


def _key(value: SecretStr | None) -> SecretStr | None:
    secret = value.get_secret_value() if value is not None else None
    if secret is not None and (not _KEY.match(secret) or "," in secret):
        raise ValueError("key: 8 to 512 printable characters, no spaces or commas")
    return value


ModelId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[SecretStr | None, AfterValidator(_key)] = None
    base_url: Annotated[str | None, AfterValidator(_base_url)] = None
    organization: Annotated[str | None, AfterValidator(_organization)] = None
    weight: int | None = Field(default=None, ge=1, le=1000)
    models: list[ModelId] | None = Field(default=None, max_length=100)
    enabled: bool | None = None

    def change(self) -> KeyChange:
        return KeyChange(
            key=self.key.get_secret_value() if self.key is not None else None,
            base_url=self.base_url,
            organization=self.organization,
            weight=self.weight,
            models=tuple(dict.fromkeys(self.models)) if self.models is not None else None,
            enabled=self.enabled,
        )


class UpstreamKeyCreateBody(_Body):
    """``key`` is required; the others default to the edges' base URL, no organisation, weight 1,
    every model, enabled."""


class UpstreamKeyPatchBody(_Body):
    """Any of the fields; ``key`` rotates an operator's key (sealed like a new one)."""


class EdgeHealthAnswer(BaseModel):
    edge_id: str
    health: str


class RecentErrorAnswer(BaseModel):
    edge_id: str
    at: datetime
    outcome: str
    detail: str


class UpstreamTokensAnswer(BaseModel):
    input: int
    output: int
    cache_read: int
    cache_creation: int


class UpstreamKeyAnswer(BaseModel):
    id: str
    hint: str
    source: UpstreamKeySource
    base_url: str | None
    organization: str
    weight: int
    models: list[str]
    enabled: bool
    created_at: datetime | None
    updated_at: datetime | None
    health: str = Field(description="the worst any edge reports; unknown while none reports it")
    edges: list[EdgeHealthAnswer]
    requests: int = Field(description="attempts sent through the key, summed over live edges")
    errors: dict[str, int]
    tokens: UpstreamTokensAnswer
    spend_usd: Money = Field(description="its usage at the upstream's list price")
    recent_errors: list[RecentErrorAnswer]

    @classmethod
    def of(cls, entry: PoolEntry) -> UpstreamKeyAnswer:
        return cls(
            id=entry.id,
            hint=entry.hint,
            source=entry.source,
            base_url=entry.base_url,
            organization=entry.organization,
            weight=entry.weight,
            models=list(entry.models),
            enabled=entry.enabled,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
            health=entry.health,
            edges=[EdgeHealthAnswer(edge_id=e.edge_id, health=e.health) for e in entry.edges],
            requests=entry.requests,
            errors=entry.errors,
            tokens=UpstreamTokensAnswer(**entry.tokens),
            spend_usd=entry.list_cost_nano,
            recent_errors=[
                RecentErrorAnswer(edge_id=e.edge_id, at=e.at, outcome=e.outcome, detail=e.detail)
                for e in entry.recent_errors
            ],
        )


class UpstreamKeyList(BaseModel):
    data: list[UpstreamKeyAnswer]


class UpstreamTestAnswer(BaseModel):
    id: str
    ok: bool
    outcome: Literal[
        "ok",
        "rate_limited",
        "overloaded",
        "server_error",
        "connection_error",
        "key_rejected",
        "client_error",
    ]
    status: int | None
    error_type: str | None
    model: str | None
    latency_ms: int | None
    edge_id: str


def _pool(request: Request) -> UpstreamPool:
    pool: UpstreamPool | None = request.app.state.service.upstream_pool
    assert pool is not None, "Service.start() first"
    return pool


async def list_keys(request: Request) -> Response:
    acting(request)
    entries = await _pool(request).entries()
    return answer(UpstreamKeyList(data=[UpstreamKeyAnswer.of(e) for e in entries]))


async def add_key(request: Request) -> Response:
    acting(request)
    body = await read_body(request, UpstreamKeyCreateBody)
    entry = await _pool(request).add(body.change())
    return answer(UpstreamKeyAnswer.of(entry), 201)


async def patch_key(request: Request) -> Response:
    acting(request)
    body = await read_body(request, UpstreamKeyPatchBody)
    entry = await _pool(request).change(request.path_params["id"], body.change())
    return answer(UpstreamKeyAnswer.of(entry))


async def remove_key(request: Request) -> Response:
    acting(request)
    await _pool(request).remove(request.path_params["id"])
    return no_content()


async def test_key(request: Request) -> Response:
    acting(request)
    reply = await _pool(request).test(request.path_params["id"])
    return answer(
        UpstreamTestAnswer(
            id=reply.key_id,
            ok=reply.ok,
            outcome=reply.outcome,
            status=reply.status,
            error_type=reply.error_type,
            model=reply.model,
            latency_ms=reply.latency_ms,
            edge_id=reply.edge_id,
        )
    )


_U = "/admin/v1/upstream-keys"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _U, list_keys,
             "The upstream pool: every key (hint only), its health per edge, errors and spend",
             "admin", "operator", None, UpstreamKeyList),
    Endpoint("POST", _U, add_key,
             "Add an upstream key (stored sealed to the edges' key; every edge uses it within a "
             "second)", "admin", "operator", UpstreamKeyCreateBody, UpstreamKeyAnswer,
             status=201, errors=(400, 409, 503)),
    Endpoint("PATCH", _U + "/{id}", patch_key,
             "Change, disable or enable an upstream key (also a key of AIAPI_UPSTREAM_API_KEYS)",
             "admin", "operator", UpstreamKeyPatchBody, UpstreamKeyAnswer,
             errors=(400, 404, 503)),
    Endpoint("DELETE", _U + "/{id}", remove_key, "Remove an upstream key from the pool",
             "admin", "operator", status=204, errors=(404,)),
    Endpoint("POST", _U + "/{id}/test", test_key,
             "Send a minimal request through the key (from an edge) and say what came back",
             "admin", "operator", None, UpstreamTestAnswer, errors=(404, 503)),
)  # fmt: skip
