"""The base of every event: frozen, versioned, unknown fields ignored, an id and a time on each.

Subjects are ``<context>.v<major>.<entity>.<verb>``. A consumer built against v1 keeps working
when a producer adds fields (they are ignored); a breaking change is a new module, ``..._v2``,
published alongside v1 until every consumer has moved.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def new_event_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """A frozen contract document: extra fields from newer producers are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Record):
    """An event published on JetStream. ``event_id`` is the ``Nats-Msg-Id`` and the idempotency key."""

    subject: ClassVar[str]

    event_id: str = Field(default_factory=new_event_id, min_length=1, max_length=128)
    occurred_at: AwareDatetime = Field(default_factory=utc_now)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
