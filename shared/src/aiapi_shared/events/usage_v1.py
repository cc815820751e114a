"""Usage events, published by the edge: one per inference request, never lost."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from aiapi_shared.catalogue import PlanId
from aiapi_shared.events.base import Event, Record
from aiapi_shared.money import Money


class Usage(Record):
    """The meters as the upstream reported them: the five token counts, thinking tokens (already in
    output), server-tool requests and the priced options (tier, region, speed)."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int = Field(default=0, ge=0)
    cache_creation_5m_input_tokens: int = Field(default=0, ge=0)
    cache_creation_1h_input_tokens: int = Field(default=0, ge=0)
    thinking_tokens: int = Field(default=0, ge=0, description="part of output_tokens")
    web_search_requests: int = Field(default=0, ge=0, description="server_tool_use")
    web_fetch_requests: int = Field(default=0, ge=0, description="server_tool_use")
    service_tier: str = Field(default="", description="as reported; empty: not reported")
    inference_geo: str = Field(default="", description="as reported; empty: not reported")
    speed: str = Field(default="", description="as reported; empty: not reported")


Outcome = Literal["ok", "upstream_error", "client_disconnected", "stream_error", "gateway_error"]
Route = Literal["anthropic", "openai", "responses", "batch"]
Admission = Literal["billing", "allowance", "lease"]


class UsageRecorded(Event):
    """A request's usage, as metered by the edge. ``event_id`` equals ``request_id``."""

    subject: ClassVar[str] = "usage.v1.request.recorded"

    request_id: str
    account_id: str
    key_id: str
    model: str = Field(description="the sold model the request was served and priced as")
    requested_model: str
    plan: PlanId = Field(description="the plan in force when the request started")
    route: Route
    started_at: AwareDatetime
    finished_at: AwareDatetime
    outcome: Outcome
    status_code: int
    client_disconnected: bool = False
    usage: Usage
    hold_id: str | None = None
    admission: Admission = "billing"
    lease_id: str | None = Field(default=None, description="set when admitted under a lease")
    lease_reserved: Money = Field(
        default=0, ge=0, description="the share of the lease this request reserved (extensions in)"
    )
    lease_tokens: int = Field(default=0, ge=0, description="tokens the lease counted for it")
    edge_id: str = ""
