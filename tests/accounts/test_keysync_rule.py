"""accounts' key records follow the shared compare-and-set rule (:mod:`aiapi_shared.kv_versioned`)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiapi_accounts.keysync import put_record
from aiapi_shared.bus import Bus
from aiapi_shared.events.records_v1 import KeyRecord


async def test_key_records_follow_the_same_rule(bus: Bus) -> None:
    """accounts' ``put_record`` is the shared rule on ``updated_at``: equal replaces (a resync
    after a plan's limits changed rewrites them), older never does."""
    kv = await bus.ensure_kv("aiapi_test_keys")
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    record = KeyRecord(
        key_id="key_1",
        account_id="acc_1",
        plan="basic",
        key_status="active",
        account_status="active",
        requests_per_minute=10,
        tokens_per_minute=1000,
        updated_at=at,
    )
    await put_record(kv, "hash1", record)
    relimited = record.model_copy(update={"requests_per_minute": 20})
    await put_record(kv, "hash1", relimited)
    stored = KeyRecord.model_validate_json((await kv.get("hash1")).value or b"")
    assert stored.requests_per_minute == 20
    older = record.model_copy(update={"key_status": "revoked", "updated_at": at.replace(hour=11)})
    await put_record(kv, "hash1", older)
    stored = KeyRecord.model_validate_json((await kv.get("hash1")).value or b"")
    assert stored.key_status == "active" and stored.requests_per_minute == 20
