"""An account whose settled balance went below zero owes that amount: it is shown (a negative
balance), new requests are refused until a top-up covers them, and the operator can write the
debt off with an adjustment."""

from __future__ import annotations

from typing import Any

import psycopg
from aiapi_billing.service import Service
from aiapi_shared import billing_api as api
from aiapi_shared.bus import Bus
from aiapi_shared.money import parse_usd

from tests.billing.conftest import admission, admit, credit, eventually, scalar, usage_event


async def _account(bus: Bus, account_id: str) -> api.AccountBalanceReply:
    query = api.AccountQuery(account_id=account_id)
    data = await bus.request(api.ACCOUNT_SUBJECT, query.model_dump_json().encode(), timeout_s=10)
    return api.AccountBalanceReply.model_validate_json(data)


async def test_an_account_below_zero_is_refused_shown_owing_and_written_off(
    billing: Service, bus: Bus, db: psycopg.AsyncConnection[Any]
) -> None:
    await credit(bus, "acc_neg", "0.001")
    # Usage that arrives without a hold (an expired one) and costs more than the balance.
    await bus.publish_event(usage_event("acc_neg", input_tokens=1000, output_tokens=1000))
    await eventually(lambda: scalar(db, "SELECT count(*) FROM usage_records"))
    owed = parse_usd("0.0054") - parse_usd("0.001")  # (0.003 + 0.015) x 30% - 0.001
    shown = await _account(bus, "acc_neg")
    assert (shown.balance, shown.available) == (-owed, -owed)

    refused = await admit(bus, admission("acc_neg", max_tokens=10, estimated_input_tokens=10))
    assert refused.decision == "insufficient_balance" and refused.hold_id is None

    written_off = await credit(bus, "acc_neg", "0.0044", key="write-off-acc_neg")
    assert written_off.balance == 0
    assert (await _account(bus, "acc_neg")).balance == 0
    still = await admit(bus, admission("acc_neg", max_tokens=10, estimated_input_tokens=10))
    assert still.decision == "insufficient_balance"  # nothing to hold a request with

    await credit(bus, "acc_neg", "1.00")
    admitted = await admit(bus, admission("acc_neg", max_tokens=10, estimated_input_tokens=10))
    assert admitted.decision == "admit" and admitted.hold_id
