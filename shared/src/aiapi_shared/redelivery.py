"""What a consumer does with a message its handler did not take (pure: no I/O).

* A handler that fails with anything but :class:`~aiapi_shared.errors.RetryableError` (which
  names its own delay) or :class:`~aiapi_shared.errors.PoisonMessage` has a bug or met a state
  it does not expect: the message is redelivered after a delay that doubles with each delivery,
  capped, so a deposit is never dropped because of a bug and a fixed deploy picks it up.
* Only a message that cannot be decoded is poison. It is copied to the dead-letter stream
  (``DEADLETTER``, subjects ``deadletter.<consumer>``) with headers naming where it came from and
  why it was set aside, and only then terminated; ``python -m aiapi_shared.deadletter`` lists,
  replays and drops what is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

FIRST_DELAY_S = 2.0
MAX_DELAY_S = 60.0

DEADLETTER_STREAM = "DEADLETTER"
DEADLETTER_PREFIX = "deadletter."
# A dead letter is for people to read: it stays until replayed or dropped (a year at most).
DEADLETTER_MAX_AGE_S = 365 * 24 * 3600.0

# Headers of a dead letter (the payload is the original message's, unchanged).
SUBJECT_HEADER = "Aiapi-Subject"
CONSUMER_HEADER = "Aiapi-Consumer"
REASON_HEADER = "Aiapi-Reason"
STREAM_HEADER = "Aiapi-Stream"
SEQUENCE_HEADER = "Aiapi-Stream-Sequence"
MSG_ID_HEADER = "Aiapi-Msg-Id"
_REASON_LIMIT = 500


def backoff_s(deliveries: int) -> float:
    """The delay before the next delivery of a message delivered ``deliveries`` times so far."""
    exponent = min(max(deliveries, 1) - 1, 16)  # 2**16 * 2 s is far beyond the cap already
    return min(MAX_DELAY_S, FIRST_DELAY_S * (1 << exponent))


def deadletter_subject(consumer: str) -> str:
    return f"{DEADLETTER_PREFIX}{consumer}"


@dataclass(frozen=True)
class Origin:
    """Where a message came from: its stream and sequence there, subject, and message id."""

    stream: str
    sequence: int
    subject: str
    msg_id: str


def deadletter_headers(origin: Origin, consumer: str, reason: str) -> dict[str, str]:
    """The headers of the dead letter of ``origin``; its ``Nats-Msg-Id`` is the original's place
    in its stream, so setting the same message aside twice stores it once."""
    return {
        "Nats-Msg-Id": f"{origin.stream}:{origin.sequence}",
        SUBJECT_HEADER: origin.subject,
        CONSUMER_HEADER: consumer,
        REASON_HEADER: _one_line(reason),
        STREAM_HEADER: origin.stream,
        SEQUENCE_HEADER: str(origin.sequence),
        MSG_ID_HEADER: origin.msg_id,
    }


def _one_line(text: str) -> str:
    """A header value holds no line breaks; a reason is for reading, so it is also kept short."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _REASON_LIMIT else flat[: _REASON_LIMIT - 1] + "…"


@dataclass(frozen=True)
class DeadLetter:
    """A message set aside, as an operator sees it."""

    sequence: int  # in the DEADLETTER stream
    set_aside_at: datetime | None
    subject: str
    consumer: str
    reason: str
    stream: str
    stream_sequence: int
    msg_id: str
    data: bytes

    @classmethod
    def read(
        cls,
        sequence: int,
        set_aside_at: datetime | None,
        headers: Mapping[str, str],
        data: bytes,
    ) -> DeadLetter:
        try:
            stream_sequence = int(headers.get(SEQUENCE_HEADER, "0"))
        except ValueError:
            stream_sequence = 0
        return cls(
            sequence=sequence,
            set_aside_at=set_aside_at,
            subject=headers.get(SUBJECT_HEADER, ""),
            consumer=headers.get(CONSUMER_HEADER, ""),
            reason=headers.get(REASON_HEADER, ""),
            stream=headers.get(STREAM_HEADER, ""),
            stream_sequence=stream_sequence,
            msg_id=headers.get(MSG_ID_HEADER, ""),
            data=data,
        )

    def replay_msg_id(self) -> str:
        """The replay's own ``Nats-Msg-Id``: not the original's (it may still be inside the
        stream's duplicate window, which would drop the replay), but one per dead letter, so a
        replay retried after an error is stored once. Consumers deduplicate by event id anyway."""
        return f"replay:{DEADLETTER_STREAM}:{self.sequence}"
