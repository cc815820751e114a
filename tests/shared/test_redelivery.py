"""The redelivery policy and the dead letter's headers (pure)."""

from __future__ import annotations

from aiapi_shared.redelivery import (
    MAX_DELAY_S,
    DeadLetter,
    Origin,
    backoff_s,
    deadletter_headers,
)


def test_the_delay_doubles_with_each_delivery_up_to_the_cap() -> None:
    delays = [backoff_s(n) for n in range(1, 9)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, MAX_DELAY_S, MAX_DELAY_S, MAX_DELAY_S]
    assert backoff_s(0) == 2.0 and backoff_s(10_000) == MAX_DELAY_S


def test_a_dead_letter_reads_back_what_its_headers_say() -> None:
    origin = Origin("PAYMENTS", 42, "payments.v1.deposit.confirmed", "evt_1")
    headers = deadletter_headers(origin, "billing-deposits", "bad\r\nline " + "x" * 2000)
    assert headers["Nats-Msg-Id"] == "PAYMENTS:42"  # the same message set aside twice: once
    assert "\n" not in headers["Aiapi-Reason"] and len(headers["Aiapi-Reason"]) <= 500
    letter = DeadLetter.read(7, None, headers, b"{}")
    assert (letter.subject, letter.consumer, letter.stream, letter.stream_sequence) == (
        "payments.v1.deposit.confirmed",
        "billing-deposits",
        "PAYMENTS",
        42,
    )
    assert letter.msg_id == "evt_1"
    assert letter.replay_msg_id() != letter.msg_id  # a replay is not dropped as a duplicate
