"""Billing's request/reply API for Message Batches, used by the edge (docs/billing.md, "Batches").

Billing keeps one record per batch: whose it is, which upstream key created it (batches live in
that key's organisation, so only it can read them), the money held for it, the latest batch
object the upstream gave, and whether it is settled. The edge opens a batch (the hold) before it
creates it upstream, binds the upstream id after, and settles it once, with each request's usage,
when the upstream says it ended. A tracker on every edge claims due batches with a lease, so a
batch ends and is billed even when its customer never asks again, whichever replica is alive.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field

from aiapi_shared.catalogue import PlanId
from aiapi_shared.events.base import Record
from aiapi_shared.events.usage_v1 import Usage
from aiapi_shared.money import Money

BATCH_OPEN_SUBJECT = "rpc.billing.v1.batch.open"
BATCH_BIND_SUBJECT = "rpc.billing.v1.batch.bind"
BATCH_ABANDON_SUBJECT = "rpc.billing.v1.batch.abandon"
BATCH_GET_SUBJECT = "rpc.billing.v1.batch.get"
BATCH_LIST_SUBJECT = "rpc.billing.v1.batch.list"
BATCH_CLAIM_SUBJECT = "rpc.billing.v1.batch.claim"
BATCH_UPDATE_SUBJECT = "rpc.billing.v1.batch.update"
BATCH_SETTLE_SUBJECT = "rpc.billing.v1.batch.settle"
BATCH_DELETE_SUBJECT = "rpc.billing.v1.batch.delete"
BATCH_SUBJECTS: tuple[str, ...] = (
    BATCH_OPEN_SUBJECT,
    BATCH_BIND_SUBJECT,
    BATCH_ABANDON_SUBJECT,
    BATCH_GET_SUBJECT,
    BATCH_LIST_SUBJECT,
    BATCH_CLAIM_SUBJECT,
    BATCH_UPDATE_SUBJECT,
    BATCH_SETTLE_SUBJECT,
    BATCH_DELETE_SUBJECT,
)

BatchState = Literal["staging", "opening", "in_progress", "ended", "failed"]
ItemOutcome = Literal["succeeded", "errored", "canceled", "expired"]


class BatchItemAsk(Record):
    """One request of a batch, as admission sizes it (the worst case of its answer)."""

    custom_id: str = Field(min_length=1, max_length=64)
    requested_model: str
    model: str = Field(description="the sold model the request is served and priced as")
    estimated_input_tokens: int = Field(ge=0)
    max_tokens: int = Field(ge=1)
    server_tools_nano: Money = Field(default=0, ge=0)


class BatchOpenCommand(Record):
    """Hold the worst case of every request at the batch price, before the upstream sees it.

    A batch's requests come in chunks (a NATS message stays small whatever the batch's size):
    each chunk but the last is staged (``final`` false; answered ``staged``); the last one says
    how many requests the batch has in all and takes the hold for all of them, or refuses."""

    batch_id: str = Field(min_length=1, max_length=64)
    account_id: str
    key_id: str
    plan: PlanId
    started_at: AwareDatetime = Field(description="the batch is priced at the prices of then")
    items: list[BatchItemAsk] = Field(min_length=1)
    final: bool = True
    total_items: int = Field(default=0, ge=0, description="with the final chunk: the count")


class BatchOpenReply(Record):
    decision: Literal["admit", "staged", "insufficient_balance", "account_inactive", "unpriced"]
    hold_amount: Money = 0
    available: Money | None = None
    message: str = ""


class BatchBindCommand(Record):
    """The upstream accepted the batch: its id there and its first batch object."""

    batch_id: str
    upstream_id: str
    upstream_key: str = Field(description="which pool key created it (a digest, never the key)")
    snapshot: dict[str, Any]


class BatchAbandonCommand(Record):
    """The upstream refused the batch (or it cannot be created): release the hold."""

    batch_id: str
    reason: str = ""


class BatchQuery(Record):
    """One of the account's batches (another account's id answers 404, as an unknown one)."""

    account_id: str
    batch_id: str


class BatchDeleteCommand(BatchQuery):
    """The customer deleted it (upstream too): it is no longer listed or found."""


class BatchRecord(Record):
    batch_id: str
    account_id: str
    key_id: str
    plan: PlanId
    upstream_key: str
    upstream_id: str | None
    state: BatchState
    hold_amount: Money
    cost: Money = 0
    started_at: AwareDatetime
    snapshot: dict[str, Any] | None = None


class BatchListQuery(Record):
    """The account's batches, newest first, paged like the upstream's list."""

    account_id: str
    limit: int = Field(default=20, ge=1, le=1000)
    before_id: str | None = None
    after_id: str | None = None


class BatchListReply(Record):
    data: list[BatchRecord]
    has_more: bool = False


class BatchClaimCommand(Record):
    """The tracker of ``edge_id`` asks for due batches it can read (created by one of its keys);
    each comes with a lease of ``lease_s`` during which no other replica gets it."""

    edge_id: str
    upstream_keys: list[str]
    limit: int = Field(default=20, ge=1, le=500)
    lease_s: float = Field(default=60.0, gt=0)


class BatchUpdateCommand(Record):
    """The upstream's latest batch object (still processing): keep it, poll again later."""

    batch_id: str
    snapshot: dict[str, Any]
    next_poll_s: float = Field(ge=0)


class BatchItemResult(Record):
    """One line of the results: its outcome and, when it succeeded, the usage the upstream
    reported for it (the only billed outcome)."""

    custom_id: str
    outcome: ItemOutcome
    usage: Usage | None = None


class BatchSettleCommand(Record):
    """The batch ended upstream: bill every succeeded request once. Results come in chunks
    (a message stays small whatever the batch's size); the ``final`` one releases the hold and
    marks the batch settled."""

    batch_id: str
    snapshot: dict[str, Any]
    results: list[BatchItemResult]
    final: bool = True


class BatchSettleReply(Record):
    billed_items: int
    cost: Money
    already_settled: bool = False
