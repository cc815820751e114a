"""The error family every service maps in one place: to HTTP statuses, or to ack/nak/term."""

from __future__ import annotations


class RetryableError(Exception):
    """The work may succeed later (a database or peer outage): redeliver after a delay."""

    def __init__(self, message: str, *, delay_s: float = 2.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PoisonMessage(Exception):
    """The message can never be handled (undecodable, contradicts the contract): terminate it."""
