"""The admission contract: one NATS request/reply from the edge to billing per inference request.

The edge asks before it sends anything upstream; billing checks the account, counts the plan's
requests/min and tokens/min across all edge replicas, and takes a hold for the worst case in one
conditional update. Long streams extend their hold in chunks. Subjects are request/reply only
(core NATS, queue group ``billing``), not JetStream: an unanswered request is simply retried or,
after the timeout, handled by the edge's offline allowance.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from aiapi_shared.catalogue import PlanId
from aiapi_shared.events.base import Record
from aiapi_shared.money import Money

ADMIT_SUBJECT = "rpc.billing.v1.admit"
EXTEND_SUBJECT = "rpc.billing.v1.extend"


class AdmissionRequest(Record):
    request_id: str
    account_id: str
    key_id: str
    plan: PlanId
    model: str = Field(description="the sold model id (aliases already resolved)")
    estimated_input_tokens: int = Field(ge=0)
    max_tokens: int = Field(ge=1)
    started_at: AwareDatetime
    server_tools_nano: Money = Field(
        default=0,
        ge=0,
        description="the worst case of the server tools the request allows (max_uses x the"
        " tool's price), at list price: held after the plan's discount",
    )
    input_premium_bps: int = Field(
        default=10_000,
        ge=10_000,
        description="the factor (basis points) the long-context premium and the priced options"
        " the request asks for (inference_geo, speed, service_tier) put on input tokens",
    )
    output_premium_bps: int = Field(
        default=10_000, ge=10_000, description="the same factor on output tokens"
    )


Decision = Literal[
    "admit", "insufficient_balance", "rate_limited", "account_inactive", "unknown_model"
]


class AdmissionReply(Record):
    decision: Decision
    hold_id: str | None = None
    hold_amount: Money = 0
    retry_after_s: int | None = Field(default=None, ge=1, le=60)
    message: str = ""
    available: Money | None = None


class HoldExtensionRequest(Record):
    hold_id: str
    account_id: str
    additional_output_tokens: int = Field(ge=1)


class HoldExtensionReply(Record):
    granted: bool
    hold_amount: Money = 0
    message: str = ""


# -- Leases: admission without a round trip per request -------------------------------------------
#
# Billing grants an edge replica a lease for one account: a slice of the available balance (held in
# billing's ledger like any hold, so it counts in ``holds`` and lowers ``available``) and a slice of
# the plan's requests/min and tokens/min (taken from the account's GCRA state at grant, so replicas
# partition the limits). For ``admit_for_s`` seconds the edge admits that account's requests
# against the lease with no round trip: each request reserves its worst case from the lease, as a
# per-request hold would. The usage event names the lease and the request's reserved share, and
# settlement debits the cost and releases that share. When the edge stops admitting with a lease
# (it ran low, its window ended, or the edge stops) it closes it, reporting what it admitted;
# billing releases what no request reserved at once and the rest as the requests settle. A lease
# never closed (an edge that died) expires ``hold_ttl`` after its window, like any hold; a late
# usage event still bills in full. A request the lease cannot cover falls back to ``ADMIT_SUBJECT``.

LEASE_GRANT_SUBJECT = "rpc.billing.v1.lease.grant"
LEASE_TOP_UP_SUBJECT = "rpc.billing.v1.lease.top_up"
LEASE_CLOSE_SUBJECT = "rpc.billing.v1.lease.close"


class LeaseGrantRequest(Record):
    """Asked by an edge in the background; idempotent by ``lease_id`` (a retry gets the same
    grant)."""

    lease_id: str = Field(description="chosen by the edge, unique: 'lease_' + 32 hex")
    account_id: str
    plan: PlanId
    edge_id: str
    amount: Money = Field(gt=0, description="the money the edge would like to admit against")
    min_amount: Money = Field(gt=0, description="a grant below this is useless: decline instead")
    requests: int = Field(ge=1, description="requests it would like to admit")
    tokens: int = Field(ge=1, description="tokens (estimated, as admission counts them) likewise")
    min_tokens: int = Field(ge=1, description="a token grant below this is useless")
    # A renewal: grow this (open) lease in place and extend its window, instead of closing it
    # and granting another; its report is what the edge has admitted with it so far. Its reply's
    # amount, requests and tokens are what was added (the edge adds them to what it has).
    renew: bool = False
    admitted_requests: int = Field(default=0, ge=0)
    reserved_amount: Money = Field(default=0, ge=0)
    reserved_tokens: int = Field(default=0, ge=0)


LeaseDecision = Literal["granted", "declined", "account_inactive"]


class LeaseGrantReply(Record):
    decision: LeaseDecision
    amount: Money = 0
    requests: int = 0
    tokens: int = 0
    admit_for_s: float = Field(default=0.0, ge=0, description="admit with it for this long")
    message: str = ""


class LeaseTopUpRequest(Record):
    """More money on an existing lease, for a long stream admitted under it (hold extension)."""

    lease_id: str
    account_id: str
    amount: Money = Field(gt=0)


class LeaseTopUpReply(Record):
    granted: bool
    amount: Money = 0


class LeaseCloseRequest(Record):
    """The edge admits nothing more with this lease. Idempotent: a second close changes nothing."""

    lease_id: str
    account_id: str
    admitted_requests: int = Field(ge=0)
    reserved_amount: Money = Field(
        ge=0, description="sum of the admitted requests' reserved shares, top-ups included"
    )
    reserved_tokens: int = Field(ge=0, description="sum of the tokens admission counted")


class LeaseCloseReply(Record):
    closed: bool
    released: Money = 0
