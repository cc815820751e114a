"""The JSON the edge builds without pydantic is the shared contract's, field for field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiapi_edge import wire
from aiapi_edge.metering import UsageMeter
from aiapi_shared.admission import AdmissionReply, AdmissionRequest
from aiapi_shared.events.usage_v1 import UsageRecorded

STARTED = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)


def test_a_usage_event_validates_as_the_contracts_event() -> None:
    meter = UsageMeter()
    meter.message(
        {
            "usage": {
                "input_tokens": 11,
                "output_tokens": 7,
                "cache_read_input_tokens": 3,
                "cache_creation_input_tokens": 5,
                "cache_creation": {"ephemeral_5m_input_tokens": 1, "ephemeral_1h_input_tokens": 4},
            }
        }
    )
    finished = STARTED + timedelta(milliseconds=5)
    raw = wire.usage_event(
        request_id="req_0123456789abcdef01234567",
        account_id="acct_1",
        key_id="key_1",
        model="claude-haiku-4-5",
        requested_model="claude-haiku-latest",
        plan="pro",
        route="openai",
        started_at=STARTED,
        finished_at=finished,
        outcome="ok",
        status_code=200,
        client_disconnected=False,
        usage=meter.meters(),
        hold_id=None,
        admission="allowance",
        edge_id="edge-1",
    )
    event = UsageRecorded.model_validate_json(raw)
    assert event.event_id == event.request_id == "req_0123456789abcdef01234567"
    assert event.started_at == STARTED and event.finished_at == finished
    assert event.occurred_at == finished
    assert event.usage == meter.result()
    assert (event.route, event.plan, event.admission, event.hold_id) == (
        "openai",
        "pro",
        "allowance",
        None,
    )
    # Every field the contract's own serialisation has, with the same values.
    assert orjson.loads(raw) == orjson.loads(event.to_json())


def test_an_admission_request_validates_as_the_contracts_request() -> None:
    raw = wire.admission_request(
        request_id="req_1",
        account_id="acct_1",
        key_id="key_1",
        plan="basic",
        model="claude-sonnet-4-6",
        estimated_input_tokens=100,
        max_tokens=4096,
        started_at=STARTED,
        server_tools_nano=100_000_000,
        input_premium_bps=22_000,
        output_premium_bps=16_500,
    )
    request = AdmissionRequest.model_validate_json(raw)
    assert (request.input_premium_bps, request.output_premium_bps) == (22_000, 16_500)
    assert orjson.loads(raw) == orjson.loads(request.model_dump_json())


def test_an_admission_reply_is_read_with_its_money_exact() -> None:
    reply = AdmissionReply(
        decision="rate_limited", hold_id=None, hold_amount=1_234_567_891, retry_after_s=7
    )
    parsed = wire.admission_reply(reply.model_dump_json().encode())
    assert parsed == {
        "decision": "rate_limited",
        "hold_id": None,
        "hold_amount": 1_234_567_891,
        "retry_after_s": 7,
        "message": "",
    }


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b'{"decision": "maybe"}', b'{"decision": "admit", "hold_amount": "1e3"}']
)
def test_a_reply_that_is_not_the_contracts_is_malformed(raw: bytes) -> None:
    with pytest.raises(wire.MalformedReply):
        wire.admission_reply(raw)
