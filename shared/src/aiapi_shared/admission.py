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

from aiapi_shared.events.base import Record
from aiapi_shared.money import Money

ADMIT_SUBJECT = "rpc.billing.v1.admit"
EXTEND_SUBJECT = "rpc.billing.v1.extend"


class AdmissionRequest(Record):
    request_id: str
    account_id: str
    key_id: str
    plan: Literal["basic", "pro"]
    model: str = Field(description="the sold model id (aliases already resolved)")
    estimated_input_tokens: int = Field(ge=0)
    max_tokens: int = Field(ge=1)
    started_at: AwareDatetime


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
